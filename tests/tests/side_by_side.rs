//! The same configs through the reference plugin (/usr/lib/cni, containernetworking-plugins
//! 1.1.1) and through ours, each into its own copy of the same topology with its own host-local
//! data dir, comparing exit status, the result JSON and what the pod sees. Every difference of a
//! test is collected and reported together.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::fmt::Debug;
use std::path::PathBuf;

use plexus_tests::cni_call::{CniCall, CniOutput};
use plexus_tests::normalize::{normalize_result, with_data_dir, with_prev_result};
use plexus_tests::snapshot::IfaceSnapshot;
use plexus_tests::topology::UPLINK;
use plexus_tests::{
    TestNetns, Topology, leases, links, plexus_bin, reference_bin, require_link_kind, require_root,
    snapshot,
};
use serde_json::{Value, json};
use tempfile::TempDir;

const IF: &str = "net1";
const CID: &str = "4f1c0ffee0ddba11";
const NET: &str = "plxnet";

/// One side: a binary with its own topology and data dir.
struct Side {
    label: &'static str,
    bin: PathBuf,
    topo: Topology,
    data: TempDir,
}

impl Side {
    fn new(label: &'static str, bin: PathBuf) -> Side {
        Side {
            label,
            bin,
            topo: Topology::new(),
            data: tempfile::Builder::new()
                .prefix("plx-ipam")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn call(&self, command: &str, netns: &str, conf: &Value, args: &str) -> CniOutput {
        let conf = with_data_dir(conf, self.data.path());
        let out = CniCall::new(command, CID, netns, IF, &conf)
            .with_args(args)
            .run(&self.bin, &self.topo.host);
        println!(
            "[{}] {command} -> {}: {}",
            self.label,
            out.status,
            out.raw_stdout.trim()
        );
        if !out.stderr.trim().is_empty() {
            println!("[{}] stderr: {}", self.label, out.stderr.trim());
        }
        out
    }

    fn leases(&self) -> Vec<String> {
        leases(self.data.path(), NET)
    }
}

fn sides(test: &str, kind: &str) -> Option<(Side, Side)> {
    if !require_root(test) {
        return None;
    }
    let reference = reference_bin(test, kind)?;
    let ours = plexus_bin(&format!("plexus-{kind}"));
    Some((Side::new("reference", reference), Side::new("plexus", ours)))
}

/// Differences found so far; [`Diffs::finish`] fails the test listing all of them.
#[derive(Default)]
struct Diffs(Vec<String>);

impl Diffs {
    fn same<T: PartialEq + Debug>(&mut self, what: &str, reference: T, ours: T) {
        if reference != ours {
            self.0.push(format!(
                "{what}:\n    reference: {reference:?}\n    plexus:    {ours:?}"
            ));
        }
    }

    fn expect(&mut self, what: &str, ok: bool, detail: impl Debug) {
        if !ok {
            self.0.push(format!("{what}: {detail:?}"));
        }
    }

    fn finish(self, test: &str) {
        if !self.0.is_empty() {
            panic!(
                "{test}: {} difference(s):\n  {}",
                self.0.len(),
                self.0.join("\n  ")
            );
        }
    }
}

fn macvlan(version: &str, mode: Option<&str>, ipam: Option<Value>) -> Value {
    let mut c = json!({"cniVersion": version, "name": NET, "type": "macvlan", "master": UPLINK});
    if let Some(m) = mode {
        c["mode"] = m.into();
    }
    if let Some(i) = ipam {
        c["ipam"] = i;
    }
    c
}

fn hl_v4() -> Value {
    json!({"type": "host-local",
        "ranges": [[{"subnet": "10.10.0.0/24", "gateway": "10.10.0.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.50.0/24", "gw": "10.10.0.254"}]})
}

fn hl_v6() -> Value {
    json!({"type": "host-local",
        "ranges": [[{"subnet": "fd00:10::/64", "gateway": "fd00:10::1"}]],
        "routes": [{"dst": "::/0"}]})
}

fn hl_dual() -> Value {
    json!({"type": "host-local",
        "ranges": [[{"subnet": "10.10.0.0/24", "gateway": "10.10.0.1"}],
                   [{"subnet": "fd00:10::/64", "gateway": "fd00:10::1"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]})
}

fn static_v4() -> Value {
    json!({"type": "static",
        "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.60.0/24", "gw": "10.10.0.253"}],
        "dns": {"nameservers": ["10.10.0.53"], "search": ["example.test"]}})
}

fn pod_snapshot(pod: &TestNetns, keep_mac: bool) -> Option<IfaceSnapshot> {
    snapshot(pod, IF).map(|s| {
        let mut n = s.normalized();
        if keep_mac {
            n.mac = s.mac;
        }
        n
    })
}

fn version_of(conf: &Value) -> &str {
    conf["cniVersion"].as_str().unwrap_or("")
}

fn supports_check(version: &str) -> bool {
    !matches!(version, "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1")
}

/// The snapshot without the sysctls: those are compared by `macvlan_pod_sysctls_side_by_side`
/// alone, so one divergence there does not hide every other difference.
fn without_sysctls(s: Option<IfaceSnapshot>) -> Option<IfaceSnapshot> {
    s.map(|mut s| {
        s.proxy_arp = None;
        s.arp_notify = None;
        s
    })
}

/// What one side did in a lifecycle.
struct Run {
    pod: TestNetns,
    add: CniOutput,
    snap: Option<IfaceSnapshot>,
    leases_after_add: Vec<String>,
    check: Option<CniOutput>,
    del: CniOutput,
    del2: CniOutput,
}

impl Run {
    fn path(&self) -> String {
        self.pod.path().display().to_string()
    }
}

/// ADD, CHECK (prevResult = the ADD result, 0.4.0+), DEL (with prevResult, 0.4.0+), DEL again,
/// on one side. DEL runs even when ADD failed, as runtimes do.
fn run_lifecycle(side: &Side, conf: &Value, args: &str, keep_mac: bool) -> Run {
    let version = version_of(conf);
    let pod = side.topo.pod();
    let path = pod.path().display().to_string();
    let add = side.call("ADD", &path, conf, args);
    let snap = pod_snapshot(&pod, keep_mac);
    let leases_after_add = side.leases();
    let with_prev = |c: &Value| match (&add.stdout, add.success() && supports_check(version)) {
        (Some(prev), true) => with_prev_result(c, prev),
        _ => c.clone(),
    };
    let check = (add.success() && supports_check(version))
        .then(|| side.call("CHECK", &path, &with_prev(conf), args));
    let del = side.call("DEL", &path, &with_prev(conf), args);
    let del2 = side.call("DEL", &path, conf, args);
    Run {
        pod,
        add,
        snap,
        leases_after_add,
        check,
        del,
        del2,
    }
}

/// Checks on our side alone: whatever happened, DELs succeed and nothing is left behind.
fn check_ours_clean(d: &mut Diffs, case: &str, o: &Side, or: &Run) {
    if !or.add.success() {
        d.expect(
            &format!("{case}: plexus ADD error reply"),
            or.add.is_cni_error(),
            &or.add.raw_stdout,
        );
    }
    if let Some(c) = &or.check {
        d.expect(&format!("{case}: plexus CHECK"), c.success(), &c.raw_stdout);
    }
    d.expect(
        &format!("{case}: plexus DEL"),
        or.del.success(),
        &or.del.raw_stdout,
    );
    d.expect(
        &format!("{case}: plexus second DEL"),
        or.del2.success(),
        &or.del2.raw_stdout,
    );
    d.expect(
        &format!("{case}: plexus pod is empty after DEL"),
        links(&or.pod) == ["lo"],
        links(&or.pod),
    );
    d.expect(
        &format!("{case}: plexus leases after DEL"),
        o.leases().is_empty(),
        o.leases(),
    );
    d.expect(
        &format!("{case}: plexus host links after DEL"),
        links(&o.topo.host).contains(&UPLINK.to_owned()),
        links(&o.topo.host),
    );
}

/// [`run_lifecycle`] through both sides, recording every difference in `d`.
fn lifecycle(
    d: &mut Diffs,
    case: &str,
    r: &Side,
    o: &Side,
    conf: &Value,
    args: &str,
    keep_mac: bool,
) {
    println!("=== {case}");
    let rr = run_lifecycle(r, conf, args, keep_mac);
    let or = run_lifecycle(o, conf, args, keep_mac);
    d.same(
        &format!("{case}: ADD succeeds"),
        rr.add.success(),
        or.add.success(),
    );
    if rr.add.success() && or.add.success() {
        d.same(
            &format!("{case}: ADD result"),
            normalize_result(rr.add.json(), &rr.path(), keep_mac),
            normalize_result(or.add.json(), &or.path(), keep_mac),
        );
    }
    d.same(
        &format!("{case}: pod interface"),
        without_sysctls(rr.snap.clone()),
        without_sysctls(or.snap.clone()),
    );
    d.same(
        &format!("{case}: leases after ADD"),
        &rr.leases_after_add,
        &or.leases_after_add,
    );
    d.same(
        &format!("{case}: CHECK succeeds"),
        rr.check.as_ref().map(CniOutput::success),
        or.check.as_ref().map(CniOutput::success),
    );
    d.same(
        &format!("{case}: DEL succeeds"),
        rr.del.success(),
        or.del.success(),
    );
    d.same(
        &format!("{case}: DEL stdout"),
        rr.del.raw_stdout.trim(),
        or.del.raw_stdout.trim(),
    );
    d.same(
        &format!("{case}: second DEL succeeds"),
        rr.del2.success(),
        or.del2.success(),
    );
    d.same(
        &format!("{case}: pod links after DEL"),
        links(&rr.pod),
        links(&or.pod),
    );
    d.same(&format!("{case}: leases after DEL"), r.leases(), o.leases());
    d.same(
        &format!("{case}: host links after DEL"),
        links(&r.topo.host),
        links(&o.topo.host),
    );
    check_ours_clean(d, case, o, &or);
}

#[test]
fn macvlan_cni_versions_side_by_side() {
    let test = "macvlan_cni_versions_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    for v in ["0.3.1", "0.4.0", "1.0.0"] {
        lifecycle(
            &mut d,
            &format!("v{v}"),
            &r,
            &o,
            &macvlan(v, Some("bridge"), Some(hl_v4())),
            "",
            false,
        );
    }
    d.finish(test);
}

#[test]
fn macvlan_modes_side_by_side() {
    let test = "macvlan_modes_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    for mode in ["bridge", "private", "vepa", "passthru"] {
        // passthru takes the master over: give each its own (each side has its own topology)
        let conf = if mode == "passthru" {
            let master = "ptmaster0";
            r.topo.add_uplink(master);
            o.topo.add_uplink(master);
            let mut c = macvlan("1.0.0", Some(mode), Some(hl_v4()));
            c["master"] = master.into();
            c
        } else {
            macvlan("1.0.0", Some(mode), Some(hl_v4()))
        };
        lifecycle(&mut d, mode, &r, &o, &conf, "IgnoreUnknown=1", false);
    }
    lifecycle(
        &mut d,
        "default mode",
        &r,
        &o,
        &macvlan("1.0.0", None, Some(hl_v4())),
        "",
        false,
    );
    d.finish(test);
}

#[test]
fn macvlan_ipam_variants_side_by_side() {
    let test = "macvlan_ipam_variants_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    let v = "1.0.0";
    lifecycle(
        &mut d,
        "host-local v6",
        &r,
        &o,
        &macvlan(v, Some("bridge"), Some(hl_v6())),
        "",
        false,
    );
    lifecycle(
        &mut d,
        "host-local dual stack",
        &r,
        &o,
        &macvlan(v, Some("bridge"), Some(hl_dual())),
        "",
        false,
    );
    lifecycle(
        &mut d,
        "static",
        &r,
        &o,
        &macvlan(v, Some("bridge"), Some(static_v4())),
        "",
        false,
    );
    lifecycle(
        &mut d,
        "static 0.4.0",
        &r,
        &o,
        &macvlan("0.4.0", Some("bridge"), Some(static_v4())),
        "",
        false,
    );
    lifecycle(
        &mut d,
        "L2 only",
        &r,
        &o,
        &macvlan(v, Some("bridge"), None),
        "",
        false,
    );
    lifecycle(
        &mut d,
        "L2 only 0.3.1",
        &r,
        &o,
        &macvlan("0.3.1", Some("bridge"), None),
        "",
        false,
    );
    let mut mtu = macvlan(v, Some("bridge"), Some(hl_v4()));
    mtu["mtu"] = 1400.into();
    lifecycle(&mut d, "mtu 1400", &r, &o, &mtu, "", false);
    let mut mac = macvlan(v, Some("bridge"), Some(hl_v4()));
    mac["mac"] = "02:11:22:33:44:55".into();
    lifecycle(&mut d, "mac in config", &r, &o, &mac, "", true);
    lifecycle(
        &mut d,
        "mac in CNI_ARGS",
        &r,
        &o,
        &macvlan(v, Some("bridge"), Some(hl_v4())),
        "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=02:11:22:33:44:66",
        true,
    );
    let mut rc = macvlan(v, Some("bridge"), Some(hl_v4()));
    rc["capabilities"] = json!({"mac": true});
    rc["runtimeConfig"] = json!({"mac": "02:11:22:33:44:77"});
    lifecycle(
        &mut d,
        "mac in runtimeConfig",
        &r,
        &o,
        &rc,
        "IgnoreUnknown=1;MAC=02:11:22:33:44:66",
        true,
    );
    d.finish(test);
}

#[test]
fn macvlan_cni_1_1_0_plexus_only() {
    // containernetworking-plugins 1.1.1 does not know 1.1.0: only ours is checked
    let test = "macvlan_cni_1_1_0_plexus_only";
    if !require_root(test) {
        return;
    }
    let o = Side::new("plexus", plexus_bin("plexus-macvlan"));
    let conf = macvlan("1.1.0", Some("bridge"), Some(hl_dual()));
    let pod = o.topo.pod();
    let path = pod.path().display().to_string();
    let add = o.call("ADD", &path, &conf, "");
    assert!(add.success(), "ADD: {add}");
    assert_eq!(add.json()["cniVersion"], "1.1.0");
    assert_eq!(add.json()["interfaces"][0]["sandbox"], path.as_str());
    assert_eq!(add.json()["ips"].as_array().map(Vec::len), Some(2), "{add}");
    assert!(
        add.json()["ips"][0].get("version").is_none(),
        "1.x results have no ips[].version"
    );
    let snap = snapshot(&pod, IF).expect("net1 exists");
    assert_eq!(snap.kind.as_deref(), Some("macvlan"));
    assert_eq!(o.leases().len(), 2);
    let check = o.call("CHECK", &path, &with_prev_result(&conf, add.json()), "");
    assert!(check.success(), "CHECK: {check}");
    let status = o.call("STATUS", "", &conf, "");
    assert!(status.success(), "STATUS: {status}");
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": CID, "ifname": IF}]);
    let out = o.call("GC", "", &gc, "");
    assert!(out.success(), "GC: {out}");
    assert_eq!(
        o.leases().len(),
        2,
        "GC keeps the leases of valid attachments"
    );
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = o.call("GC", "", &gc, "");
    assert!(out.success(), "GC: {out}");
    assert_eq!(
        o.leases().len(),
        0,
        "GC releases the leases of attachments not listed"
    );
    let del = o.call("DEL", &path, &with_prev_result(&conf, add.json()), "");
    assert!(del.success(), "DEL: {del}");
    assert!(o.call("DEL", &path, &conf, "").success());
    assert_eq!(links(&pod), ["lo"]);
}

#[test]
fn macvlan_pod_sysctls_side_by_side() {
    // proxy_arp and arp_notify as the pod sees them, with and without IPAM
    let test = "macvlan_pod_sysctls_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    for (case, conf) in [
        (
            "host-local",
            macvlan("1.0.0", Some("bridge"), Some(hl_v4())),
        ),
        ("L2 only", macvlan("1.0.0", Some("bridge"), None)),
    ] {
        let rr = run_lifecycle(&r, &conf, "", false);
        let or = run_lifecycle(&o, &conf, "", false);
        let sysctls = |run: &Run| {
            run.snap
                .as_ref()
                .map(|s| (s.proxy_arp.clone(), s.arp_notify.clone()))
        };
        d.same(
            &format!("{case}: (proxy_arp, arp_notify) in the pod"),
            sysctls(&rr),
            sysctls(&or),
        );
    }
    d.finish(test);
}

#[test]
fn macvlan_del_after_netns_deleted_side_by_side() {
    let test = "macvlan_del_after_netns_deleted_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    let conf = macvlan("1.0.0", Some("bridge"), Some(hl_v4()));
    let run = |side: &Side| {
        let pod = side.topo.pod();
        let path = pod.path().display().to_string();
        let add = side.call("ADD", &path, &conf, "");
        assert!(add.success(), "[{}] ADD: {add}", side.label);
        drop(pod);
        let del = side.call("DEL", &path, &with_prev_result(&conf, add.json()), "");
        let del2 = side.call("DEL", &path, &conf, "");
        (del, del2, side.leases())
    };
    let (r1, r2, rl) = run(&r);
    let (o1, o2, ol) = run(&o);
    d.same(
        "DEL with the netns gone succeeds",
        r1.success(),
        o1.success(),
    );
    d.same(
        "DEL stdout",
        r1.raw_stdout.trim().to_owned(),
        o1.raw_stdout.trim().to_owned(),
    );
    d.same("second DEL succeeds", r2.success(), o2.success());
    d.same("leases after DEL", rl, ol.clone());
    d.expect("plexus released the lease", ol.is_empty(), ol);
    d.same("host links", links(&r.topo.host), links(&o.topo.host));
    d.finish(test);
}

#[test]
fn macvlan_del_with_empty_netns_side_by_side() {
    let test = "macvlan_del_with_empty_netns_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    let conf = macvlan("1.0.0", Some("bridge"), Some(hl_v4()));
    let run = |side: &Side| {
        let pod = side.topo.pod();
        let add = side.call("ADD", &pod.path().display().to_string(), &conf, "");
        assert!(add.success(), "[{}] ADD: {add}", side.label);
        // containerd's second DEL: empty CNI_NETNS, no prevResult
        let del = side.call(
            "DEL",
            "",
            &conf,
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
        );
        let del2 = side.call("DEL", "", &conf, "IgnoreUnknown=1");
        let snap = pod_snapshot(&pod, false);
        (del, del2, side.leases(), snap, pod)
    };
    let (r1, r2, rl, rs, _rpod) = run(&r);
    let (o1, o2, ol, os, _opod) = run(&o);
    d.same(
        "DEL with empty CNI_NETNS succeeds",
        r1.success(),
        o1.success(),
    );
    d.same("second DEL succeeds", r2.success(), o2.success());
    d.same("leases after DEL", rl, ol.clone());
    d.expect("plexus released the lease", ol.is_empty(), ol);
    d.same(
        "pod interface (left in place: no netns to delete it from)",
        without_sysctls(rs),
        without_sysctls(os),
    );
    d.finish(test);
}

#[test]
fn macvlan_errors_side_by_side() {
    let test = "macvlan_errors_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    let base = || macvlan("1.0.0", Some("bridge"), Some(hl_v4()));
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let mut c = base();
    c["master"] = "nosuchdev0".into();
    cases.push(("missing master", c, ""));
    cases.push((
        "bad mode",
        macvlan("1.0.0", Some("bogus"), Some(hl_v4())),
        "",
    ));
    let mut c = base();
    c["mtu"] = 9000.into();
    cases.push(("mtu above the master's", c, ""));
    let mut c = base();
    c["mac"] = "zz:11:22:33:44:55".into();
    cases.push(("bad mac in config", c, ""));
    cases.push((
        "bad mac in CNI_ARGS",
        base(),
        "IgnoreUnknown=1;MAC=01:00:5e:00:00:01x",
    ));
    cases.push((
        "unknown CNI_ARGS key without IgnoreUnknown",
        base(),
        "K8S_POD_NAME=p;FOO=bar",
    ));
    for (case, conf, args) in cases {
        println!("=== {case}");
        let run = |side: &Side| {
            let pod = side.topo.pod();
            let out = side.call("ADD", &pod.path().display().to_string(), &conf, args);
            (out, links(&pod), side.leases())
        };
        let (rout, rlinks, rleases) = run(&r);
        let (oout, olinks, oleases) = run(&o);
        println!(
            "codes: reference {:?}, plexus {:?}",
            rout.error_code(),
            oout.error_code()
        );
        d.expect(
            &format!("{case}: reference fails with a CNI error"),
            rout.is_cni_error(),
            &rout.raw_stdout,
        );
        d.expect(
            &format!("{case}: plexus fails with a CNI error"),
            oout.is_cni_error(),
            &oout.raw_stdout,
        );
        d.same(&format!("{case}: pod links"), rlinks, olinks.clone());
        d.expect(
            &format!("{case}: plexus left no link"),
            olinks == ["lo"],
            olinks,
        );
        d.expect(
            &format!("{case}: reference left no lease"),
            rleases.is_empty(),
            rleases,
        );
        d.expect(
            &format!("{case}: plexus left no lease"),
            oleases.is_empty(),
            oleases,
        );
        d.same(
            &format!("{case}: host links"),
            links(&r.topo.host),
            links(&o.topo.host),
        );
    }
    d.finish(test);
}

#[test]
fn macvlan_ipam_failure_after_link_exists_leaves_nothing() {
    let test = "macvlan_ipam_failure_after_link_exists_leaves_nothing";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    // a /30 has one usable address besides the gateway; a pre-filled dataDir holds it
    let exhausted = json!({"type": "host-local",
        "ranges": [[{"subnet": "10.20.0.0/30", "gateway": "10.20.0.1"}]]});
    for side in [&r, &o] {
        let dir = side.data.path().join(NET);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("10.20.0.2"), "othercontainer\neth0").expect("prefill");
    }
    // an address the kernel rejects when it is added to the link (IPv6 multicast)
    let rejected = json!({"type": "static", "addresses": [{"address": "ff02::1/64"}]});
    for (case, ipam) in [
        ("host-local exhausted", exhausted),
        ("static address the kernel rejects", rejected),
    ] {
        println!("=== {case}");
        let conf = macvlan("1.0.0", Some("bridge"), Some(ipam));
        let run = |side: &Side| {
            let pod = side.topo.pod();
            let out = side.call("ADD", &pod.path().display().to_string(), &conf, "");
            (out, links(&pod), side.leases())
        };
        let (rout, rlinks, rleases) = run(&r);
        let (oout, olinks, oleases) = run(&o);
        d.same(
            &format!("{case}: ADD succeeds"),
            rout.success(),
            oout.success(),
        );
        d.expect(
            &format!("{case}: plexus fails with a CNI error"),
            oout.is_cni_error(),
            &oout.raw_stdout,
        );
        // containernetworking-plugins 1.1.1 leaves the half-made link behind here; the contract
        // (and ours) is to remove it, so the reference's links are only printed
        println!("{case}: reference left links {rlinks:?}");
        d.expect(
            &format!("{case}: plexus left no link"),
            olinks == ["lo"],
            olinks,
        );
        d.same(&format!("{case}: leases"), rleases, oleases.clone());
        d.expect(
            &format!("{case}: only the pre-filled lease"),
            oleases == ["10.20.0.2"],
            oleases,
        );
        d.same(
            &format!("{case}: host links"),
            links(&r.topo.host),
            links(&o.topo.host),
        );
    }
    let kept =
        std::fs::read_to_string(o.data.path().join(NET).join("10.20.0.2")).expect("lease kept");
    d.expect(
        "plexus kept the other container's lease",
        kept.starts_with("othercontainer"),
        kept,
    );
    d.finish(test);
}

#[test]
fn ipvlan_modes_side_by_side() {
    let test = "ipvlan_modes_side_by_side";
    if !require_link_kind(test, "ipvlan") {
        return;
    }
    let Some((r, o)) = sides(test, "ipvlan") else {
        return;
    };
    let mut d = Diffs::default();
    for mode in ["l2", "l3", "l3s"] {
        let conf = json!({"cniVersion": "1.0.0", "name": NET, "type": "ipvlan", "master": UPLINK,
            "mode": mode, "ipam": hl_v4()});
        lifecycle(&mut d, mode, &r, &o, &conf, "", false);
    }
    let conf = json!({"cniVersion": "0.4.0", "name": NET, "type": "ipvlan", "master": UPLINK,
        "mtu": 1400, "ipam": hl_dual()});
    lifecycle(
        &mut d,
        "default mode, mtu, dual stack, 0.4.0",
        &r,
        &o,
        &conf,
        "",
        false,
    );
    d.finish(test);
}

#[test]
fn ipvlan_errors_side_by_side() {
    let test = "ipvlan_errors_side_by_side";
    if !require_link_kind(test, "ipvlan") {
        return;
    }
    let Some((r, o)) = sides(test, "ipvlan") else {
        return;
    };
    let mut d = Diffs::default();
    for (case, conf) in [
        (
            "missing master",
            json!({"cniVersion": "1.0.0", "name": NET, "type": "ipvlan", "master": "nosuchdev0", "ipam": hl_v4()}),
        ),
        (
            "bad mode",
            json!({"cniVersion": "1.0.0", "name": NET, "type": "ipvlan", "master": UPLINK, "mode": "l9", "ipam": hl_v4()}),
        ),
        (
            "no ipam",
            json!({"cniVersion": "1.0.0", "name": NET, "type": "ipvlan", "master": UPLINK}),
        ),
    ] {
        let run = |side: &Side| {
            let pod = side.topo.pod();
            let out = side.call("ADD", &pod.path().display().to_string(), &conf, "");
            (out, links(&pod), side.leases())
        };
        let (rout, rlinks, rleases) = run(&r);
        let (oout, olinks, oleases) = run(&o);
        d.same(
            &format!("{case}: ADD succeeds"),
            rout.success(),
            oout.success(),
        );
        d.expect(
            &format!("{case}: plexus fails with a CNI error"),
            oout.is_cni_error(),
            &oout.raw_stdout,
        );
        // the reference (1.1.1) leaves the link behind when it fails after creating it ("no
        // ipam"); the contract (and ours) is to leave nothing, so its links are only printed
        println!("{case}: reference left links {rlinks:?}");
        d.expect(
            &format!("{case}: plexus left no link"),
            olinks == ["lo"],
            olinks,
        );
        d.same(&format!("{case}: leases"), rleases, oleases);
    }
    d.finish(test);
}

#[test]
fn macvlan_two_networks_with_default_routes_side_by_side() {
    // podman's two-network pod (testdata/runtime/podman-2nets-staticip.log): the second
    // attachment's default route collides with the first one's; the reference skips routes that
    // already exist ("the first one wins")
    let test = "macvlan_two_networks_with_default_routes_side_by_side";
    let Some((r, o)) = sides(test, "macvlan") else {
        return;
    };
    let mut d = Diffs::default();
    let first = macvlan("1.0.0", Some("bridge"), Some(hl_v4()));
    let mut second = macvlan(
        "0.4.0",
        Some("bridge"),
        Some(json!({"type": "host-local",
        "ranges": [[{"subnet": "10.30.0.0/24", "gateway": "10.30.0.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}]})),
    );
    second["name"] = "plxnet2".into();
    let run = |side: &Side| {
        let pod = side.topo.pod();
        let path = pod.path().display().to_string();
        let a = side.call("ADD", &path, &first, "");
        let conf2 = with_data_dir(&second, side.data.path());
        let b = CniCall::new("ADD", CID, &path, "net2", &conf2).run(&side.bin, &side.topo.host);
        println!(
            "[{}] second ADD -> {}: {}",
            side.label,
            b.status,
            b.raw_stdout.trim()
        );
        let routes = ["net1", "net2"].map(|i| snapshot(&pod, i).map(|s| s.routes));
        CniCall::new("DEL", CID, &path, "net2", &conf2).run(&side.bin, &side.topo.host);
        side.call("DEL", &path, &first, "");
        (a.success(), b.success(), routes)
    };
    let (ra, rb, rroutes) = run(&r);
    let (oa, ob, oroutes) = run(&o);
    d.same("first ADD succeeds", ra, oa);
    d.same("second ADD (colliding default route) succeeds", rb, ob);
    d.same("routes of net1 and net2", rroutes, oroutes);
    d.finish(test);
}
