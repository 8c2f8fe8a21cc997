//! The real `plexus` binary, run as containerd runs it, in real network namespaces, local mode:
//! eth0 through the reference bridge + host-local, net1/net2 through two macvlan NADs whose
//! master is a veth in a "node" namespace. Needs root and the reference plugins in
//! `/usr/lib/cni`; skips with the reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pod_state;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use plexus_delegates::netns::fixture::{TestNetns, require_root, skip};
use serde_json::{Value, json};

const REF_BIN: &str = "/usr/lib/cni";

struct Env {
    tmp: tempfile::TempDir,
    node: TestNetns,
    pod: TestNetns,
    bridge: String,
}

impl Env {
    fn new(test: &str) -> Option<Env> {
        if !require_root(test) {
            return None;
        }
        if !Path::new(REF_BIN).join("bridge").exists() {
            skip(test, "the reference CNI plugins are not in /usr/lib/cni");
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let node = TestNetns::new("pxn");
        let pod = TestNetns::new("pxp");
        node.run_ok(
            "ip",
            &["link", "add", "up0", "type", "veth", "peer", "name", "up0p"],
        );
        node.run_ok("ip", &["link", "set", "up0", "up"]);
        node.run_ok("ip", &["link", "set", "up0p", "up"]);
        node.run_ok("ip", &["link", "set", "lo", "up"]);
        let bridge = format!("pxbr{}", std::process::id() % 100000);
        let e = Env {
            tmp,
            node,
            pod,
            bridge,
        };
        e.write_files();
        Some(e)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn write_files(&self) {
        std::fs::create_dir_all(self.p("nads")).unwrap();
        std::fs::create_dir_all(self.p("net.d")).unwrap();
        let ipam = |subnet: &str, dir: &str| json!({"type": "host-local", "dataDir": self.p(dir), "ranges": [[{"subnet": subnet}]]});
        let conflist = json!({
            "cniVersion": "1.0.0", "name": "cbr0",
            "plugins": [{
                "type": "bridge", "bridge": self.bridge, "isGateway": true,
                "ipam": {"type": "host-local", "dataDir": self.p("ipam"),
                         "ranges": [[{"subnet": "10.99.0.0/24"}]],
                         "routes": [{"dst": "0.0.0.0/0"}]}
            }]
        });
        std::fs::write(self.p("net.d/10-bridge.conflist"), conflist.to_string()).unwrap();
        for (name, master, subnet) in [
            ("macvlan-a", "up0", "10.98.1.0/24"),
            ("macvlan-b", "up0", "10.98.2.0/24"),
            ("macvlan-bad", "nosuchlink0", "10.98.3.0/24"),
        ] {
            let config = json!({
                "cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": master,
                "mode": "bridge", "ipam": ipam(subnet, "ipam")
            });
            let nad = json!({
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"config": config.to_string()}
            });
            std::fs::write(self.p(&format!("nads/{name}.json")), nad.to_string()).unwrap();
        }
    }

    fn config(&self, networks: &str) -> String {
        json!({
            "cniVersion": "1.0.0", "name": "plexus", "type": "plexus",
            "clusterNetwork": self.p("net.d/10-bridge.conflist"),
            "cniDir": self.p("cni"), "binDir": REF_BIN, "nadDir": self.p("nads"),
            "logLevel": "debug", "logFile": self.p("plexus.log"), "logToStderr": false,
            "capabilities": {"io.kubernetes.cri.pod-annotations": true},
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {
                "k8s.v1.cni.cncf.io/networks": networks,
                "kubernetes.io/config.source": "api"
            }}
        })
        .to_string()
    }

    /// Runs plexus inside the node namespace, like containerd on that node.
    fn plexus(&self, verb: &str, cid: &str, netns: Option<&Path>, stdin: &str) -> Output {
        let bin = env!("CARGO_BIN_EXE_plexus");
        let stdin = stdin.to_owned();
        self.node
            .netns()
            .run_in(|| {
                let mut cmd = Command::new(bin);
                cmd.env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("CNI_COMMAND", verb)
                    .env("CNI_CONTAINERID", cid)
                    .env("CNI_IFNAME", "eth0")
                    .env("CNI_PATH", REF_BIN)
                    .env(
                        "CNI_ARGS",
                        format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=0f3a6c1e-1111-4222-8333-944455556666"),
                    )
                    .env("CNI_NETNS", netns.map(|p| p.display().to_string()).unwrap_or_default())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = cmd.spawn().unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
                child.wait_with_output().unwrap()
            })
            .unwrap()
    }

    fn pod_links(&self) -> Vec<String> {
        pod_state::pod_links(&self.pod)
    }

    fn addr(&self, ifname: &str) -> String {
        pod_state::addr(&self.pod, ifname)
    }

    /// Leases left by host-local (files named like IPs).
    fn leases(&self) -> Vec<String> {
        pod_state::leases(&self.p("ipam"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.p("plexus.log")).unwrap_or_default()
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn add_del_bridge_plus_two_macvlan_nads() {
    let Some(env) = Env::new("add_del_bridge_plus_two_macvlan_nads") else {
        return;
    };
    let cid = "15b07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd20ed";
    let config = env.config("macvlan-a,default/macvlan-b");
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());

    // The reply: the cluster network's result, in the config's version.
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["cniVersion"], "1.0.0");
    assert!(
        reply["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.99.0."),
        "{reply}"
    );
    assert!(
        reply["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "eth0")
    );

    // The interfaces and addresses.
    let links = env.pod_links();
    for l in ["eth0", "net1", "net2"] {
        assert!(links.iter().any(|x| x == l), "{l} missing: {links:?}");
    }
    assert!(
        env.addr("eth0").contains("inet 10.99.0."),
        "{}",
        env.addr("eth0")
    );
    assert!(
        env.addr("net1").contains("inet 10.98.1."),
        "{}",
        env.addr("net1")
    );
    assert!(
        env.addr("net2").contains("inet 10.98.2."),
        "{}",
        env.addr("net2")
    );
    let routes = env.pod.run_ok("ip", &["-4", "route", "show", "default"]);
    assert!(routes.contains("dev eth0"), "{routes}");

    // network-status: exact layout (addresses and MACs vary, so build the expected bytes).
    let status_path = env.p("cni/status/default_pod1.json");
    let bytes = std::fs::read_to_string(&status_path).unwrap();
    let parsed = plexus_crds::parse_network_status(&bytes).unwrap();
    assert_eq!(parsed.len(), 3);
    assert_eq!(
        parsed
            .iter()
            .map(|s| (s.name.as_str(), s.interface.as_deref().unwrap(), s.default))
            .collect::<Vec<_>>(),
        vec![
            ("cbr0", "eth0", true),
            ("default/macvlan-a", "net1", false),
            ("default/macvlan-b", "net2", false)
        ]
    );
    assert_eq!(plexus_crds::write_network_status(&parsed).unwrap(), bytes);
    assert!(bytes.starts_with("[{\n    \"name\": \"cbr0\",\n    \"interface\": \"eth0\",\n    \"ips\": [\n        \"10.99.0."), "{bytes}");
    assert_eq!(parsed[0].gateway, vec!["10.99.0.1"], "{bytes}");
    assert!(parsed[1].gateway.is_empty() && parsed[1].ips[0].starts_with("10.98.1."));
    assert!(bytes.contains("\"dns\": {}"));
    for s in &parsed {
        assert!(s.mac.is_some(), "{bytes}");
    }

    // The journal: one record per attachment, all added, with the delegate config and result.
    let jdir = env.p("cni").join(cid);
    let mut files: Vec<String> = std::fs::read_dir(&jdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec!["0-eth0.json", "1-net1.json", "2-net2.json", "lock"]
    );
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(jdir.join("1-net1.json")).unwrap()).unwrap();
    assert_eq!(rec["state"], "added");
    assert_eq!(rec["index"], 1);
    assert_eq!(rec["attachment"]["network"], "default/macvlan-a");
    assert_eq!(rec["attachment"]["delegate"]["config"]["master"], "up0");
    assert_eq!(
        rec["invocation"]["netns"],
        env.pod.path().display().to_string()
    );
    assert!(
        rec["result"]["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.98.1.")
    );
    assert!(
        rec["invocation"]["cni_args"]
            .to_string()
            .contains("K8S_POD_NAME")
    );
    // pod annotations are not journaled (no plugin declares the capability)
    assert!(
        !std::fs::read_to_string(jdir.join("0-eth0.json"))
            .unwrap()
            .contains("config.source")
    );
    assert_eq!(env.leases().len(), 3, "{:?}", env.leases());

    // The log: one line per step, never the raw stdin.
    let log = env.log();
    assert!(
        log.contains("attached")
            && log.contains("network=default/macvlan-b")
            && log.contains("duration_us="),
        "{log}"
    );
    assert!(
        !log.contains("config.source"),
        "stdin leaked into the log:\n{log}"
    );

    // CHECK every attachment.
    let out = env.plexus("CHECK", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());

    // DEL: nothing left; the NADs are not needed.
    std::fs::remove_dir_all(env.p("nads")).unwrap();
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert!(out.stdout.is_empty());
    assert_eq!(env.pod_links(), vec!["lo"]);
    assert!(env.leases().is_empty(), "{:?}", env.leases());
    assert!(!jdir.exists());
    assert!(
        !status_path.exists(),
        "local network-status file left behind"
    );
    // containerd's second DEL: no netns, nothing journaled
    let out = env.plexus("DEL", cid, None, &config);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn failing_second_nad_rolls_everything_back() {
    let Some(env) = Env::new("failing_second_nad_rolls_everything_back") else {
        return;
    };
    let cid = "aa07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let config = env.config("macvlan-a,macvlan-bad");
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("error reply: {err}\nlog:\n{}", env.log());
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("default/macvlan-bad")
            && msg.contains("macvlan")
            && msg.contains("nosuchlink0"),
        "{err}"
    );
    assert_eq!(err["cniVersion"], "1.0.0");
    assert_eq!(env.pod_links(), vec!["lo"], "rollback left links");
    assert!(
        env.leases().is_empty(),
        "rollback left leases: {:?}",
        env.leases()
    );
    assert!(!env.p("cni").join(cid).exists(), "journal left behind");
    // the failure Event (local mode: appended to events.log)
    let events = std::fs::read_to_string(env.p("cni/events.log")).unwrap_or_default();
    assert!(events.contains("default/macvlan-bad"), "{events}");
    // DEL afterwards is a no-op success
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn corrupt_record_is_reported_and_the_others_are_still_deleted() {
    let Some(env) = Env::new("corrupt_record_is_reported_and_the_others_are_still_deleted") else {
        return;
    };
    let cid = "cc07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let config = env.config("macvlan-a,macvlan-b");
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let jdir = env.p("cni").join(cid);
    std::fs::write(jdir.join("1-net1.json"), b"{\"version\": 1, \"index\"").unwrap();
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        err["msg"].as_str().unwrap().contains("1-net1.json"),
        "{err}"
    );
    // eth0 and net2 are gone with their leases; only the corrupt record's attachment is left
    assert_eq!(
        env.pod_links()
            .iter()
            .filter(|l| *l != "lo")
            .collect::<Vec<_>>(),
        vec!["net1"]
    );
    assert_eq!(env.leases().len(), 1, "{:?}", env.leases());
    let mut left: Vec<String> = std::fs::read_dir(&jdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["1-net1.json", "lock"]);
}

#[test]
fn default_route_moves_to_the_selected_network_then_gc_and_status() {
    let Some(env) = Env::new("default_route_moves_to_the_selected_network_then_gc_and_status")
    else {
        return;
    };
    let cid = "dd07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let networks = r#"[{"name":"macvlan-a","default-route":["10.98.1.1"]},{"name":"macvlan-b","interface":"ext0"}]"#;
    let config = env.config(networks);
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let routes = env.pod.run_ok("ip", &["-4", "route", "show", "default"]);
    assert_eq!(routes.trim(), "default via 10.98.1.1 dev net1", "{routes}");
    let bytes = std::fs::read_to_string(env.p("cni/status/default_pod1.json")).unwrap();
    let parsed = plexus_crds::parse_network_status(&bytes).unwrap();
    assert!(parsed[0].gateway.is_empty(), "{bytes}");
    assert_eq!(parsed[1].gateway, vec!["10.98.1.1"], "{bytes}");
    assert_eq!(parsed[2].interface.as_deref(), Some("ext0"));

    // STATUS: the cluster network (bridge speaks 1.0.0: a no-op success, as in libcni).
    let mut status_conf: Value = serde_json::from_str(&config).unwrap();
    status_conf["cniVersion"] = json!("1.1.0");
    let out = env.plexus("STATUS", "", None, &status_conf.to_string());
    assert!(out.status.success(), "{}", text(&out));

    // GC with this sandbox still valid keeps everything.
    status_conf["cni.dev/valid-attachments"] = json!([{"containerID": cid, "ifname": "eth0"}]);
    let out = env.plexus("GC", "", None, &status_conf.to_string());
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert_eq!(env.leases().len(), 3);
    // GC without it deletes every journaled attachment of the sandbox.
    status_conf["cni.dev/valid-attachments"] = json!([]);
    let out = env.plexus("GC", "", None, &status_conf.to_string());
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert!(env.leases().is_empty(), "{:?}", env.leases());
    assert!(!env.p("cni").join(cid).exists());
}

#[test]
fn del_after_a_crash_between_delegate_add_and_record_update() {
    let Some(env) = Env::new("del_after_a_crash_between_delegate_add_and_record_update") else {
        return;
    };
    let cid = "ee07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let config = env.config("macvlan-a,macvlan-b");
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    // What a SIGKILL right after net2's delegate ADD leaves: its record still pending, no result.
    let rec_path = env.p("cni").join(cid).join("2-net2.json");
    let mut rec: Value =
        serde_json::from_str(&std::fs::read_to_string(&rec_path).unwrap()).unwrap();
    rec["state"] = json!("pending");
    rec.as_object_mut().unwrap().remove("result");
    std::fs::write(&rec_path, rec.to_string()).unwrap();
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert_eq!(env.pod_links(), vec!["lo"]);
    assert!(env.leases().is_empty(), "{:?}", env.leases());
    assert!(!env.p("cni").join(cid).exists());
}
