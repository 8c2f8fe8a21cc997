//! The real `plexus` binary, run as containerd runs it, in real network namespaces, local mode:
//! eth0 through the reference bridge + host-local, net1/net2 through two macvlan NADs whose
//! master is a veth in a "node" namespace (the test bed is [`local_env`]). Needs root and the
//! reference plugins in `/usr/lib/cni`; skips with the reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_env;
mod pod_state;

use local_env::{Env, text};
use plexus_delegates::netns::fixture::TestNetns;
use serde_json::{Value, json};

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
    let jdir = env.journal_dir(cid);
    assert_eq!(env.journal_files(cid), local_env::COMPLETED_JOURNAL);
    // The pending record (written before the delegate) and the added one (after it).
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(jdir.join(name)).unwrap()).unwrap()
    };
    let pending = read("1-net1.json");
    assert_eq!(pending["state"], "pending");
    assert!(pending.get("result").is_none(), "{pending}");
    let rec = read("added-1-net1.json");
    assert_eq!(rec["state"], "added");
    assert_eq!(rec["attachment"], pending["attachment"]);
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

/// The cluster network's plugin fails after the built-in attachments made meanwhile (the
/// overlap) succeeded: all of them are rolled back, and the error names the cluster network.
#[test]
fn failing_cluster_network_rolls_back_the_attachments_made_meanwhile() {
    let Some(env) = Env::new("failing_cluster_network_rolls_back_the_attachments_made_meanwhile")
    else {
        return;
    };
    // Slow enough that net1 and net2 are made before it fails.
    env.write_script(
        "slowfail",
        "#!/bin/sh\n\
         cat > /dev/null\n\
         if [ \"$CNI_COMMAND\" = ADD ]; then\n\
         \tsleep 0.5\n\
         \techo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"the cluster network is down\"}'\n\
         \texit 1\n\
         fi\n",
    );
    let failing =
        json!({"cniVersion": "1.0.0", "name": "cbr-down", "plugins": [{"type": "slowfail"}]});
    std::fs::write(env.p("net.d/20-down.conflist"), failing.to_string()).unwrap();
    let mut config = env.config_json("macvlan-a,macvlan-b");
    config["clusterNetwork"] = json!(env.p("net.d/20-down.conflist"));
    config["binDir"] = json!(env.p("bin"));
    let config = config.to_string();
    let cid = "ac07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = env.log();
    assert_eq!(err["code"], 11, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("cbr-down") && msg.contains("the cluster network is down"),
        "{err}"
    );
    // Both macvlans were attached while the cluster network's plugin ran, then undone.
    for network in ["default/macvlan-a", "default/macvlan-b"] {
        assert!(
            log.lines()
                .any(|l| l.contains("attached") && l.contains(network)),
            "{network} was not attached meanwhile:\n{log}"
        );
        assert!(
            log.lines()
                .any(|l| l.contains("rolled back") && l.contains(network)),
            "{network} was not rolled back:\n{log}"
        );
    }
    assert_eq!(env.pod_links(), vec!["lo"], "rollback left links");
    assert!(env.leases().is_empty(), "leases left: {:?}", env.leases());
    assert!(!env.p("cni").join(cid).exists(), "journal left behind");
}

/// The cluster network's plugin is started before its journal record is written (its process
/// start overlaps the fsync), but it gets its configuration, and so acts, only once the record
/// is there.
#[test]
fn the_cluster_network_plugin_starts_early_but_acts_after_its_record_is_journaled() {
    let Some(env) =
        Env::new("the_cluster_network_plugin_starts_early_but_acts_after_its_record_is_journaled")
    else {
        return;
    };
    let marker = env.p("record-seen");
    // The reference bridge, behind a check of the journal when it gets its configuration.
    env.write_script(
        "journal-check",
        &format!(
            "#!/bin/sh\n\
             config=$(cat)\n\
             if [ \"$CNI_COMMAND\" = ADD ]; then\n\
             \tif [ -f \"{cni}/$CNI_CONTAINERID/0-eth0.json\" ]; then echo yes; else echo no; fi > {marker}\n\
             fi\n\
             printf '%s' \"$config\" | exec {ref}/bridge\n",
            cni = env.p("cni").display(),
            marker = marker.display(),
            ref = local_env::REF_BIN,
        ),
    );
    let mut conflist: Value =
        serde_json::from_str(&std::fs::read_to_string(env.p("net.d/10-bridge.conflist")).unwrap())
            .unwrap();
    conflist["plugins"][0]["type"] = json!("journal-check");
    std::fs::write(env.p("net.d/30-checked.conflist"), conflist.to_string()).unwrap();
    let mut config = env.config_json("macvlan-a");
    config["clusterNetwork"] = json!(env.p("net.d/30-checked.conflist"));
    config["binDir"] = json!(env.p("bin"));
    let config = config.to_string();
    let cid = "ae07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    let log = env.log();
    assert!(out.status.success(), "{}\nlog:\n{log}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "yes",
        "the plugin acted before its record was journaled"
    );
    // Started first, then the record written.
    let started = log
        .find("plugin started plugin=\"journal-check\"")
        .expect("no start line");
    let journaled = log.find("journaled records=1").expect("no journal line");
    assert!(started < journaled, "{log}");
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}", text(&out));
    env.assert_nothing_left(cid, "after DEL");
}

/// With `overlapClusterNetwork: false` the attachments are made strictly one after another
/// (as Multus does): the first NAD is attached only after the cluster network's plugin ended.
#[test]
fn without_the_overlap_attachments_are_made_one_after_another() {
    let Some(env) = Env::new("without_the_overlap_attachments_are_made_one_after_another") else {
        return;
    };
    let cid = "ad07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let mut config = env.config_json("macvlan-a");
    config["overlapClusterNetwork"] = json!(false);
    let config = config.to_string();
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let log = env.log();
    let attached: Vec<&str> = log.lines().filter(|l| l.contains(" attached ")).collect();
    assert_eq!(attached.len(), 2, "{log}");
    assert!(attached[0].contains("cbr0") && attached[1].contains("default/macvlan-a"));
    // The kernel's index order is the plan's.
    assert_eq!(env.pod_links(), vec!["lo", "eth0", "net1"]);
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}", text(&out));
    env.assert_nothing_left(cid, "after DEL");
    // DEL strictly in reverse: net1 is detached (its line written) before eth0's DEL starts.
    let log = env.log();
    let detached: Vec<&str> = log.lines().filter(|l| l.contains(" detached ")).collect();
    assert_eq!(detached.len(), 2, "{log}");
    assert!(
        detached[0].contains("default/macvlan-a") && detached[1].contains("cbr0"),
        "{log}"
    );
}

/// A failure before the last network: the records journaled for the networks after it (whose
/// delegates never ran) go with the rollback.
#[test]
fn failing_first_nad_rolls_back_and_drops_the_records_after_it() {
    let Some(env) = Env::new("failing_first_nad_rolls_back_and_drops_the_records_after_it") else {
        return;
    };
    let cid = "ab07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let config = env.config("macvlan-bad,macvlan-a");
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        err["msg"].as_str().unwrap().contains("default/macvlan-bad"),
        "{err}"
    );
    assert_eq!(env.pod_links(), vec!["lo"], "rollback left links");
    assert!(
        env.leases().is_empty(),
        "rollback left leases: {:?}",
        env.leases()
    );
    assert!(
        !env.p("cni").join(cid).exists(),
        "journal left behind: {:?}\nlog:\n{}",
        env.journal_files(cid),
        env.log()
    );
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
    // Both files of net1's record are unreadable.
    std::fs::write(jdir.join("1-net1.json"), b"{\"version\": 1, \"index\"").unwrap();
    std::fs::write(
        jdir.join("added-1-net1.json"),
        b"{\"version\": 1, \"index\"",
    )
    .unwrap();
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
    // retryDeleteOnError is off: the corrupt record cannot be run, so it leaves the journal for
    // the orphan area (kept, byte for byte, for an operator), and the runtime's retry succeeds.
    let orphan = env.orphan_dir(cid).join("1-net1.json");
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains(&orphan.display().to_string()),
        "{err}"
    );
    assert!(!jdir.exists(), "{:?}", env.journal_files(cid));
    assert_eq!(
        std::fs::read(&orphan).unwrap(),
        b"{\"version\": 1, \"index\""
    );
    let out = env.plexus("DEL", cid, None, &config);
    assert!(out.status.success(), "{}", text(&out));
    // GC keeps reporting it: nothing can delete what it described.
    let mut gc: Value = serde_json::from_str(&config).unwrap();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = env.plexus("GC", "", None, &gc.to_string());
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        err["msg"].as_str().unwrap().contains("1-net1.json"),
        "{err}"
    );
    assert!(orphan.exists());
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

#[test]
fn bad_nad_manifest_is_invalid_config_naming_file_and_field_and_attaches_nothing() {
    let Some(env) =
        Env::new("bad_nad_manifest_is_invalid_config_naming_file_and_field_and_attaches_nothing")
    else {
        return;
    };
    let cid = "ff07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    // spec.config written as a YAML mapping instead of a JSON string: a common mistake.
    std::fs::write(
        env.p("nads/broken.yaml"),
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: broken\nspec:\n  config:\n    type: macvlan\n    master: up0\n",
    )
    .unwrap();
    let config = env.config("macvlan-a");
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 7, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("broken.yaml") && msg.contains("spec.config"),
        "{err}"
    );
    assert_eq!(env.pod_links(), vec!["lo"]);
    assert!(env.leases().is_empty(), "{:?}", env.leases());
    assert!(!env.journal_dir(cid).exists());
}

#[test]
fn del_of_an_old_sandbox_leaves_the_new_sandboxs_status_file() {
    let Some(env) = Env::new("del_of_an_old_sandbox_leaves_the_new_sandboxs_status_file") else {
        return;
    };
    let old = "0107cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let new = "0207cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd2000";
    let config = env.config("macvlan-a");
    // The pod's sandbox is re-created (same pod, new container id and netns) before the runtime
    // got round to the old sandbox's DEL.
    let newer = TestNetns::new("pxq");
    let out = env.plexus("ADD", old, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let out = env.plexus("ADD", new, Some(newer.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let new_status = std::fs::read_to_string(env.status_path()).unwrap();
    let new_eth0 = pod_state::addr(&newer, "eth0");
    let new_ip = new_eth0
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        new_status.contains(&format!("\"{new_ip}\"")),
        "{new_status}"
    );
    assert_eq!(
        std::fs::read_to_string(env.status_owner_path()).unwrap(),
        new
    );

    // The old sandbox's DEL: its attachments go, the new sandbox's status file stays.
    let out = env.plexus("DEL", old, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert_eq!(env.pod_links(), vec!["lo"]);
    assert!(!env.journal_dir(old).exists());
    assert_eq!(
        std::fs::read_to_string(env.status_path()).unwrap(),
        new_status
    );
    assert!(
        env.log().contains("belongs to a newer sandbox"),
        "{}",
        env.log()
    );

    // The new sandbox's DEL removes it.
    let out = env.plexus("DEL", new, Some(newer.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert_eq!(pod_state::pod_links(&newer), vec!["lo"]);
    env.assert_nothing_left(new, "after both DELs");
    env.assert_nothing_left(old, "after both DELs");
}
