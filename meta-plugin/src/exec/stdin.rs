//! Each plugin's stdin, built as libcni builds it.
//!
//! - conf: the conf itself; conflist: the plugin with the list's `name` and `cniVersion`.
//! - `prevResult`: the given result converted to the delegate's version (the previous plugin's
//!   on ADD, the final one on DEL and CHECK).
//! - `runtimeConfig`: for every key the plugin's `capabilities` declare `true` and the runtime
//!   config has, that value (libcni's `injectRuntimeConfig`, which replaces any `runtimeConfig`
//!   in the plugin conf when at least one key applies).
//! - `args.cni`: the selection's `cni-args` merged in (the selection wins).

use plexus_delegates::cni::{CniError, CniResult, CniVersion};
use serde_json::{Map, Value};

use crate::plan::{Attachment, Delegate};

/// The runtimeConfig the attachment's plugins may receive: the runtime's `runtimeConfig`
/// overlaid with the attachment's capability args, reduced to the keys some plugin of the
/// delegate declares (so nothing else, e.g. all pod annotations, is journaled).
pub fn effective_runtime_config(
    runtime: &Map<String, Value>,
    att: &Attachment,
) -> Map<String, Value> {
    let mut merged = runtime.clone();
    for (k, v) in &att.runtime_config {
        merged.insert(k.clone(), v.clone());
    }
    let declared: Vec<String> = att
        .delegate
        .plugins()
        .into_iter()
        .flat_map(capabilities)
        .collect();
    merged
        .into_iter()
        .filter(|(k, _)| declared.iter().any(|d| d == k))
        .collect()
}

/// The capability names a plugin conf declares `true`.
fn capabilities(plugin: &Map<String, Value>) -> Vec<String> {
    plugin
        .get("capabilities")
        .and_then(Value::as_object)
        .map(|caps| {
            caps.iter()
                .filter(|(_, v)| v.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The stdin of plugin `index` of `att`'s delegate.
pub fn plugin_stdin(
    att: &Attachment,
    index: usize,
    runtime_config: &Map<String, Value>,
    prev: Option<&CniResult>,
    version: CniVersion,
) -> Result<Vec<u8>, CniError> {
    let conf = plugin_conf(att, index, runtime_config, prev, version)?;
    serde_json::to_vec(&Value::Object(conf))
        .map_err(|e| CniError::internal(format!("encoding delegate stdin: {e}")))
}

/// [`plugin_stdin`] as a JSON object.
pub fn plugin_conf(
    att: &Attachment,
    index: usize,
    runtime_config: &Map<String, Value>,
    prev: Option<&CniResult>,
    version: CniVersion,
) -> Result<Map<String, Value>, CniError> {
    let plugins = att.delegate.plugins();
    let plugin = plugins.get(index).ok_or_else(|| {
        CniError::internal(format!("network {:?} has no plugin #{index}", att.network))
    })?;
    let mut conf = (*plugin).clone();
    if let Delegate::ConfList(list) = &att.delegate {
        for key in ["name", "cniVersion"] {
            match list.get(key) {
                Some(v) => conf.insert(key.to_owned(), v.clone()),
                None => conf.remove(key),
            };
        }
    }
    match prev {
        Some(r) => {
            conf.insert("prevResult".to_owned(), r.to_json(version));
        }
        None => {
            conf.remove("prevResult");
        }
    }
    // libcni: inject only the capabilities this plugin declares.
    let mut rc = Map::new();
    for cap in capabilities(&conf) {
        let value = runtime_config.get(&cap).or_else(|| {
            runtime_config
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&cap))
                .map(|(_, v)| v)
        });
        if let Some(v) = value {
            rc.insert(cap, v.clone());
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".to_owned(), Value::Object(rc));
    }
    if let Some(extra) = att.args_cni.as_ref().filter(|m| !m.is_empty()) {
        let args = conf
            .entry("args")
            .or_insert_with(|| Value::Object(Map::new()));
        if !args.is_object() {
            *args = Value::Object(Map::new());
        }
        if let Some(args) = args.as_object_mut() {
            let cni = args
                .entry("cni")
                .or_insert_with(|| Value::Object(Map::new()));
            if !cni.is_object() {
                *cni = Value::Object(Map::new());
            }
            if let Some(cni) = cni.as_object_mut() {
                for (k, v) in extra {
                    cni.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn att(delegate: Delegate) -> Attachment {
        Attachment {
            network: "ns/net".into(),
            ifname: "net1".into(),
            is_cluster: false,
            delegate,
            runtime_config: Map::new(),
            cni_args: vec![],
            args_cni: None,
            default_route: vec![],
            resource_name: None,
        }
    }

    fn result() -> CniResult {
        CniResult::from_json(&json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}],
            "dns": {}
        }))
        .unwrap()
    }

    #[test]
    fn conflist_plugins_get_list_name_version_and_converted_prev_result() {
        let a = att(Delegate::ConfList(obj(json!({
            "cniVersion": "0.3.1", "name": "chain",
            "plugins": [
                {"type": "macvlan", "master": "eth1", "name": "ignored"},
                {"type": "tuning", "cniVersion": "1.0.0"}
            ]
        }))));
        let first = plugin_conf(&a, 0, &Map::new(), None, CniVersion::V0_3_1).unwrap();
        assert_eq!(first["name"], "chain");
        assert_eq!(first["cniVersion"], "0.3.1");
        assert_eq!(first["master"], "eth1");
        assert!(!first.contains_key("prevResult"));
        let second = plugin_conf(&a, 1, &Map::new(), Some(&result()), CniVersion::V0_3_1).unwrap();
        assert_eq!(second["cniVersion"], "0.3.1");
        assert_eq!(second["name"], "chain");
        let prev = &second["prevResult"];
        assert_eq!(prev["cniVersion"], "0.3.1");
        // 0.3.x layout keeps the per-IP `version`
        assert_eq!(prev["ips"][0]["version"], "4");
        assert_eq!(prev["ips"][0]["address"], "10.1.0.5/24");
        assert!(plugin_conf(&a, 2, &Map::new(), None, CniVersion::V0_3_1).is_err());
    }

    #[test]
    fn conf_is_passed_as_is() {
        let a = att(Delegate::Conf(obj(json!({
            "cniVersion": "1.0.0", "name": "m", "type": "macvlan", "master": "eth1",
            "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}
        }))));
        let c = plugin_conf(&a, 0, &Map::new(), None, CniVersion::V1_0_0).unwrap();
        assert_eq!(
            Value::Object(c),
            Value::Object(a.delegate.plugins()[0].clone())
        );
    }

    #[test]
    fn capabilities_inject_only_declared_keys() {
        let mut a = att(Delegate::ConfList(obj(json!({
            "cniVersion": "1.0.0", "name": "cbr0",
            "plugins": [
                {"type": "bridge", "capabilities": {"mac": true, "ips": false},
                 "runtimeConfig": {"stale": 1}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "tuning"}
            ]
        }))));
        a.runtime_config = obj(json!({"mac": "02:00:00:00:00:01", "ips": ["10.0.0.9/24"]}));
        let runtime = obj(json!({
            "portMappings": [{"HostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "io.kubernetes.cri.pod-annotations": {"a": "b"},
            "bandwidth": {"IngressRate": 1}
        }));
        let rc = effective_runtime_config(&runtime, &a);
        // only what some plugin declares (true) survives
        let mut keys: Vec<&String> = rc.keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["mac", "portMappings"]);
        let bridge = plugin_conf(&a, 0, &rc, None, CniVersion::V1_0_0).unwrap();
        assert_eq!(bridge["runtimeConfig"], json!({"mac": "02:00:00:00:00:01"}));
        let portmap = plugin_conf(&a, 1, &rc, None, CniVersion::V1_0_0).unwrap();
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [{"HostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
        );
        let tuning = plugin_conf(&a, 2, &rc, None, CniVersion::V1_0_0).unwrap();
        assert!(!tuning.contains_key("runtimeConfig"));
    }

    #[test]
    fn args_cni_are_merged_and_win() {
        let mut a = att(Delegate::Conf(obj(json!({
            "cniVersion": "1.0.0", "name": "m", "type": "x",
            "args": {"cni": {"keep": 1, "over": "conf"}, "other": true}
        }))));
        a.args_cni = Some(obj(json!({"over": "annotation", "new": [1]})));
        let c = plugin_conf(&a, 0, &Map::new(), None, CniVersion::V1_0_0).unwrap();
        assert_eq!(
            c["args"],
            json!({"cni": {"keep": 1, "over": "annotation", "new": [1]}, "other": true})
        );
        let mut b = att(Delegate::Conf(obj(json!({"name": "m", "type": "x"}))));
        b.args_cni = Some(obj(json!({"k": "v"})));
        let c = plugin_conf(&b, 0, &Map::new(), None, CniVersion::V0_1_0).unwrap();
        assert_eq!(c["args"], json!({"cni": {"k": "v"}}));
    }
}
