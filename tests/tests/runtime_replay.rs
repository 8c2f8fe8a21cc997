//! Replays the real client inputs captured in `shared/testdata/runtime/` (containerd 1.6 CRI and
//! podman 4.3 driving the reference plugins) against our binaries and our in-process IPAM, and
//! checks every call succeeds or fails as it did, with results of the same shape.
//!
//! - `macvlan`/`ipvlan` calls run `plexus-macvlan`/`plexus-ipvlan` exactly as the runtime ran the
//!   reference (only `CNI_*` + `PATH`, in the test's host netns).
//! - `host-local`/`static` calls are the IPAM sub-calls the reference macvlan made; they are
//!   replayed through `plexus_delegates::ipam` in-process, on their own data dir, so both streams
//!   see the same history and must hand out the same addresses.
//! - Rewritten: netns paths (one pod netns per recorded sandbox), `master` (→ the test uplink),
//!   `ipam.dataDir` (→ a temp dir, also when absent: never /var/lib/cni), `CNI_PATH`, and in
//!   prevResults the addresses and MACs our earlier calls handed out instead of the recorded ones.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use plexus_delegates::cni::{CniArgs, NetConf, Request};
use plexus_delegates::ipam;
use plexus_tests::bins::plexus_cni_path;
use plexus_tests::cni_call::CniCall;
use plexus_tests::runtime_log::{LogEntry, parse, sessions, testdata_dir};
use plexus_tests::topology::UPLINK;
use plexus_tests::{TestNetns, Topology, links, plexus_bin, require_root, skip};
use serde_json::Value;
use tempfile::TempDir;

/// Replace strings found in `map` (exact match), recursively.
fn rewrite_strings(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(n) = map.get(s.as_str()) {
                *s = n.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_strings(x, map)),
        Value::Object(o) => o.values_mut().for_each(|x| rewrite_strings(x, map)),
        _ => {}
    }
}

struct Session {
    name: String,
    topo: Topology,
    _cni_path_dir: TempDir,
    cni_path: String,
    plugin_data: TempDir,
    ipam_data: TempDir,
    /// recorded netns path → our pod netns
    pods: HashMap<String, TestNetns>,
    /// recorded → ours, for the plugin stream (paths, addresses, MACs)
    plugin_map: HashMap<String, String>,
    /// recorded address → the address our in-process IPAM handed out
    ipam_ips: HashMap<String, String>,
    failures: Vec<String>,
    replayed: usize,
    skipped: HashMap<String, usize>,
}

impl Session {
    fn new(name: &str) -> Session {
        let (dir, cni_path) = plexus_cni_path();
        let tmp = |p: &str| {
            tempfile::Builder::new()
                .prefix(p)
                .tempdir()
                .expect("tempdir")
        };
        Session {
            name: name.to_owned(),
            topo: Topology::new(),
            _cni_path_dir: dir,
            cni_path,
            plugin_data: tmp("plx-replay-plugin"),
            ipam_data: tmp("plx-replay-ipam"),
            pods: HashMap::new(),
            plugin_map: HashMap::new(),
            ipam_ips: HashMap::new(),
            failures: Vec::new(),
            replayed: 0,
            skipped: HashMap::new(),
        }
    }

    fn fail(&mut self, e: &LogEntry, msg: String) {
        self.failures.push(format!(
            "{} line {} ({} {}): {msg}",
            self.name,
            e.line,
            e.plugin,
            e.command()
        ));
    }

    /// Our netns path for a recorded `CNI_NETNS` ("" and "dummy" pass through).
    fn netns(&mut self, recorded: &str) -> String {
        if recorded.is_empty() || recorded == "dummy" {
            return recorded.to_owned();
        }
        if !self.pods.contains_key(recorded) {
            let pod = self.topo.pod();
            let ours = pod.path().display().to_string();
            self.plugin_map.insert(recorded.to_owned(), ours);
            self.pods.insert(recorded.to_owned(), pod);
        }
        self.pods[recorded].path().display().to_string()
    }

    /// The recorded config with master, dataDir and (plugin stream) learned values rewritten.
    fn config(&self, e: &LogEntry, data_dir: &Path, learned: bool) -> Vec<u8> {
        let Some(mut conf) = e.stdin_json() else {
            return e.stdin.clone().into_bytes();
        };
        if learned {
            rewrite_strings(&mut conf, &self.plugin_map);
        }
        if let Some(obj) = conf.as_object_mut() {
            let master = obj
                .keys()
                .find(|k| k.eq_ignore_ascii_case("master"))
                .cloned();
            if let Some(k) = master
                && obj[&k].as_str().is_some_and(|m| !m.is_empty())
            {
                obj.insert(k, UPLINK.into());
            }
            if let Some(ipam) = obj.get_mut("ipam").and_then(Value::as_object_mut) {
                ipam.insert("dataDir".into(), data_dir.display().to_string().into());
            }
        }
        serde_json::to_vec(&conf).expect("serialize")
    }

    fn env(&mut self, e: &LogEntry) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = e
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("CNI_"))
            .cloned()
            .collect();
        let ns = self.netns(e.env("CNI_NETNS").unwrap_or(""));
        env.insert("CNI_NETNS".into(), ns);
        env.insert("CNI_PATH".into(), self.cni_path.clone());
        env
    }

    fn replay(&mut self, e: &LogEntry) {
        match e.plugin.as_str() {
            "macvlan" | "ipvlan" => self.replay_plugin(e),
            "host-local" | "static" => self.replay_ipam(e),
            other => {
                *self.skipped.entry(other.to_owned()).or_default() += 1;
                return;
            }
        }
        self.replayed += 1;
    }

    fn replay_plugin(&mut self, e: &LogEntry) {
        let bin = plexus_bin(&format!("plexus-{}", e.plugin));
        let env = self.env(e);
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        let call = CniCall {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
            path: get("CNI_PATH"),
            stdin: self.config(e, self.plugin_data.path(), true),
        };
        let out = call.run(&bin, &self.topo.host);
        println!(
            "{} line {}: {} {} -> {} (recorded rc={})",
            self.name,
            e.line,
            e.plugin,
            e.command(),
            out.status,
            e.rc
        );
        if out.success() != (e.rc == 0) {
            self.fail(e, format!("recorded rc={}, ours: {out}", e.rc));
            return;
        }
        if !out.success() {
            if !out.is_cni_error() {
                self.fail(e, format!("failure without a CNI error reply: {out}"));
            }
            return;
        }
        let recorded = e.stdout_json();
        match e.command() {
            "VERSION" => {
                let asked = e
                    .stdin_json()
                    .and_then(|v| v["cniVersion"].as_str().map(str::to_owned));
                let ours: Vec<String> = out
                    .stdout
                    .as_ref()
                    .and_then(|v| v["supportedVersions"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect();
                if let Some(a) = asked
                    && !ours.contains(&a)
                {
                    self.fail(
                        e,
                        format!("supportedVersions {ours:?} lacks the config's {a}"),
                    );
                }
                let theirs = recorded
                    .as_ref()
                    .and_then(|v| v["supportedVersions"].as_array().cloned())
                    .unwrap_or_default();
                for v in theirs.iter().filter_map(Value::as_str) {
                    if !ours.iter().any(|o| o == v) {
                        self.fail(
                            e,
                            format!(
                                "supportedVersions {ours:?} lacks {v}, which the reference supports"
                            ),
                        );
                    }
                }
            }
            "ADD" => {
                let (Some(rec), Some(ours)) = (recorded, out.stdout.clone()) else {
                    self.fail(e, format!("ADD without a JSON result: {out}"));
                    return;
                };
                self.compare_result(e, &rec, &ours, true);
            }
            _ => {
                // DEL/CHECK print nothing, like the reference
                if out.raw_stdout.trim().is_empty() != e.stdout.is_empty() {
                    self.fail(
                        e,
                        format!("stdout {:?}, recorded {:?}", out.raw_stdout, e.stdout),
                    );
                }
            }
        }
    }

    fn replay_ipam(&mut self, e: &LogEntry) {
        let env = self.env(e);
        let config = self.config(e, self.ipam_data.path(), false);
        let req = match Request::parse(|k| env.get(k).cloned(), config) {
            Ok(r) => r,
            Err(err) => {
                if e.rc == 0 {
                    self.fail(e, format!("request rejected: {err}"));
                }
                return;
            }
        };
        let outcome = NetConf::parse(&req.config).and_then(|conf| {
            let version = conf.version()?;
            match e.command() {
                "ADD" => ipam::add(&req, &conf).map(|r| Some(r.to_json(version))),
                "DEL" => ipam::del(&req, &conf).map(|()| None),
                "CHECK" => ipam::check(&req, &conf).map(|()| None),
                other => panic!("unexpected IPAM verb {other}"),
            }
        });
        println!(
            "{} line {}: in-process {} {} -> {} (recorded rc={})",
            self.name,
            e.line,
            e.plugin,
            e.command(),
            if outcome.is_ok() { "ok" } else { "error" },
            e.rc
        );
        match (outcome, e.rc == 0) {
            (Ok(Some(ours)), true) => match e.stdout_json() {
                Some(rec) => self.compare_result(e, &rec, &ours, false),
                None => self.fail(e, "recorded ADD has no JSON result".into()),
            },
            (Ok(None), true) => {}
            (Err(_), false) => {}
            (Ok(_), false) => self.fail(e, format!("recorded rc={}, ours succeeded", e.rc)),
            (Err(err), true) => self.fail(e, format!("recorded success, ours failed: {err}")),
        }
    }

    /// Same shape: version layout, counts, names, gateways, routes, DNS; addresses in the same
    /// subnet (equal when the runtime requested one with `IP=`); the MAC when requested with `MAC=`.
    fn compare_result(&mut self, e: &LogEntry, rec: &Value, ours: &Value, plugin_stream: bool) {
        let mut rec_rw = rec.clone();
        rewrite_strings(&mut rec_rw, &self.plugin_map);
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        };
        if keys(rec) != keys(ours) {
            self.fail(
                e,
                format!("result keys {:?}, recorded {:?}", keys(ours), keys(rec)),
            );
        }
        if rec["cniVersion"] != ours["cniVersion"] {
            self.fail(
                e,
                format!(
                    "cniVersion {}, recorded {}",
                    ours["cniVersion"], rec["cniVersion"]
                ),
            );
        }
        for k in ["routes", "dns"] {
            if rec_rw[k] != ours[k] {
                self.fail(e, format!("{k} {}, recorded {}", ours[k], rec_rw[k]));
            }
        }
        let arr = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
        let (ri, oi) = (arr(&rec_rw, "interfaces"), arr(ours, "interfaces"));
        if ri.len() != oi.len() {
            self.fail(e, format!("{} interfaces, recorded {}", oi.len(), ri.len()));
        }
        let args = CniArgs::parse(e.env("CNI_ARGS").unwrap_or("")).ok();
        let asked_mac = args.as_ref().and_then(|a| a.get("MAC").map(str::to_owned));
        let asked_ip = args.as_ref().and_then(|a| a.get("IP").map(str::to_owned));
        for (r, o) in ri.iter().zip(&oi) {
            if keys(r) != keys(o) || r["name"] != o["name"] || r["sandbox"] != o["sandbox"] {
                self.fail(e, format!("interface {o}, recorded {r}"));
            }
            if let (Some(rm), Some(om)) = (r["mac"].as_str(), o["mac"].as_str()) {
                if asked_mac.is_some() && rm != om {
                    self.fail(e, format!("MAC {om}, recorded (requested) {rm}"));
                }
                if plugin_stream {
                    self.plugin_map.insert(rm.to_owned(), om.to_owned());
                }
            }
        }
        let (rips, oips) = (arr(rec, "ips"), arr(ours, "ips"));
        if rips.len() != oips.len() {
            self.fail(e, format!("{} ips, recorded {}", oips.len(), rips.len()));
        }
        for (r, o) in rips.iter().zip(&oips) {
            if keys(r) != keys(o)
                || r["gateway"] != o["gateway"]
                || r["interface"] != o["interface"]
                || r["version"] != o["version"]
            {
                self.fail(e, format!("ip {o}, recorded {r}"));
            }
            let parse = |v: &Value| v["address"].as_str().and_then(|s| s.parse::<IpNet>().ok());
            let (Some(ra), Some(oa)) = (parse(r), parse(o)) else {
                self.fail(e, format!("bad address: ours {o}, recorded {r}"));
                continue;
            };
            if ra.trunc() != oa.trunc() {
                self.fail(
                    e,
                    format!("address {oa} is not in the recorded subnet {}", ra.trunc()),
                );
            }
            if asked_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) == Some(ra.addr())
                && ra != oa
            {
                self.fail(
                    e,
                    format!("address {oa}, recorded (requested with IP=) {ra}"),
                );
            }
            let (rs, os) = (ra.to_string(), oa.to_string());
            if plugin_stream {
                if let Some(i) = self.ipam_ips.get(&rs)
                    && *i != os
                {
                    self.fail(e, format!("plugin got {os}, in-process IPAM with the same history got {i} (recorded {rs})"));
                }
                self.plugin_map.insert(rs, os.clone());
                self.plugin_map
                    .insert(ra.addr().to_string(), oa.addr().to_string());
            } else {
                self.ipam_ips.insert(rs, os);
            }
        }
    }
}

#[test]
fn replay_captured_runtime_calls() {
    let test = "replay_captured_runtime_calls";
    let dir = testdata_dir();
    if !dir.is_dir() {
        skip(test, &format!("{} is absent", dir.display()));
        return;
    }
    if !require_root(test) {
        return;
    }
    let groups = sessions(&dir).expect("listing testdata");
    assert!(!groups.is_empty(), "no logs in {}", dir.display());
    let mut failures = Vec::new();
    for (name, files) in groups {
        let mut s = Session::new(&name);
        for f in &files {
            let text = std::fs::read_to_string(f).expect("read log");
            let entries = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for e in &entries {
                s.replay(e);
            }
        }
        println!(
            "{name}: replayed {} calls, not replayed (not ours): {:?}",
            s.replayed, s.skipped
        );
        assert!(s.replayed > 0, "{name}: nothing replayed");
        // after the recorded teardown nothing of ours is left: no leases, no links in the pods
        for (sub, d) in [
            ("plugin", s.plugin_data.path()),
            ("ipam", s.ipam_data.path()),
        ] {
            let left: Vec<String> = walk_leases(d);
            if !left.is_empty() {
                s.failures
                    .push(format!("{name}: {sub} stream left leases {left:?}"));
            }
        }
        let pod_links: Vec<(String, Vec<String>)> =
            s.pods.iter().map(|(k, p)| (k.clone(), links(p))).collect();
        for (rec, l) in pod_links {
            if l != ["lo"] {
                s.failures
                    .push(format!("{name}: pod for {rec} still has {l:?}"));
            }
        }
        failures.append(&mut s.failures);
    }
    assert!(
        failures.is_empty(),
        "{} replay failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Every lease file (named by an IP address) under a data dir.
fn walk_leases(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for net in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = f.file_name().to_string_lossy().into_owned();
            if n.parse::<IpAddr>().is_ok() {
                out.push(format!("{}/{n}", net.file_name().to_string_lossy()));
            }
        }
    }
    out
}
