//! A stand-in node: a "host" netns whose uplink (one end of a veth pair, the other end in a
//! "switch" netns) is the macvlan/ipvlan master, plus pod netns created on demand. Everything is
//! removed on drop (namespaces are unmounted; links die with their namespace), also on panic.

use crate::TestNetns;

/// The default master's name inside the host netns.
pub const UPLINK: &str = "uplink0";

/// Host + switch namespaces joined by `uplink0` (up, MTU 1500).
#[derive(Debug)]
pub struct Topology {
    pub host: TestNetns,
    pub switch: TestNetns,
}

impl Topology {
    pub fn new() -> Self {
        let topo = Topology {
            host: TestNetns::new("plx-host"),
            switch: TestNetns::new("plx-sw"),
        };
        topo.host.run_ok("ip", &["link", "set", "lo", "up"]);
        topo.add_uplink(UPLINK);
        topo
    }

    /// Another master: `name` in the host netns, its veth peer in the switch netns. Both up.
    pub fn add_uplink(&self, name: &str) {
        let peer = format!("sw{}", &name[..name.len().min(13)]);
        self.host.run_ok(
            "ip",
            &[
                "link",
                "add",
                name,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "netns",
                self.switch.name(),
            ],
        );
        self.host.run_ok("ip", &["link", "set", name, "up"]);
        self.switch.run_ok("ip", &["link", "set", &peer, "up"]);
    }

    /// A fresh pod netns (with `lo` up, as runtimes do before calling plugins).
    pub fn pod(&self) -> TestNetns {
        let pod = TestNetns::new("plx-pod");
        pod.run_ok("ip", &["link", "set", "lo", "up"]);
        pod
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}
