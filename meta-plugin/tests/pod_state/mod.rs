//! What the end-to-end suites inspect after a verb: the pod's links and addresses, and the
//! host-local leases left in a data directory; and the node/pod pair they all start from.
//! Shared by local_e2e and kube_e2e.

use std::path::Path;

use plexus_delegates::netns::fixture::{TestNetns, require_root, skip};

/// Where the reference CNI plugins are installed (Debian's containernetworking-plugins).
pub const REF_BIN: &str = "/usr/lib/cni";

/// A node netns with an up veth pair `up0`/`up0p` (the simulated uplink) and `lo` up, plus an
/// empty pod netns; `tag` prefixes both names. `None` (after printing why) when not root or the
/// reference plugins are missing.
pub fn uplinked_node(test: &str, tag: &str) -> Option<(TestNetns, TestNetns)> {
    if !require_root(test) {
        return None;
    }
    if !Path::new(REF_BIN).join("bridge").exists() {
        skip(test, "the reference CNI plugins are not in /usr/lib/cni");
        return None;
    }
    let node = TestNetns::new(&format!("{tag}n"));
    let pod = TestNetns::new(&format!("{tag}p"));
    node.run_ok(
        "ip",
        &["link", "add", "up0", "type", "veth", "peer", "name", "up0p"],
    );
    node.run_ok("ip", &["link", "set", "up0", "up"]);
    node.run_ok("ip", &["link", "set", "up0p", "up"]);
    node.run_ok("ip", &["link", "set", "lo", "up"]);
    Some((node, pod))
}

/// Link names in the pod, without the `@peer` suffix.
pub fn pod_links(pod: &TestNetns) -> Vec<String> {
    let out = pod.run_ok("ip", &["-o", "link", "show"]);
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// `ip -o -4 addr show dev <ifname>` in the pod.
pub fn addr(pod: &TestNetns, ifname: &str) -> String {
    pod.run_ok("ip", &["-o", "-4", "addr", "show", "dev", ifname])
}

/// Leases left by host-local under `ipam_dir` (files named like IPs), as `<network>/<ip>`.
pub fn leases(ipam_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(nets) = std::fs::read_dir(ipam_dir) else {
        return out;
    };
    for net in nets.flatten() {
        for f in std::fs::read_dir(net.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                out.push(format!("{}/{name}", net.file_name().to_string_lossy()));
            }
        }
    }
    out
}
