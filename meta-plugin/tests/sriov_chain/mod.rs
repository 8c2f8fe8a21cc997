//! The whole SR-IOV chain on a real kernel, for `sriov_chain_netdevsim`: the local-mode bed of
//! [`local_env`] (a node and a pod namespace, the reference bridge as the cluster network) plus
//! - a netdevsim PF in the node namespace with two VFs (PF-side VF settings reach a real
//!   driver), VF 0 given non-default settings first, so DEL must restore those and not a clean
//!   VF;
//! - a veth `vfnet0` in the node standing in for VF 0's netdev (netdevsim VFs have no netdev);
//! - a fake sysfs tree naming the netdevsim PF as the PF of [`PF_PCI`] and `vfnet0` as the
//!   netdev of its VF 0, handed to plexus as `PLEXUS_SYSFS_ROOT`;
//! - a fake kubelet whose PodResources `Get` reports that VF for the pod, and the device
//!   plugin's device-info file for it;
//! - a NAD `sriov-vf` of type `sriov` naming [`RESOURCE`], with VLAN, MAC, spoofchk and trust
//!   settings and host-local IPAM.

use std::path::PathBuf;
use std::process::Output;

use plexus_delegates::netlink::netdevsim_fixture::{self, Netdevsim};
use plexus_delegates::netlink::{LinkInfo, Netlink, RtNetlink, VfConfig};
use plexus_delegates::netns::fixture::require_root;
use plexus_delegates::sriov::record::VfRecord;
use plexus_delegates::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use serde_json::{Value, json};

use crate::fake_kubelet::{FakeKubelet, pod_with_devices};
use crate::local_env::{Env, POD};
use crate::pod_state;

/// The device plugin's resource the NAD names.
pub const RESOURCE: &str = "intel.com/sriov_netdevice";
/// The PF's PCI address in the fake sysfs tree.
pub const PF_PCI: &str = "0000:03:00.0";
/// The NAD (in namespace `default`).
pub const NAD: &str = "sriov-vf";
/// The VF netdev stand-in in the node, its peer, and its MAC.
pub const STANDIN: &str = "vfnet0";
pub const STANDIN_PEER: &str = "vfpeer0";
pub const STANDIN_MAC: &str = "02:5f:00:00:00:01";
/// VF 0's administrative settings before any pod (set on the PF with `ip`).
pub const ADMIN_MAC: &str = "02:aa:00:00:00:07";
pub const ADMIN_VLAN: &str = "7";
/// What the NAD configures.
pub const POD_MAC: &str = "02:5e:00:00:00:0a";
pub const POD_VLAN: u16 = 1000;
pub const POD_QOS: u8 = 3;
/// The first netdevsim device id: ids are global to the kernel, so keep clear of the delegates
/// crate's tests (from `netdevsim_fixture::ID_BASE`).
const NSIM_ID_BASE: u32 = 20_000;

pub struct SriovBed {
    // dropped first: the netdevsim device goes while its namespace still exists
    _nsim: Netdevsim,
    pub env: Env,
    pub sysfs: FakeSysfs,
    /// Keeps the fake kubelet serving while plexus runs.
    _rt: tokio::runtime::Runtime,
    /// The netdevsim PF netdev in the node.
    pub pf: String,
    /// VF 0's PCI address (what kubelet reports).
    pub vf: String,
    /// The meta-plugin's stdin.
    pub config: String,
    /// `PLEXUS_SRIOV_STATE_DIR`.
    pub state_dir: PathBuf,
    /// The device plugin's device-info file content for the VF.
    pub dp_content: Value,
    /// `ip link show <pf>`'s `vf 0` line, the netlink view of the VFs, and the stand-in, before
    /// any ADD.
    pub original_line: String,
    pub original_vfs: Vec<VfConfig>,
    pub original_standin: LinkInfo,
}

impl SriovBed {
    /// The bed with the NAD's IPAM `ranges` (host-local; the data dir is the bed's).
    pub fn new(test: &str, ranges: Value) -> Option<SriovBed> {
        if !require_root(test) || !netdevsim_fixture::available(test) {
            return None;
        }
        let env = Env::new(test)?;
        let node = &env.node;
        let nsim = Netdevsim::with_id_base(test, node, 2, NSIM_ID_BASE)?;
        let pf = nsim.pf.clone();
        node.run_ok("ip", &["link", "set", &pf, "up"]);
        node.run_ok(
            "ip",
            &[
                "link", "set", &pf, "vf", "0", "mac", ADMIN_MAC, "vlan", ADMIN_VLAN, "spoofchk",
                "on", "trust", "off",
            ],
        );
        node.run_ok(
            "ip",
            &[
                "link",
                "add",
                STANDIN,
                "address",
                STANDIN_MAC,
                "type",
                "veth",
                "peer",
                "name",
                STANDIN_PEER,
            ],
        );
        node.run_ok("ip", &["link", "set", STANDIN, "up"]);
        node.run_ok("ip", &["link", "set", STANDIN_PEER, "up"]);

        let sysfs = FakeSysfs::at(env.p("sys"))
            .add_pf(&pf, PF_PCI, PfSpec::default())
            .add_vfs(2, VfSpec::kernel("iavf"));
        let vf = sysfs.vf_pci(PF_PCI, 0).to_string();
        sysfs.set_vf_netdev(&vf, Some(STANDIN));

        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let sock = {
            let _in_rt = rt.enter();
            FakeKubelet::new(
                true,
                vec![pod_with_devices("default", POD, RESOURCE, &[&vf])],
            )
            .serve(env.tmp.path())
        };
        // what the device plugin writes at Allocate (device-info spec 1.1.0)
        let dp_content = json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": vf}});
        let dp = env.p(&format!(
            "devinfo/dp/{}-{vf}-device.json",
            RESOURCE.replace('/', "-")
        ));
        std::fs::create_dir_all(dp.parent().expect("dp dir")).expect("mkdir dp");
        std::fs::write(&dp, dp_content.to_string()).expect("write the dp file");

        let delegate = json!({
            "cniVersion": "1.0.0", "name": NAD, "type": "sriov",
            "vlan": POD_VLAN, "vlanQoS": POD_QOS, "mac": POD_MAC,
            "spoofchk": "off", "trust": "on",
            "ipam": {"type": "host-local", "dataDir": env.p("ipam"), "ranges": ranges}
        });
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": NAD, "namespace": "default",
                "annotations": {"k8s.v1.cni.cncf.io/resourceName": RESOURCE}
            },
            "spec": {"config": delegate.to_string()}
        });
        std::fs::write(env.p(&format!("nads/{NAD}.json")), nad.to_string()).expect("write NAD");
        let mut config = env.config_json(NAD);
        config["podResourcesSocket"] = json!(sock);
        config["deviceInfoDir"] = json!(env.p("devinfo"));
        let state_dir = env.p("sriov-state");

        let mut bed = SriovBed {
            _nsim: nsim,
            sysfs,
            _rt: rt,
            pf,
            vf,
            config: config.to_string(),
            state_dir,
            dp_content,
            original_line: String::new(),
            original_vfs: Vec::new(),
            original_standin: LinkInfo::new(0, STANDIN),
            env,
        };
        bed.original_line = bed.vf_line();
        bed.original_vfs = bed.vfs();
        bed.original_standin = bed.node_link(STANDIN).expect("the stand-in");
        Some(bed)
    }

    /// Runs plexus as the runtime does, the sriov delegate reading the fake sysfs tree and
    /// keeping its records in [`SriovBed::state_dir`].
    pub fn plexus(&self, verb: &str, cid: &str) -> Output {
        let sys = self.sysfs.root().display().to_string();
        let state = self.state_dir.display().to_string();
        self.env.plexus_env(
            verb,
            cid,
            Some(self.env.pod.path()),
            &self.config,
            &[
                ("PLEXUS_SYSFS_ROOT", sys.as_str()),
                ("PLEXUS_SRIOV_STATE_DIR", state.as_str()),
            ],
        )
    }

    /// The `vf 0 ...` line of `ip -d link show <pf>` in the node: the driver's view.
    pub fn vf_line(&self) -> String {
        let out = self
            .env
            .node
            .run_ok("ip", &["-d", "link", "show", &self.pf]);
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with("vf 0 "))
            .unwrap_or_else(|| panic!("no vf 0 on {}: {out}", self.pf))
            .to_owned()
    }

    /// The PF's VFs as netlink reports them.
    pub fn vfs(&self) -> Vec<VfConfig> {
        RtNetlink::open(Some(self.env.node.netns()))
            .expect("netlink in the node")
            .vfs(&self.pf)
            .expect("the PF's VFs")
    }

    pub fn node_link(&self, name: &str) -> Option<LinkInfo> {
        RtNetlink::open(Some(self.env.node.netns()))
            .expect("netlink in the node")
            .link(name)
            .expect("link lookup")
    }

    /// The sriov delegate's VF record, if any.
    pub fn record(&self) -> Option<VfRecord> {
        let path = self.state_dir.join(format!("{}.json", self.vf));
        let text = std::fs::read_to_string(path).ok()?;
        Some(serde_json::from_str(&text).expect("a VF record"))
    }

    /// Files in the sriov state dir (records and locks), sorted.
    pub fn state_files(&self) -> Vec<String> {
        list(&self.state_dir)
    }

    /// The meta-plugin's device-info files (`devinfo/cni/`), sorted.
    pub fn cni_devinfo_files(&self) -> Vec<String> {
        list(&self.env.p("devinfo/cni"))
    }

    /// Links in the node other than the bed's own: host veth ends, stray VF netdevs.
    pub fn stray_node_links(&self) -> Vec<String> {
        let own = [
            "lo",
            "up0",
            "up0p",
            self.env.bridge.as_str(),
            self.pf.as_str(),
            STANDIN,
            STANDIN_PEER,
        ];
        pod_state::pod_links(&self.env.node)
            .into_iter()
            .filter(|l| !own.contains(&l.as_str()))
            .collect()
    }

    /// The VF as it was before any ADD: the driver's settings, and the stand-in home in the
    /// node under its own name, index, MAC and MTU, up.
    pub fn assert_vf_restored(&self, when: &str) {
        assert_eq!(self.vf_line(), self.original_line, "{when}: VF 0 settings");
        assert_eq!(self.vfs(), self.original_vfs, "{when}: the PF's VFs");
        let back = self
            .node_link(STANDIN)
            .unwrap_or_else(|| panic!("{when}: {STANDIN} is not back in the node"));
        let orig = &self.original_standin;
        assert_eq!(
            (back.index, back.mac, back.mtu, back.up),
            (orig.index, orig.mac, orig.mtu, orig.up),
            "{when}: {STANDIN}"
        );
    }

    /// Nothing of sandbox `cid` is left (beyond `leases`, which were there before): the VF
    /// restored, no link in the pod but `lo`, no stray link in the node, no VF record or lock
    /// (just the delegate's tombstone saying the VF was put back), no journal, no status file,
    /// no device-info copy.
    pub fn assert_nothing_left(&self, cid: &str, leases: &[&str], when: &str) {
        self.assert_vf_restored(when);
        assert_eq!(self.env.pod_links(), ["lo"], "{when}: links in the pod");
        assert_eq!(
            self.stray_node_links(),
            Vec::<String>::new(),
            "{when}: links in the node"
        );
        assert_eq!(self.env.leases(), leases, "{when}: leases");
        assert_eq!(
            self.state_files(),
            [format!("{}.released", self.vf)],
            "{when}: sriov record or lock"
        );
        assert!(
            !self.env.journal_dir(cid).exists(),
            "{when}: journal left: {:?}",
            self.env.journal_files(cid)
        );
        assert!(
            !self.env.orphan_dir(cid).exists(),
            "{when}: orphans left: {:?}",
            self.env.orphan_files(cid)
        );
        assert!(
            !self.env.status_path().exists(),
            "{when}: network-status file left"
        );
        assert_eq!(
            self.cni_devinfo_files(),
            Vec::<String>::new(),
            "{when}: device-info copies"
        );
    }
}

fn list(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
