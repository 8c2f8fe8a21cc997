//! A sandbox Multus set up before the node switched to Plexus, torn down by the real `plexus`
//! binary's DEL, in real network namespaces (the local-mode test bed [`local_env`]): eth0 made by
//! the reference bridge and net1 by the reference macvlan, executed directly with the stdin,
//! CNI_ARGS and libcni result cache Multus's ADD would have produced, plus Multus's cache file
//! `<cniDir>/<containerID>`. Needs root and the reference plugins; skips with the reason
//! otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_env;
mod pod_state;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use local_env::{Env, POD, REF_BIN, text};
use serde_json::{Value, json};

const UID: &str = "0f3a6c1e-1111-4222-8333-944455556666";

/// CNI_ARGS as Multus hands them to its delegates for this test bed's runtime CNI_ARGS.
fn multus_cni_args(cid: &str) -> String {
    format!(
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME={POD};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={UID};\
         IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={POD};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={UID}"
    )
}

/// Runs a reference plugin's ADD in the node namespace, as libcni inside Multus runs it.
fn reference_add(env: &Env, plugin: &str, cid: &str, ifname: &str, stdin: &Value) -> Value {
    let stdin = stdin.to_string();
    let out = env
        .node
        .netns()
        .run_in(|| {
            let mut child = Command::new(format!("{REF_BIN}/{plugin}"))
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("CNI_COMMAND", "ADD")
                .env("CNI_CONTAINERID", cid)
                .env("CNI_NETNS", env.pod.path())
                .env("CNI_IFNAME", ifname)
                .env("CNI_ARGS", multus_cni_args(cid))
                .env("CNI_PATH", REF_BIN)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .unwrap();
    assert!(out.status.success(), "{plugin} ADD: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// libcni's result cache entry, as it writes `<cacheDir>/results/<net>-<cid>-<ifname>`.
fn write_libcni_cache(env: &Env, network: &str, cid: &str, ifname: &str, config: &str, r: &Value) {
    let dir = env.p("cni/results");
    std::fs::create_dir_all(&dir).unwrap();
    let args: Vec<Vec<String>> = multus_cni_args(cid)
        .split(';')
        .map(|kv| kv.splitn(2, '=').map(str::to_owned).collect())
        .collect();
    let cached = json!({
        "kind": "cniCacheV1", "containerId": cid, "config": STANDARD.encode(config),
        "ifName": ifname, "networkName": network, "netns": env.pod.path(),
        "cniArgs": args, "result": r
    });
    std::fs::write(
        dir.join(format!("{network}-{cid}-{ifname}")),
        cached.to_string(),
    )
    .unwrap();
}

/// One element of Multus's cached `[]*DelegateNetConf`, Go field names and order.
fn delegate(name: &str, config: &str, conf_list: Value) -> Value {
    let parsed: Value = serde_json::from_str(config).unwrap();
    json!({
        "Conf": {"cniVersion": parsed["cniVersion"], "name": parsed["name"],
                 "type": parsed.get("type").cloned().unwrap_or(Value::Null),
                 "ipam": {}, "dns": {}},
        "ConfList": conf_list,
        "Name": name,
        "IsFilterV4Gateway": false,
        "IsFilterV6Gateway": false,
        "Bytes": STANDARD.encode(config)
    })
}

/// What Multus would have left on the node for `cid`: eth0 (reference bridge), net1 (reference
/// macvlan, NAD macvlan-a), libcni's result caches and Multus's cache file.
fn multus_sandbox(env: &Env, cid: &str) -> PathBuf {
    let cbr0 = std::fs::read_to_string(env.p("net.d/10-bridge.conflist")).unwrap();
    let list: Value = serde_json::from_str(&cbr0).unwrap();
    let mut bridge = list["plugins"][0].clone();
    bridge["name"] = list["name"].clone();
    bridge["cniVersion"] = list["cniVersion"].clone();
    let r0 = reference_add(env, "bridge", cid, "eth0", &bridge);
    write_libcni_cache(env, "cbr0", cid, "eth0", &cbr0, &r0);

    let nad: Value =
        serde_json::from_str(&std::fs::read_to_string(env.p("nads/macvlan-a.json")).unwrap())
            .unwrap();
    let macvlan = nad["spec"]["config"].as_str().unwrap().to_owned();
    let r1 = reference_add(
        env,
        "macvlan",
        cid,
        "net1",
        &serde_json::from_str(&macvlan).unwrap(),
    );
    write_libcni_cache(env, "macvlan-a", cid, "net1", &macvlan, &r1);

    let cache = json!([
        delegate(
            "cbr0",
            &cbr0,
            json!({"cniVersion": "1.0.0", "name": "cbr0",
                   "plugins": [{"type": "bridge", "ipam": {"type": "host-local"}, "dns": {}}]})
        ),
        delegate("default/macvlan-a", &macvlan, json!({})),
    ]);
    let path = env.p("cni").join(cid);
    std::fs::write(&path, cache.to_string()).unwrap();
    path
}

#[test]
fn del_of_a_multus_sandbox_runs_its_cached_delegates() {
    let Some(env) = Env::new("del_of_a_multus_sandbox_runs_its_cached_delegates") else {
        return;
    };
    let cid = "7c1e9a0b3d5f4e2a8b6c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a";
    let cache = multus_sandbox(&env, cid);
    let links = env.pod_links();
    assert!(
        links.contains(&"eth0".to_owned()) && links.contains(&"net1".to_owned()),
        "{links:?}"
    );
    assert_eq!(env.leases().len(), 2, "{:?}", env.leases());

    let config = env.config("macvlan-a");
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert!(out.stdout.is_empty(), "{}", text(&out));

    // Links, leases, Multus's cache file (the same path as a journal directory) all gone.
    env.assert_nothing_left(cid, "after the DEL from the Multus cache");
    assert!(!cache.exists());
    let results: Vec<_> = std::fs::read_dir(env.p("cni/results"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(results.is_empty(), "libcni result caches left: {results:?}");
    let log = env.log();
    assert!(log.contains("a Multus cache file exists"), "{log}");
    assert!(log.contains("Multus cache file removed"), "{log}");

    // containerd's second DEL: nothing journaled, no cache file, nothing done.
    let out = env.plexus("DEL", cid, None, &config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        env.log().contains("nothing journaled: DEL is a no-op"),
        "{}",
        env.log()
    );
    env.assert_nothing_left(cid, "after the second DEL");
}

#[test]
fn del_with_a_corrupt_multus_cache_fails_naming_it() {
    let Some(env) = Env::new("del_with_a_corrupt_multus_cache_fails_naming_it") else {
        return;
    };
    let cid = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let cache = env.p("cni").join(cid);
    std::fs::create_dir_all(env.p("cni")).unwrap();
    std::fs::write(&cache, r#"[{"Conf":{"cniVersion":"1.0.0","na"#).unwrap();
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &env.config("macvlan-a"));
    assert!(!out.status.success(), "{}", text(&out));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["code"], 6, "{reply}");
    let msg = reply["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "Multus cache file {} cannot be read",
            cache.display()
        )),
        "{msg}"
    );
    // Nothing else done: the file is as it was.
    assert_eq!(
        std::fs::read_to_string(&cache).unwrap(),
        r#"[{"Conf":{"cniVersion":"1.0.0","na"#
    );
}
