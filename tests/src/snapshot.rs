//! An interface's state as comparable data (from `ip -j -d link/addr/route` and sysctls), and the
//! host-local leases in a data dir.

use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use crate::TestNetns;

/// What a pod sees of one interface. MAC-derived data (the MAC, IPv6 link-local addresses) is
/// kept here and removed by [`IfaceSnapshot::normalized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceSnapshot {
    /// `linkinfo.info_kind` (`macvlan`, `ipvlan`, ...).
    pub kind: Option<String>,
    /// `linkinfo.info_data` (macvlan/ipvlan mode, flags, ...).
    pub info_data: Value,
    pub mtu: u64,
    pub up: bool,
    pub operstate: String,
    pub mac: String,
    /// `inet 10.1.2.3/24 scope global`, sorted.
    pub addresses: Vec<String>,
    /// `default via 10.1.2.1 proto boot scope global metric 0`, both families, sorted.
    pub routes: Vec<String>,
    pub proxy_arp: Option<String>,
    pub arp_notify: Option<String>,
}

impl IfaceSnapshot {
    /// Without the MAC and IPv6 link-local addresses (derived from the MAC).
    pub fn normalized(&self) -> Self {
        let mut s = self.clone();
        s.mac = "<mac>".into();
        s.addresses.retain(|a| !a.contains(" fe80:"));
        s
    }
}

fn ip_json(ns: &TestNetns, args: &[&str]) -> Vec<Value> {
    let out = ns.run_ok("ip", args);
    if out.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Vec<Value>>(&out)
        .unwrap_or_else(|e| panic!("ip {args:?}: bad JSON {out:?}: {e}"))
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Names of all links in `ns`, sorted.
pub fn links(ns: &TestNetns) -> Vec<String> {
    let mut v: Vec<String> = ip_json(ns, &["-j", "link", "show"])
        .iter()
        .map(|l| s(l, "ifname"))
        .collect();
    v.sort();
    v
}

/// The state of `ifname` in `ns`, or `None` when it does not exist.
pub fn snapshot(ns: &TestNetns, ifname: &str) -> Option<IfaceSnapshot> {
    if !links(ns).iter().any(|l| l == ifname) {
        return None;
    }
    let link = ip_json(ns, &["-j", "-d", "link", "show", "dev", ifname])
        .into_iter()
        .next()?;
    let linkinfo = link.get("linkinfo").cloned().unwrap_or(Value::Null);
    let flags: Vec<String> = link
        .get("flags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut addresses = Vec::new();
    for a in ip_json(ns, &["-j", "addr", "show", "dev", ifname]) {
        for info in a
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut line = format!(
                "{} {}/{} scope {}",
                s(info, "family"),
                s(info, "local"),
                s(info, "prefixlen"),
                s(info, "scope")
            );
            if info.get("noprefixroute").is_some() {
                line.push_str(" noprefixroute");
            }
            addresses.push(line);
        }
    }
    addresses.sort();
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ip_json(ns, &["-j", fam, "route", "show", "dev", ifname]) {
            let mut line = s(&r, "dst");
            for (k, label) in [
                ("gateway", "via"),
                ("protocol", "proto"),
                ("scope", "scope"),
                ("prefsrc", "src"),
                ("metric", "metric"),
            ] {
                let v = s(&r, k);
                if !v.is_empty() {
                    line.push_str(&format!(" {label} {v}"));
                }
            }
            routes.push(line);
        }
    }
    routes.sort();
    let sysctl = |key: &str| {
        let out = ns
            .run("cat", &[&format!("/proc/sys/net/ipv4/conf/{ifname}/{key}")])
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    Some(IfaceSnapshot {
        kind: linkinfo
            .get("info_kind")
            .and_then(Value::as_str)
            .map(str::to_owned),
        info_data: linkinfo.get("info_data").cloned().unwrap_or(Value::Null),
        mtu: link.get("mtu").and_then(Value::as_u64).unwrap_or(0),
        up: flags.iter().any(|f| f == "UP"),
        operstate: s(&link, "operstate"),
        mac: s(&link, "address"),
        addresses,
        routes,
        proxy_arp: sysctl("proxy_arp"),
        arp_notify: sysctl("arp_notify"),
    })
}

/// The leases (files named by an IP address) of network `network` in a host-local `data_dir`.
pub fn leases(data_dir: &Path, network: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(data_dir.join(network)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<IpAddr>().is_ok())
        .collect();
    v.sort();
    v
}
