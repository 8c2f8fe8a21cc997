//! The example NADs as the delegates would receive them: for each network a pod selects, the
//! NAD's config with what the meta-plugin adds for that pod (the requested `ips` and `mac` as
//! `runtimeConfig` when the config declares the capability, a `deviceID` for SR-IOV), parsed by
//! the built-in delegate's own parser and its IPAM's.

use plexus_crds::NetworkSelection;
use plexus_delegates::cni::{NetConf, Request};
use plexus_delegates::ipam::host_local::config::HostLocalConfig;
use plexus_delegates::ipam::static_ipam::StaticConfig;
use plexus_delegates::ipvlan::Ipvlan;
use plexus_delegates::macvlan::Macvlan;
use plexus_delegates::sriov::config::SriovConfig;
use serde_json::{Map, Value, json};

/// The VF address the meta-plugin would inject (from kubelet's PodResources) for an SR-IOV NAD.
const EXAMPLE_VF: &str = "0000:03:02.0";

/// The delegate config for `selection` of a pod: the NAD's `config` plus the runtime-provided keys.
pub fn delegate_config(nad_config: &str, selection: &NetworkSelection) -> Result<Value, String> {
    let mut config: Map<String, Value> = match serde_json::from_str(nad_config) {
        Ok(Value::Object(m)) => m,
        Ok(other) => return Err(format!("spec.config is not a JSON object: {other}")),
        Err(e) => return Err(format!("spec.config is not JSON: {e}")),
    };
    let capability = |name: &str| {
        config
            .get("capabilities")
            .and_then(|c| c.get(name))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let mut runtime = Map::new();
    if !selection.ips.is_empty() {
        if !capability("ips") {
            return Err(format!(
                "the pod asks for ips {:?}, but the NAD does not declare the \"ips\" capability",
                selection.ips
            ));
        }
        runtime.insert("ips".into(), json!(selection.ips));
    }
    if let Some(mac) = selection.mac.as_ref().filter(|_| capability("mac")) {
        runtime.insert("mac".into(), json!(mac));
    }
    if config.get("type").and_then(Value::as_str) == Some("sriov") {
        config.insert("deviceID".into(), json!(EXAMPLE_VF));
    }
    if !runtime.is_empty() {
        config.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    Ok(Value::Object(config))
}

/// Parses `config` as the built-in delegate named by its `type` and its IPAM would for an ADD.
pub fn parse_as_delegate(config: &Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(config).map_err(|e| e.to_string())?;
    let req = add_request(bytes)?;
    let conf = NetConf::parse(&req.config).map_err(|e| e.msg)?;
    match conf.plugin_type.as_str() {
        "macvlan" => Macvlan::parse(&req, &conf).map(drop),
        "ipvlan" => Ipvlan::parse(&req, &conf).map(drop),
        "sriov" => SriovConfig::parse(&req, &conf).map(drop),
        other => {
            return Err(format!(
                "type {other:?}: the examples only use the built-in macvlan, ipvlan and sriov"
            ));
        }
    }
    .map_err(|e| format!("{} delegate: {}", conf.plugin_type, e.msg))?;
    match conf.ipam_type() {
        Some("host-local") => HostLocalConfig::load(&conf, &req.args).map(drop),
        Some("static") => StaticConfig::load(&conf, &req.args).map(drop),
        None => Ok(()),
        Some(other) => return Err(format!("ipam type {other:?} is not a built-in IPAM")),
    }
    .map_err(|e| format!("ipam: {e}"))
}

fn add_request(config: Vec<u8>) -> Result<Request, String> {
    let env = |key: &str| {
        let value = match key {
            "CNI_COMMAND" => "ADD",
            "CNI_CONTAINERID" => "example",
            "CNI_NETNS" => "/var/run/netns/example",
            "CNI_IFNAME" => "net1",
            "CNI_PATH" => "/opt/cni/bin",
            "CNI_ARGS" => "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=example",
            _ => return None,
        };
        Some(value.to_owned())
    };
    Request::parse(env, config).map_err(|e| e.msg)
}
