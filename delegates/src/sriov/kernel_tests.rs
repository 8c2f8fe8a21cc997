//! The sriov delegate against the real kernel, each test in namespaces of its own:
//! - on the host kernel, a veth stands in for the VF netdev (the fake sysfs tree names it as
//!   the VF's `net/<name>`): the move into the pod under the final name, configuration,
//!   CHECK, DEL's move home under the original name with MTU and MAC restored, and the
//!   rollback of a failed ADD. A veth has no PF, so the PF-side settings go to the fake there;
//! - in the VM (tests named `netdevsim`), the PF is a netdevsim device: the same flows with the
//!   PF-side settings set, read back and restored on the real driver, for a kernel-driver VF
//!   (veth stand-in netdev) and a userspace-driver VF.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::plugin::SriovPlugin;
use super::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use crate::cni::{CniArgs, CniError, Command, ErrorCode, Plugin, Request};
use crate::link::{
    FakeProvider, KernelNetlink, NetlinkProvider, OpenError, provider::netlink_error,
};
use crate::netlink::netdevsim_fixture::Netdevsim;
use crate::netlink::{LinkInfo, MacAddr, Netlink, NewLink, NewLinkKind, RtNetlink, VfConfig};
use crate::netns::NetNs;
use crate::netns::fixture::{TestNetns, require_root};

const PF_PCI: &str = "0000:03:00.0";

/// The real kernel, with a test namespace playing the host.
struct KernelIn {
    host: PathBuf,
}

impl NetlinkProvider for KernelIn {
    fn host(&self) -> Result<Box<dyn Netlink>, CniError> {
        let ns =
            NetNs::open(&self.host).map_err(|e| CniError::new(ErrorCode::Netns, e.to_string()))?;
        let nl = RtNetlink::open(Some(&ns)).map_err(|e| netlink_error(&e))?;
        Ok(Box::new(nl))
    }

    fn netns(&self, path: &Path) -> Result<Box<dyn Netlink>, OpenError> {
        KernelNetlink.netns(path)
    }
}

fn req(command: Command, pod: &TestNetns, conf: &Value) -> Request {
    Request {
        command,
        container_id: "kctr1".into(),
        netns: Some(pod.path().to_path_buf()),
        ifname: "net1".into(),
        args: CniArgs::parse("IgnoreUnknown=1").expect("args"),
        path: vec![PathBuf::from("/usr/lib/cni")],
        config: serde_json::to_vec(conf).expect("json"),
    }
}

/// Files in the state directory, sorted.
fn state_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("state dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn link(nl: &dyn Netlink, name: &str) -> Option<LinkInfo> {
    nl.link(name).expect("link lookup")
}

/// A veth `vfnet0` (peer `vfpeer0`) in `host` with MTU 1500 and a known MAC: the VF netdev.
fn standin(host: &TestNetns) -> RtNetlink {
    let nl = RtNetlink::open(Some(host.netns())).expect("open host");
    let mut spec = NewLink::new(
        "vfnet0",
        NewLinkKind::Veth {
            peer_name: "vfpeer0".into(),
        },
    );
    spec.mac = Some("02:5f:00:00:00:01".parse().expect("mac"));
    nl.create_link(&spec).expect("create stand-in veth");
    nl.set_link_up("vfnet0").expect("up");
    nl
}

#[test]
fn sriov_veth_standin_moves_configures_and_comes_home() {
    if !require_root("sriov_veth_standin_moves_configures_and_comes_home") {
        return;
    }
    let host = TestNetns::new("plx-sh");
    let pod = TestNetns::new("plx-sp");
    let hnl = standin(&host);
    let before = link(&hnl, "vfnet0").expect("stand-in");
    let fake = FakeSysfs::new()
        .add_pf("ens1f0", PF_PCI, PfSpec::default())
        .add_vfs(1, VfSpec::kernel("iavf"));
    let vf = fake.vf_pci(PF_PCI, 0);
    fake.set_vf_netdev(&vf.to_string(), Some("vfnet0"));
    let pfs = FakeProvider::default();
    pfs.world.lock().expect("world").add_pf(None, "ens1f0", 1);
    let state = tempfile::tempdir().expect("tempdir");
    let mut plugin = SriovPlugin::new(
        Arc::new(KernelIn {
            host: host.path().to_path_buf(),
        }),
        fake.root(),
        state.path(),
    )
    .with_pfs(Arc::new(pfs.clone()))
    .with_host_netns(host.path());
    plugin.carrier_wait = Duration::from_millis(50);
    let conf = json!({"cniVersion":"1.0.0","name":"kn","type":"sriov",
        "deviceID": vf.to_string(),"vlan":10,"mac":"02:5f:00:00:00:99","mtu":9000,
        "ipam":{"type":"static","addresses":[{"address":"10.77.0.5/24","gateway":"10.77.0.1"}],
                "routes":[{"dst":"10.78.0.0/16"}]}});

    let r = plugin.add(&req(Command::Add, &pod, &conf)).expect("ADD");
    assert_eq!(r.interfaces[0].mac, "02:5f:00:00:00:99");
    assert_eq!(r.interfaces[0].pci_id, vf.to_string());
    assert!(link(&hnl, "vfnet0").is_none(), "gone from the host");
    let out = pod.run_ok("ip", &["-o", "link", "show", "net1"]);
    assert!(
        out.contains("mtu 9000") && out.contains("02:5f:00:00:00:99") && out.contains("UP"),
        "{out}"
    );
    let out = pod.run_ok("ip", &["-o", "addr", "show", "net1"]);
    assert!(out.contains("10.77.0.5/24"), "{out}");
    let out = pod.run_ok("ip", &["route", "show", "10.78.0.0/16"]);
    assert!(out.contains("via 10.77.0.1"), "{out}");
    assert_eq!(
        pfs.world
            .lock()
            .expect("world")
            .vf(None, "ens1f0", 0)
            .expect("vf")
            .vlan,
        10
    );

    let mut checked = conf.clone();
    checked["prevResult"] = r.to_json(crate::cni::CniVersion::V1_0_0);
    plugin
        .check(&req(Command::Check, &pod, &checked))
        .expect("CHECK");

    // the VF is held: a second ADD is refused before anything is touched
    let e = plugin
        .add(&req(Command::Add, &pod, &conf))
        .expect_err("busy");
    assert_eq!(e.code, ErrorCode::TryAgainLater as u32, "{e}");

    plugin.del(&req(Command::Del, &pod, &conf)).expect("DEL");
    let back = link(&hnl, "vfnet0").expect("home under its own name");
    assert_eq!(
        (back.index, back.mtu, back.mac, back.up),
        (before.index, before.mtu, before.mac, true)
    );
    let out = pod.run_ok("ip", &["-o", "link", "show"]);
    assert!(!out.contains("net1"), "{out}");
    assert_eq!(
        pfs.world.lock().expect("world").vf(None, "ens1f0", 0),
        Some(VfConfig::clean(0))
    );
    plugin
        .del(&req(Command::Del, &pod, &conf))
        .expect("DEL again");
    assert_eq!(state_files(state.path()), [format!("{vf}.released")]);
}

/// The kernel refuses a route through an unreachable gateway after the netdev is in the pod:
/// the rollback brings it home under its own name with its MTU and MAC.
#[test]
fn sriov_veth_standin_failed_add_comes_home() {
    if !require_root("sriov_veth_standin_failed_add_comes_home") {
        return;
    }
    let host = TestNetns::new("plx-sh");
    let pod = TestNetns::new("plx-sp");
    let hnl = standin(&host);
    let before = link(&hnl, "vfnet0").expect("stand-in");
    let fake = FakeSysfs::new()
        .add_pf("ens1f0", PF_PCI, PfSpec::default())
        .add_vfs(1, VfSpec::kernel("iavf"));
    let vf = fake.vf_pci(PF_PCI, 0);
    fake.set_vf_netdev(&vf.to_string(), Some("vfnet0"));
    let pfs = FakeProvider::default();
    pfs.world.lock().expect("world").add_pf(None, "ens1f0", 1);
    let state = tempfile::tempdir().expect("tempdir");
    let mut plugin = SriovPlugin::new(
        Arc::new(KernelIn {
            host: host.path().to_path_buf(),
        }),
        fake.root(),
        state.path(),
    )
    .with_pfs(Arc::new(pfs.clone()))
    .with_host_netns(host.path());
    plugin.carrier_wait = Duration::ZERO;
    let conf = json!({"cniVersion":"1.0.0","name":"kn","type":"sriov",
        "deviceID": vf.to_string(),"mac":"02:5f:00:00:00:99","mtu":4000,
        "ipam":{"type":"static","addresses":[{"address":"10.77.0.5/24"}],
                "routes":[{"dst":"10.78.0.0/16","gw":"192.0.2.1"}]}});
    let e = plugin
        .add(&req(Command::Add, &pod, &conf))
        .expect_err("unreachable gw");
    assert!(!e.msg.contains("rollback incomplete"), "{e}");
    let back = link(&hnl, "vfnet0").expect("home");
    assert_eq!(
        (back.index, back.mtu, back.mac, back.up),
        (before.index, before.mtu, before.mac, true)
    );
    assert!(!pod.run_ok("ip", &["-o", "link"]).contains("net1"));
    assert_eq!(state_files(state.path()), [format!("{vf}.released")]);
}

/// A netdevsim PF in a test netns, a fake sysfs tree naming it as the PF of a kernel-driver VF
/// (netdev: a veth stand-in) and a vfio-pci VF.
struct NsimRig {
    host: TestNetns,
    pod: TestNetns,
    _dev: Netdevsim,
    hnl: RtNetlink,
    pf: String,
    fake: FakeSysfs,
    _state: tempfile::TempDir,
    plugin: SriovPlugin,
}

fn nsim_rig(test: &str) -> Option<NsimRig> {
    if !require_root(test) {
        return None;
    }
    let host = TestNetns::new("plx-nh");
    let pod = TestNetns::new("plx-np");
    let dev = Netdevsim::new(test, &host, 2)?;
    let pf = dev.pf.clone();
    let hnl = standin(&host);
    hnl.set_link_up(&pf).expect("PF up");
    let fake = FakeSysfs::new()
        .add_pf(&pf, PF_PCI, PfSpec::default())
        .add_vfs(1, VfSpec::kernel("iavf"))
        .add_vfs(1, VfSpec::userspace("vfio-pci"));
    fake.set_vf_netdev(&fake.vf_pci(PF_PCI, 0).to_string(), Some("vfnet0"));
    let state = tempfile::tempdir().expect("tempdir");
    let mut plugin = SriovPlugin::new(
        Arc::new(KernelIn {
            host: host.path().to_path_buf(),
        }),
        fake.root(),
        state.path(),
    )
    .with_host_netns(host.path());
    plugin.carrier_wait = Duration::from_millis(50);
    Some(NsimRig {
        host,
        pod,
        _dev: dev,
        hnl,
        pf,
        fake,
        _state: state,
        plugin,
    })
}

fn every_setting(rig: &NsimRig, index: u32) -> Value {
    json!({"cniVersion":"1.0.0","name":"nsim","type":"sriov",
        "deviceID": rig.fake.vf_pci(PF_PCI, index).to_string(),
        "vlan":1000,"vlanQoS":4,"vlanProto":"802.1ad","mac":"02:5e:00:00:00:0a",
        "min_tx_rate":100,"max_tx_rate":200,"spoofchk":"on","trust":"on","link_state":"enable"})
}

/// The `ip link show <pf>` line of VF `index`.
fn ip_vf_line(rig: &NsimRig, index: u32) -> String {
    let out = rig.host.run_ok("ip", &["link", "show", &rig.pf]);
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("vf {index} ")))
        .unwrap_or_else(|| panic!("no vf {index} in {out}"))
        .to_owned()
}

#[test]
fn sriov_netdevsim_kernel_vf_settings_applied_and_restored() {
    let Some(rig) = nsim_rig("sriov_netdevsim_kernel_vf_settings_applied_and_restored") else {
        return;
    };
    let original = rig.hnl.vfs(&rig.pf).expect("vfs");
    let conf = every_setting(&rig, 0);
    let r = rig
        .plugin
        .add(&req(Command::Add, &rig.pod, &conf))
        .expect("ADD");
    assert_eq!(r.interfaces[0].mac, "02:5e:00:00:00:0a");
    let line = ip_vf_line(&rig, 0);
    for needle in [
        "02:5e:00:00:00:0a",
        "vlan 1000",
        "qos 4",
        "vlan protocol 802.1ad",
        "max_tx_rate 200Mbps",
        "min_tx_rate 100Mbps",
        "spoof checking on",
        "link-state enable",
        "trust on",
    ] {
        assert!(line.contains(needle), "{needle:?} missing in: {line}");
    }
    assert_eq!(
        rig.hnl.vfs(&rig.pf).expect("vfs")[1],
        original[1],
        "VF 1 untouched"
    );
    let mut checked = conf.clone();
    checked["prevResult"] = r.to_json(crate::cni::CniVersion::V1_0_0);
    rig.plugin
        .check(&req(Command::Check, &rig.pod, &checked))
        .expect("CHECK");
    // the driver's view changes behind the pod's back: CHECK says so
    rig.hnl
        .set_vf(&rig.pf, 0, &crate::netlink::VfSetting::Trust(false))
        .expect("untrust");
    let e = rig
        .plugin
        .check(&req(Command::Check, &rig.pod, &checked))
        .expect_err("trust changed");
    assert!(e.msg.contains("trust"), "{e}");

    rig.plugin
        .del(&req(Command::Del, &rig.pod, &conf))
        .expect("DEL");
    assert_eq!(
        rig.hnl.vfs(&rig.pf).expect("vfs"),
        original,
        "driver state restored"
    );
    assert!(link(&rig.hnl, "vfnet0").is_some(), "netdev home");

    let status = json!({"cniVersion":"1.1.0","name":"nsim","type":"sriov",
        "deviceID": rig.fake.vf_pci(PF_PCI, 0).to_string()});
    let mut sreq = req(Command::Status, &rig.pod, &status);
    sreq.container_id.clear();
    rig.plugin.status(&sreq).expect("STATUS with the PF up");
}

#[test]
fn sriov_netdevsim_userspace_vf_and_lost_record() {
    let Some(rig) = nsim_rig("sriov_netdevsim_userspace_vf_and_lost_record") else {
        return;
    };
    let original = rig.hnl.vfs(&rig.pf).expect("vfs");
    let conf = every_setting(&rig, 1);
    let r = rig
        .plugin
        .add(&req(Command::Add, &rig.pod, &conf))
        .expect("ADD");
    assert_eq!(
        r.interfaces[0].pci_id,
        rig.fake.vf_pci(PF_PCI, 1).to_string()
    );
    let line = ip_vf_line(&rig, 1);
    assert!(
        line.contains("vlan 1000") && line.contains("trust on"),
        "{line}"
    );
    assert!(
        !rig.pod.run_ok("ip", &["-o", "link"]).contains("net1"),
        "nothing moved"
    );
    rig.plugin
        .del(&req(Command::Del, &rig.pod, &conf))
        .expect("DEL");
    assert_eq!(rig.hnl.vfs(&rig.pf).expect("vfs"), original);

    // the record is lost while the VF carries the pod's settings: DEL clears them
    rig.plugin
        .add(&req(Command::Add, &rig.pod, &conf))
        .expect("ADD");
    let pci = rig.fake.vf_pci(PF_PCI, 1);
    std::fs::remove_file(rig.plugin.state.record_path(&pci)).expect("lose the record");
    rig.plugin
        .del(&req(Command::Del, &rig.pod, &conf))
        .expect("DEL");
    let vf = rig.hnl.vfs(&rig.pf).expect("vfs")[1].clone();
    let clean = VfConfig::clean(1);
    assert_eq!((vf.vlan, vf.qos, vf.mac), (0, 0, MacAddr([0; 6])), "{vf:?}");
    assert_eq!(
        (vf.min_tx_rate, vf.max_tx_rate, vf.trust, vf.link_state),
        (0, 0, clean.trust, clean.link_state)
    );
    // spoofchk on is the clean value, so it stays on
    assert!(vf.spoofchk);
}
