//! The Multus cache fallback against cache files laid out as Multus writes them
//! (`tests/data/multus-cache/`), with recording shell scripts as the delegates: what each
//! delegate DEL gets (order, ifname, CNI_ARGS, CNI_PATH, stdin) and what is left afterwards.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use plexus_delegates::cni::{CniArgs, Command, ErrorCode, Request};
use serde_json::{Value, json};

use super::format::{self, CachedDelegate};
use super::runtime::{MultusRuntimeConfig, cni_args};
use super::{RESULTS_DIR, del_from_multus_cache};
use crate::config::PlexusConfig;
use crate::plan::Delegate;

const CID: &str = "5f0c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b";
const UID: &str = "9d1c7b2e-4a4f-4bb4-8d2e-1f0c9a7e6b51";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/multus-cache")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A node: `bin/` with recording delegates, Multus's `cni/` dir, a device-info root.
struct Node {
    tmp: tempfile::TempDir,
}

/// One recorded delegate call.
#[derive(Debug)]
struct Call {
    plugin: String,
    command: String,
    ifname: String,
    cni_args: String,
    cni_path: String,
    netns: String,
    container: String,
    stdin: Value,
}

impl Node {
    fn new() -> Node {
        let node = Node {
            tmp: tempfile::tempdir().unwrap(),
        };
        for d in ["bin", "cni", "calls", "devinfo/cni"] {
            fs::create_dir_all(node.p(d)).unwrap();
        }
        node
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// A delegate `bin/<name>` that records its environment and stdin, then succeeds.
    fn recorder(&self, name: &str) {
        let calls = self.p("calls");
        let calls = calls.display();
        self.script(
            name,
            &format!(
                "#!/bin/sh\nstdin=$(cat)\nn=$(ls {calls} | grep -c env)\n\
                 printf '%s\\n' \"$CNI_COMMAND\" \"$CNI_IFNAME\" \"$CNI_ARGS\" \"$CNI_PATH\" \"$CNI_NETNS\" \"$CNI_CONTAINERID\" > {calls}/$n-{name}.env\n\
                 printf '%s' \"$stdin\" > {calls}/$n-{name}.json\n"
            ),
        );
    }

    /// A delegate `bin/<name>` that records, then fails with a CNI error.
    fn failing(&self, name: &str) {
        self.recorder(name);
        let path = self.p(&format!("bin/{name}"));
        let mut body = fs::read_to_string(&path).unwrap();
        body.push_str(
            "echo '{\"cniVersion\":\"0.4.0\",\"code\":11,\"msg\":\"master eth1 is busy\"}'\nexit 1\n",
        );
        fs::write(&path, body).unwrap();
    }

    fn script(&self, name: &str, body: &str) {
        let path = self.p(&format!("bin/{name}"));
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn cache_path(&self) -> PathBuf {
        self.p("cni").join(CID)
    }

    fn write_cache(&self, fixture_name: &str) {
        fs::write(self.cache_path(), fixture(fixture_name)).unwrap();
    }

    fn result_path(&self, network: &str, ifname: &str) -> PathBuf {
        self.p("cni")
            .join(RESULTS_DIR)
            .join(format!("{network}-{CID}-{ifname}"))
    }

    fn config(&self, cni_version: &str) -> PlexusConfig {
        let c = json!({
            "cniVersion": cni_version, "name": "multus-cni-network", "type": "plexus",
            "clusterNetwork": "cbr0",
            "cniDir": self.p("cni"), "binDir": self.p("bin"),
            "deviceInfoDir": self.p("devinfo"),
            "capabilities": {"portMappings": true, "io.kubernetes.cri.pod-annotations": true},
            "runtimeConfig": {
                "portMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}],
                "io.kubernetes.cri.pod-annotations": {"k8s.v1.cni.cncf.io/networks": "vlan-a"}
            }
        });
        PlexusConfig::parse(c.to_string().as_bytes()).unwrap()
    }

    /// A DEL as containerd sends it.
    fn request(&self) -> Request {
        Request {
            command: Command::Del,
            container_id: CID.into(),
            netns: Some("/var/run/netns/cni-1b2d3f".into()),
            ifname: "eth0".into(),
            args: CniArgs::parse(&format!(
                "K8S_POD_INFRA_CONTAINER_ID={CID};K8S_POD_UID={UID};IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"
            ))
            .unwrap(),
            path: vec!["/opt/cni/bin".into()],
            config: Vec::new(),
        }
    }

    fn calls(&self) -> Vec<Call> {
        let mut names: Vec<(usize, String)> = fs::read_dir(self.p("calls"))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".env")?;
                let (n, plugin) = stem.split_once('-')?;
                Some((n.parse().unwrap(), plugin.to_owned()))
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|(n, plugin)| {
                let env = fs::read_to_string(self.p(&format!("calls/{n}-{plugin}.env"))).unwrap();
                let l: Vec<&str> = env.lines().collect();
                let stdin =
                    fs::read_to_string(self.p(&format!("calls/{n}-{plugin}.json"))).unwrap();
                Call {
                    plugin,
                    command: l[0].into(),
                    ifname: l[1].into(),
                    cni_args: l[2].into(),
                    cni_path: l[3].into(),
                    netns: l[4].into(),
                    container: l[5].into(),
                    stdin: serde_json::from_str(&stdin).unwrap(),
                }
            })
            .collect()
    }
}

/// Multus's CNI_ARGS for containerd's: its five pairs first, then the runtime's appended (the
/// keys with values are repeated).
const MULTUS_CNI_ARGS: &str = "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
    K8S_POD_INFRA_CONTAINER_ID=5f0c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b;\
    K8S_POD_UID=9d1c7b2e-4a4f-4bb4-8d2e-1f0c9a7e6b51;\
    K8S_POD_INFRA_CONTAINER_ID=5f0c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b;\
    K8S_POD_UID=9d1c7b2e-4a4f-4bb4-8d2e-1f0c9a7e6b51;IgnoreUnknown=1;\
    K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0";

#[test]
fn decodes_the_delegates_multus_cached() {
    let d = format::decode(&fixture("cluster-and-two-nads.json")).unwrap();
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].name, "cbr0");
    let Delegate::ConfList(cbr0) = &d[0].delegate else {
        panic!("{:?}", d[0].delegate)
    };
    // The bytes as the user wrote them (every key, not the lossy ConfList struct).
    assert_eq!(cbr0["plugins"][0]["bridge"], "cni0");
    assert_eq!(
        cbr0["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.244.1.0/24"
    );
    assert!(!d[0].list_without_version);
    assert_eq!(d[1].name, "default/vlan-a");
    assert_eq!(d[1].mac_request.as_deref(), Some("c2:b0:57:49:47:f1"));
    assert_eq!(d[1].ip_request, Some(vec!["10.1.1.11/24".to_owned()]));
    assert_eq!(d[1].ifname_request, None);
    let Delegate::Conf(vlan) = &d[1].delegate else {
        panic!()
    };
    assert_eq!(vlan["vlanId"], 100);
    assert_eq!(d[2].name, "sriov/hostdev");
    assert_eq!(d[2].ifname_request.as_deref(), Some("dev0"));
    assert_eq!(d[2].device_id.as_deref(), Some("0000:03:02.1"));
    assert_eq!(
        d[2].resource_name.as_deref(),
        Some("intel.com/intel_sriov_netdevice")
    );
    let Delegate::Conf(hostdev) = &d[2].delegate else {
        panic!()
    };
    assert_eq!(hostdev["pciBusID"], "0000:03:02.1");
    assert_eq!(hostdev["args"], json!({"cni": {"vlan": "200"}}));
}

#[test]
fn legacy_cni_network_config_list_is_restored_with_what_multus_injected() {
    let d = format::decode(&fixture("legacy-cni-network-config-list.json")).unwrap();
    assert_eq!(d.len(), 2);
    // A conf delegate's empty legacy field changes nothing.
    assert!(matches!(&d[0].delegate, Delegate::Conf(c) if c["mtu"] == 1500));
    let Delegate::ConfList(list) = &d[1].delegate else {
        panic!("{:?}", d[1].delegate)
    };
    assert_eq!(
        Value::Object(list.clone()),
        json!({
            "cniVersion": "1.0.0", "name": "vlan-chain",
            "plugins": [
                {"args": {"cni": {"foo": "bar"}}, "deviceID": "0000:05:00.2",
                 "ipam": {"subnet": "10.30.0.0/24", "type": "host-local"}, "master": "eth1",
                 "pciBusID": "0000:05:00.2", "type": "vlan", "vlanId": 300},
                {"args": {"cni": {"foo": "bar"}}, "deviceID": "0000:05:00.2",
                 "pciBusID": "0000:05:00.2",
                 "sysctl": {"net.ipv4.conf.all.log_martians": "1"}, "type": "tuning"}
            ]
        })
    );
}

#[test]
fn undecodable_caches_say_what_and_where() {
    let e = format::decode(&fixture("corrupt-truncated.json")).unwrap_err();
    assert!(e.starts_with("not valid JSON"), "{e}");
    let e = format::decode(br#"{"Name":"x"}"#).unwrap_err();
    assert_eq!(e, "expected a JSON list of delegates, found an object");
    let e = format::decode(br#"[{"Name":"cbr0","Bytes":"!!"}]"#).unwrap_err();
    assert!(e.starts_with("delegate #0: \"Bytes\" is not base64"), "{e}");
    let e = format::decode(br#"[{"Name":"cbr0","Bytes":null}]"#).unwrap_err();
    assert!(e.contains("delegate #0: \"Bytes\" is empty"), "{e}");
    // Conf bytes without a type; conflist (per ConfList.plugins) bytes without plugins.
    let e = format::decode(br#"[{"Name":"a","Bytes":"eyJuYW1lIjoiYSJ9"}]"#).unwrap_err();
    assert!(e.contains("has no \"type\""), "{e}");
    let e = format::decode(
        br#"[{"ConfList":{"plugins":[{"type":"bridge"}]},"Bytes":"eyJuYW1lIjoiYSJ9"}]"#,
    )
    .unwrap_err();
    assert!(e.contains("no \"plugins\" list"), "{e}");
    // A legacy list whose plugin count differs from the housekeeping bytes'.
    let e = format::decode(
        &serde_json::to_vec(&json!([{
            "ConfList": {"plugins": [{"type": "vlan"}]},
            "CNINetworkConfigList": {"Plugins": [{"Bytes": "eyJ0eXBlIjoidmxhbiJ9"}],
                                     "Bytes": "eyJuYW1lIjoibCJ9"},
            "Bytes": "eyJuYW1lIjoibCIsInBsdWdpbnMiOltdfQ=="
        }]))
        .unwrap(),
    )
    .unwrap_err();
    assert!(e.contains("has 1 plugins but \"Bytes\" has 0"), "{e}");
    // A field of the wrong JSON type, named with its key.
    let e = format::decode(br#"[{"ipRequest":"10.1.1.11/24","Bytes":"eyJ0eXBlIjoieCJ9"}]"#)
        .unwrap_err();
    assert!(e.starts_with("delegate #0: ipRequest: invalid type"), "{e}");
    // Go decodes `null` to no delegates.
    assert_eq!(
        format::decode(b"null").unwrap(),
        Vec::<CachedDelegate>::new()
    );
}

#[test]
fn cni_args_are_built_like_multus() {
    let containerd = CniArgs::parse(&format!(
        "K8S_POD_INFRA_CONTAINER_ID={CID};K8S_POD_UID={UID};IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"
    ))
    .unwrap();
    let joined: Vec<String> = cni_args(&containerd)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(joined.join(";"), MULTUS_CNI_ARGS.replace(' ', ""));
    // An empty K8S_* of Multus's is filled by a later pair; unknown keys are appended.
    let args = CniArgs::parse("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;K8S_POD_UID=;X=1")
        .unwrap();
    assert_eq!(
        cni_args(&args),
        [
            ("IgnoreUnknown", "true"),
            ("K8S_POD_NAMESPACE", "ns"),
            ("K8S_POD_NAME", "p"),
            ("K8S_POD_INFRA_CONTAINER_ID", ""),
            ("K8S_POD_UID", "u"),
            ("K8S_POD_NAMESPACE", "ns"),
            ("K8S_POD_NAME", "p"),
            ("K8S_POD_UID", ""),
            ("X", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[test]
fn capability_args_follow_multus_merge_rules() {
    let d = format::decode(&fixture("cluster-and-two-nads.json")).unwrap();
    let rc = MultusRuntimeConfig::from_runtime_config(&obj(json!({
        "PortMappings": [{"HostPort": 80, "containerPort": 8080}],
        "bandwidth": {"ingressRate": 1000},
        "mac": "02:00:00:00:00:09",
        "io.kubernetes.cri.pod-annotations": {"a": "b"}
    })))
    .unwrap();
    let file = |name: &str| format!("/devinfo/{name}");
    // The cluster network keeps the runtime's values.
    let (args, devinfo) = rc.capability_args(0, &d[0], file);
    assert_eq!(
        Value::Object(args),
        json!({
            "portMappings": [{"hostPort": 80, "containerPort": 8080}],
            "bandwidth": {"ingressRate": 1000, "ingressBurst": 0, "egressRate": 0, "egressBurst": 0},
            "mac": "02:00:00:00:00:09"
        })
    );
    assert_eq!(devinfo, None);
    // A selection's mac/ips replace them.
    let (args, _) = rc.capability_args(1, &d[1], file);
    assert_eq!(args["mac"], "c2:b0:57:49:47:f1");
    assert_eq!(args["ips"], json!(["10.1.1.11/24"]));
    // A device ID brings the device-info file.
    let (args, devinfo) = rc.capability_args(2, &d[2], file);
    assert_eq!(args["deviceID"], "0000:03:02.1");
    assert_eq!(args["CNIDeviceInfoFile"], "/devinfo/sriov/hostdev");
    assert_eq!(devinfo.as_deref(), Some("/devinfo/sriov/hostdev"));
    // A runtimeConfig key Multus cannot decode is an error naming it.
    let e = MultusRuntimeConfig::from_runtime_config(&obj(json!({"ips": "10.0.0.1"}))).unwrap_err();
    assert!(e.starts_with("runtimeConfig: ips"), "{e}");
}

#[test]
fn del_runs_the_cached_delegates_as_multus_del_does() {
    let node = Node::new();
    for p in ["bridge", "portmap", "vlan", "host-device"] {
        node.recorder(p);
    }
    node.write_cache("cluster-and-two-nads.json");
    fs::create_dir_all(node.p("cni/results")).unwrap();
    fs::write(
        node.result_path("cbr0", "eth0"),
        fixture("libcni-result-cbr0.json"),
    )
    .unwrap();
    let devinfo = node.p(&format!("devinfo/cni/sriov-hostdev-{CID}_dev0"));
    fs::write(
        &devinfo,
        r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:02.1"}}"#,
    )
    .unwrap();
    let config = node.config("1.0.0");
    let req = node.request();

    let errors = del_from_multus_cache(&config, &req).unwrap().unwrap();
    assert!(errors.is_empty(), "{errors:?}");

    let calls = node.calls();
    let order: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.plugin.as_str(), c.ifname.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("host-device", "dev0"),
            ("vlan", "net1"),
            ("portmap", "eth0"),
            ("bridge", "eth0")
        ]
    );
    let bin = node.p("bin");
    for c in &calls {
        assert_eq!(c.command, "DEL");
        assert_eq!(c.cni_args, MULTUS_CNI_ARGS.replace(' ', ""), "{}", c.plugin);
        assert_eq!(c.cni_path, format!("{}:/opt/cni/bin", bin.display()));
        assert_eq!(c.netns, "/var/run/netns/cni-1b2d3f");
        assert_eq!(c.container, CID);
    }
    // host-device: the cached bytes with deviceID and the device-info file as runtimeConfig.
    let mut expected = json!({
        "args": {"cni": {"vlan": "200"}},
        "capabilities": {"CNIDeviceInfoFile": true, "deviceID": true},
        "cniVersion": "1.0.0", "deviceID": "0000:03:02.1",
        "ipam": {"subnet": "10.56.217.0/24", "type": "host-local"},
        "name": "hostdev", "pciBusID": "0000:03:02.1", "type": "host-device"
    });
    expected["runtimeConfig"] = json!({
        "CNIDeviceInfoFile": devinfo.display().to_string(), "deviceID": "0000:03:02.1"
    });
    assert_eq!(calls[0].stdin, expected);
    // vlan: the NAD's bytes, the selection's ips/mac, no libcni result cached for it.
    assert_eq!(
        calls[1].stdin,
        json!({
            "cniVersion": "0.4.0", "name": "vlan-a", "type": "vlan", "master": "eth1",
            "vlanId": 100, "capabilities": {"ips": true, "mac": true},
            "ipam": {"type": "static"},
            "runtimeConfig": {"ips": ["10.1.1.11/24"], "mac": "c2:b0:57:49:47:f1"}
        })
    );
    // The cluster conflist: list name/version, the runtime's port mappings re-encoded, and
    // libcni's cached result as prevResult.
    let portmap = &calls[2].stdin;
    assert_eq!(portmap["name"], "cbr0");
    assert_eq!(portmap["cniVersion"], "1.0.0");
    assert_eq!(portmap["snat"], true);
    assert_eq!(
        portmap["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );
    assert_eq!(portmap["prevResult"]["ips"][0]["address"], "10.244.1.7/24");
    let bridge = &calls[3].stdin;
    assert_eq!(bridge["bridge"], "cni0");
    assert!(bridge.get("runtimeConfig").is_none(), "{bridge}");
    assert_eq!(bridge["prevResult"], portmap["prevResult"]);

    // Everything deleted: the cache, libcni's result cache and the device-info file are gone.
    assert!(!node.cache_path().exists());
    assert!(!node.result_path("cbr0", "eth0").exists());
    assert!(!devinfo.exists());
    // The runtime's retry finds nothing.
    assert!(del_from_multus_cache(&config, &req).unwrap().is_none());
    assert_eq!(node.calls().len(), 4);
}

#[test]
fn a_failed_delegate_keeps_the_cache_for_the_retry() {
    let node = Node::new();
    for p in ["bridge", "portmap", "host-device"] {
        node.recorder(p);
    }
    node.failing("vlan");
    node.write_cache("cluster-and-two-nads.json");
    let config = node.config("1.0.0");
    let req = node.request();

    let errors = del_from_multus_cache(&config, &req).unwrap().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let cache = node.cache_path().display().to_string();
    assert!(
        errors[0].starts_with("network \"default/vlan-a\" (interface net1): delegate \"vlan\""),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("master eth1 is busy"), "{}", errors[0]);
    assert!(
        errors[0].ends_with(&format!(
            "the Multus cache file {cache} is kept for the next DEL"
        )),
        "{}",
        errors[0]
    );
    // The other delegates still ran; the file stays.
    assert_eq!(node.calls().len(), 4);
    assert!(node.cache_path().exists());

    // The retry runs them all again; now that vlan succeeds, the file goes.
    node.recorder("vlan");
    let errors = del_from_multus_cache(&config, &req).unwrap().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(node.calls().len(), 8);
    assert!(!node.cache_path().exists());
}

#[test]
fn a_corrupt_cache_is_an_error_naming_it_and_nothing_runs() {
    let node = Node::new();
    for p in ["bridge", "portmap", "vlan", "host-device"] {
        node.recorder(p);
    }
    node.write_cache("corrupt-truncated.json");
    let e = del_from_multus_cache(&node.config("1.0.0"), &node.request()).unwrap_err();
    assert!(e.is(ErrorCode::Decode), "{e:?}");
    assert!(
        e.msg.starts_with(&format!(
            "Multus cache file {} cannot be read: not valid JSON",
            node.cache_path().display()
        )),
        "{}",
        e.msg
    );
    assert!(e.msg.contains("nothing was deleted"), "{}", e.msg);
    assert!(node.calls().is_empty());
    assert!(node.cache_path().exists());
    assert_eq!(
        fs::read(node.cache_path()).unwrap(),
        fixture("corrupt-truncated.json")
    );
}

#[test]
fn a_conflist_without_version_gets_the_configs() {
    let node = Node::new();
    for p in ["ptp", "vlan"] {
        node.recorder(p);
    }
    node.write_cache("conflist-without-version.json");
    let errors = del_from_multus_cache(&node.config("0.4.0"), &node.request())
        .unwrap()
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let calls = node.calls();
    assert_eq!(calls[0].plugin, "vlan");
    assert_eq!(calls[0].stdin["cniVersion"], "0.4.0");
    assert_eq!(calls[0].stdin["name"], "novers");
    assert_eq!(calls[0].stdin["vlanId"], 7);
    // A conf keeps its own version.
    assert_eq!(calls[1].plugin, "ptp");
    assert_eq!(calls[1].stdin["cniVersion"], "0.3.1");
}

#[test]
fn no_cache_file_is_none_and_an_empty_list_is_removed() {
    let node = Node::new();
    let config = node.config("1.0.0");
    let req = node.request();
    assert!(del_from_multus_cache(&config, &req).unwrap().is_none());
    // A directory there is not Multus's (a Plexus journal directory).
    fs::create_dir(node.cache_path()).unwrap();
    assert!(del_from_multus_cache(&config, &req).unwrap().is_none());
    fs::remove_dir(node.cache_path()).unwrap();
    fs::write(node.cache_path(), "[]").unwrap();
    assert_eq!(
        del_from_multus_cache(&config, &req).unwrap(),
        Some(Vec::new())
    );
    assert!(!node.cache_path().exists());
}
