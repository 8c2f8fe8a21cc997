//! The sriov delegate on the recording netlink fake and fake sysfs trees: no root needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::plugin::SriovPlugin;
use super::record::VfRecord;
use super::released::Released;
use super::sysfs::PciAddress;
use super::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use crate::cni::{CniArgs, CniError, CniResult, Command, ErrorCode, Plugin, Request};
use crate::link::FakeProvider;
use crate::netlink::{Call, MacAddr, NetlinkError, VfConfig, VfLinkState, VfSetting, VlanProto};

const POD: &str = "/run/netns/pod-a";
const POD2: &str = "/run/netns/pod-b";
const HOST_NS: &str = "/proc/self/ns/net";
const PF: &str = "ens1f0";
const PF_PCI: &str = "0000:03:00.0";

/// ens1f0 with VFs 0 and 1 on iavf (netdevs ens1f0v0, ens1f0v1) and VF 2 on vfio-pci, in a
/// fake sysfs tree and a fake kernel that agree.
struct Env {
    fake: FakeSysfs,
    nl: FakeProvider,
    state: tempfile::TempDir,
    plugin: SriovPlugin,
}

impl Env {
    fn new() -> Env {
        let fake = FakeSysfs::new()
            .add_pf(PF, PF_PCI, PfSpec::default())
            .add_vfs(2, VfSpec::kernel("iavf"))
            .add_vfs(1, VfSpec::userspace("vfio-pci"));
        let nl = FakeProvider::default();
        {
            let mut w = nl.world.lock().unwrap();
            w.add_pf(None, PF, 3);
            for i in 0..2 {
                let pci = fake.vf_pci(PF_PCI, i).to_string();
                w.add_vf_netdev(None, &format!("{PF}v{i}"), &pci);
            }
            w.add_netns(POD);
            w.add_netns(POD2);
            w.set_host_path(HOST_NS);
        }
        let state = tempfile::tempdir().unwrap();
        let mut plugin = SriovPlugin::new(Arc::new(nl.clone()), fake.root(), state.path());
        plugin.carrier_wait = Duration::ZERO;
        plugin.return_wait = Duration::ZERO;
        assert_eq!(plugin.host_netns, Path::new(HOST_NS));
        Env {
            fake,
            nl,
            state,
            plugin,
        }
    }

    fn vf(&self, index: u32) -> PciAddress {
        self.fake.vf_pci(PF_PCI, index)
    }

    fn vf_config(&self, index: u32) -> VfConfig {
        self.nl.world.lock().unwrap().vf(None, PF, index).unwrap()
    }

    fn host_link(&self, name: &str) -> Option<crate::netlink::LinkInfo> {
        self.nl.world.lock().unwrap().link(None, name)
    }

    fn pod_link(&self, pod: &str, name: &str) -> Option<crate::netlink::LinkInfo> {
        self.nl
            .world
            .lock()
            .unwrap()
            .link(Some(Path::new(pod)), name)
    }

    fn mutations(&self) -> Vec<Call> {
        self.nl.world.lock().unwrap().mutations()
    }

    fn clear_calls(&self) {
        self.nl.world.lock().unwrap().clear_calls();
    }

    /// Files in the state directory (records, locks, temp files).
    fn state_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.state.path())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The state directory once VFs `indices` are put back: their tombstones and nothing else
    /// (no record, no lock, no temp file).
    fn released(&self, indices: &[u32]) -> Vec<String> {
        let mut v: Vec<String> = indices
            .iter()
            .map(|i| format!("{}.released", self.vf(*i)))
            .collect();
        v.sort();
        v
    }

    fn tombstone(&self, index: u32) -> Option<Released> {
        let path = self.plugin.state.released_path(&self.vf(index));
        std::fs::read(path)
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn record(&self, index: u32) -> Option<VfRecord> {
        let path = self.plugin.state.record_path(&self.vf(index));
        std::fs::read(path)
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn add(&self, cid: &str, pod: &str, conf: &Value) -> Result<CniResult, CniError> {
        self.plugin.add(&req(Command::Add, cid, Some(pod), conf))
    }

    fn del(&self, cid: &str, pod: Option<&str>, conf: &Value) -> Result<(), CniError> {
        self.plugin.del(&req(Command::Del, cid, pod, conf))
    }
}

fn req(command: Command, cid: &str, pod: Option<&str>, conf: &Value) -> Request {
    Request {
        command,
        container_id: cid.into(),
        netns: pod.map(PathBuf::from),
        ifname: "net1".into(),
        args: CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=a").unwrap(),
        path: vec![PathBuf::from("/usr/lib/cni")],
        config: serde_json::to_vec(conf).unwrap(),
    }
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// Every setting sriov-cni knows, on VF `index`, with static IPAM.
fn full_conf(env: &Env, index: u32) -> Value {
    json!({"cniVersion":"1.0.0","name":"sriov-net","type":"sriov",
        "deviceID": env.vf(index).to_string(),
        "vlan":100,"vlanQoS":3,"vlanProto":"802.1ad","mac":"02:aa:bb:cc:dd:01",
        "min_tx_rate":10,"max_tx_rate":100,"spoofchk":"off","trust":"on",
        "link_state":"enable","mtu":9000,
        "ipam":{"type":"static","addresses":[{"address":"10.56.0.5/24","gateway":"10.56.0.1"}],
                "routes":[{"dst":"0.0.0.0/0"}]},
        "dns":{"nameservers":["10.56.0.53"]}})
}

fn plain_conf(env: &Env, index: u32) -> Value {
    json!({"cniVersion":"1.0.0","name":"sriov-net","type":"sriov",
        "deviceID": env.vf(index).to_string(),"vlan":200})
}

#[test]
fn add_applies_settings_moves_the_netdev_and_del_restores_everything() {
    let env = Env::new();
    let before_vf = env.vf_config(0);
    let before_link = env.host_link("ens1f0v0").unwrap();
    let conf = full_conf(&env, 0);
    let r = env.add("ctr1", POD, &conf).unwrap();

    // the result: the pod's interface with its PCI address, MAC, MTU and the static address
    let iface = &r.interfaces[0];
    assert_eq!(iface.name, "net1");
    assert_eq!(iface.sandbox, POD);
    assert_eq!(iface.pci_id, env.vf(0).to_string());
    assert_eq!(iface.mac, "02:aa:bb:cc:dd:01");
    assert_eq!(iface.mtu, Some(9000));
    assert_eq!(r.ips[0].address.to_string(), "10.56.0.5/24");
    assert_eq!(r.ips[0].interface, Some(0));
    assert_eq!(r.dns.nameservers, vec!["10.56.0.53"]);

    // PF side
    let vf = env.vf_config(0);
    assert_eq!(
        (vf.vlan, vf.qos, vf.vlan_proto),
        (100, 3, VlanProto::Dot1Ad)
    );
    assert_eq!(vf.mac, mac("02:aa:bb:cc:dd:01"));
    assert_eq!((vf.min_tx_rate, vf.max_tx_rate), (10, 100));
    assert!(!vf.spoofchk);
    assert!(vf.trust);
    assert_eq!(vf.link_state, VfLinkState::Enable);
    assert_eq!(env.vf_config(1), VfConfig::clean(1), "other VFs untouched");

    // the netdev: gone from the host, in the pod under its final name, configured and up
    assert!(env.host_link("ens1f0v0").is_none());
    let l = env.pod_link(POD, "net1").expect("net1 in the pod");
    assert_eq!(l.mtu, 9000);
    assert_eq!(l.mac, Some(mac("02:aa:bb:cc:dd:01")));
    assert!(l.up);
    assert_eq!(
        l.index, before_link.index,
        "the VF's own netdev, not a new link"
    );
    let w = env.nl.world.lock().unwrap();
    let pod = Some(Path::new(POD));
    assert_eq!(
        w.addresses_of(pod, "net1")[0].addr.to_string(),
        "10.56.0.5/24"
    );
    assert_eq!(
        w.sysctl(pod, "net/ipv4/conf/net1/arp_notify").as_deref(),
        Some("1")
    );
    // moved and renamed in one request, never renamed in the host
    let calls = w.mutations();
    assert!(calls.contains(&Call::MoveLink {
        ns: None,
        name: "ens1f0v0".into(),
        target: PathBuf::from(POD),
        new_name: "net1".into(),
    }));
    assert!(!calls.iter().any(|c| matches!(c, Call::RenameLink { .. })));
    drop(w);

    // the record: owner and the state before ADD
    let rec = env.record(0).expect("record");
    assert_eq!(rec.owner.container_id, "ctr1");
    assert_eq!(rec.owner.netns, Path::new(POD));
    assert_eq!(rec.owner.network, "sriov-net");
    assert_eq!(rec.original.vf, before_vf);
    let orig = rec.original.netdev.as_ref().unwrap();
    assert_eq!(
        (orig.name.as_str(), orig.mtu, orig.mac, orig.up),
        ("ens1f0v0", 1500, before_link.mac, true)
    );
    assert_eq!(rec.changes.vf.len(), 6);

    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.vf_config(0), before_vf);
    let back = env.host_link("ens1f0v0").expect("back in the host");
    assert_eq!(
        (back.index, back.mtu, back.mac, back.up),
        (before_link.index, 1500, before_link.mac, true)
    );
    assert!(env.pod_link(POD, "net1").is_none());
    assert_eq!(env.state_files(), env.released(&[0]), "no record, no lock");
    let done = env.tombstone(0).expect("tombstone");
    assert_eq!(
        (done.pci, done.owner.clone()),
        (env.vf(0), rec.owner.clone())
    );
    assert!(done.released_at_unix > 0);

    // idempotent: a second DEL, and containerd's DEL without a netns
    env.clear_calls();
    env.del("ctr1", Some(POD), &conf).unwrap();
    env.del("ctr1", None, &conf).unwrap();
    assert_eq!(env.vf_config(0), before_vf);
    assert_eq!(
        env.mutations(),
        Vec::<Call>::new(),
        "a repeated DEL changes nothing"
    );
}

#[test]
fn unset_vlan_clears_a_leftover_vlan_and_del_puts_it_back() {
    let env = Env::new();
    let mut seeded = VfConfig::clean(0);
    seeded.vlan = 42;
    env.nl
        .world
        .lock()
        .unwrap()
        .set_vf_config(None, PF, seeded.clone());
    let conf = json!({"cniVersion":"0.4.0","name":"n","type":"sriov",
        "deviceID": env.vf(0).to_string()});
    let r = env.add("ctr1", POD, &conf).unwrap();
    assert!(r.ips.is_empty());
    assert_eq!(
        env.vf_config(0).vlan,
        0,
        "like sriov-cni: no vlan means none"
    );
    assert!(
        env.pod_link(POD, "net1").unwrap().up,
        "L2 only: up, no address"
    );
    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.vf_config(0), seeded);
}

#[test]
fn userspace_vf_is_configured_on_the_pf_and_reported_not_moved() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let conf = json!({"cniVersion":"1.1.0","name":"dpdk","type":"sriov",
        "deviceID": env.vf(2).to_string(),"vlan":300,"mac":"02:00:00:00:03:00","mtu":9000,
        "ipam":{"type":"host-local","subnet":"10.9.0.0/24","dataDir":dir.path()}});
    let r = env.add("ctr1", POD, &conf).unwrap();
    let iface = &r.interfaces[0];
    assert_eq!(iface.pci_id, env.vf(2).to_string());
    assert_eq!(iface.sandbox, POD);
    assert_eq!(iface.mac, "02:00:00:00:03:00");
    assert_eq!(iface.mtu, None, "no netdev to put an MTU on");
    assert_eq!(r.ips.len(), 1, "IPAM reported");
    let wire = r.to_json(crate::cni::CniVersion::V1_1_0);
    assert_eq!(wire["interfaces"][0]["pciID"], env.vf(2).to_string());
    assert_eq!(env.vf_config(2).vlan, 300);
    assert_eq!(env.vf_config(2).mac, mac("02:00:00:00:03:00"));
    let links = env.nl.world.lock().unwrap().links(Some(Path::new(POD)));
    assert_eq!(links.len(), 1, "only lo: IPAM results are not applied");
    assert!(
        !env.mutations().iter().any(|c| matches!(
            c,
            Call::MoveLink { .. } | Call::AddAddress { .. } | Call::SetLinkMac { .. }
        )),
        "no netdev operation"
    );
    let lease_dir = dir.path().join("dpdk");
    assert!(lease_dir.join("10.9.0.2").exists());

    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.vf_config(2), VfConfig::clean(2));
    assert!(!lease_dir.join("10.9.0.2").exists(), "lease released");
    assert_eq!(env.state_files(), env.released(&[2]));
}

/// Every bad configuration: a code-7 error (code 2 for unsupported keys) naming the field and
/// the value, and nothing changed: no netlink mutation, no record, no lock.
#[test]
fn bad_configs_name_field_and_value_and_leave_nothing_behind() {
    let env = Env::new();
    let vf = env.vf(0).to_string();
    let base = || json!({"cniVersion":"1.0.0","name":"n","type":"sriov","deviceID": vf.clone()});
    let with_all = |pairs: &[(&str, Value)]| {
        let mut c = base();
        for (k, v) in pairs {
            c[*k] = v.clone();
        }
        c
    };
    let with = |k: &str, v: Value| with_all(&[(k, v)]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (with("vlan", json!(4095)), "vlan", "4095"),
        (with("vlan", json!(-1)), "vlan", "-1"),
        (
            with_all(&[("vlan", json!(10)), ("vlanQoS", json!(8))]),
            "vlanQoS",
            "8",
        ),
        (with("vlanQoS", json!(2)), "vlanQoS", "2"),
        (
            with_all(&[("vlan", json!(0)), ("vlanQoS", json!(2))]),
            "vlanQoS",
            "2",
        ),
        (
            with_all(&[("vlan", json!(10)), ("vlanProto", json!("802.1x"))]),
            "vlanProto",
            "802.1x",
        ),
        (
            with_all(&[("vlan", json!(0)), ("vlanProto", json!("802.1ad"))]),
            "vlanProto",
            "802.1ad",
        ),
        (with("spoofchk", json!("maybe")), "spoofchk", "maybe"),
        (with("trust", json!("yes")), "trust", "yes"),
        (with("link_state", json!("up")), "link_state", "up"),
        (
            with("mac", json!("01:00:5e:00:00:01")),
            "mac",
            "01:00:5e:00:00:01",
        ),
        (with("mac", json!("zz")), "mac", "zz"),
        (
            with_all(&[("min_tx_rate", json!(200)), ("max_tx_rate", json!(100))]),
            "min_tx_rate",
            "200",
        ),
        (with("max_tx_rate", json!(-5)), "max_tx_rate", "-5"),
        (with("mtu", json!(-1)), "mtu", "-1"),
        (
            with("deviceID", json!("0000:99:00.0")),
            "deviceID",
            "0000:99:00.0",
        ),
        (with("deviceID", json!("eth0")), "deviceID", "eth0"),
        (with("deviceID", json!(PF_PCI)), "deviceID", PF_PCI),
        (
            json!({"cniVersion":"1.0.0","name":"n","type":"sriov"}),
            "deviceID",
            "required",
        ),
        (
            json!({"cniVersion":"1.0.0","name":"n","pciBusID":"nope"}),
            "pciBusID",
            "nope",
        ),
    ];
    for (conf, field, value) in cases {
        let e = env.add("ctr1", POD, &conf).expect_err(&conf.to_string());
        assert_eq!(e.code, ErrorCode::InvalidConfig as u32, "{conf}: {e}");
        assert!(e.msg.contains(field), "{conf}: {e} should name {field}");
        assert!(e.msg.contains(value), "{conf}: {e} should name {value}");
    }
    let e = env
        .add("ctr1", POD, &with("vlan_trunk", json!("10-20")))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedField as u32, "{e}");
    assert!(
        e.msg.contains("vlan_trunk") && e.msg.contains("10-20"),
        "{e}"
    );
    let e = env
        .add("ctr1", POD, &with("vlan", json!("100")))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Decode as u32, "{e}");
    assert!(e.msg.contains("vlan"), "{e}");

    // a VF missing from sysfs, one on no driver, and a malformed VF dir
    let gone = plain_conf(&env, 1);
    let gone_pci = env.vf(1).to_string();
    env.fake.remove_vf(&gone_pci);
    let e = env.add("ctr1", POD, &gone).unwrap_err();
    assert!(
        e.msg.contains("deviceID") && e.msg.contains(&gone_pci),
        "{e}"
    );
    env.fake.rebind_vf(&vf, None);
    let e = env.add("ctr1", POD, &plain_conf(&env, 0)).unwrap_err();
    assert!(e.msg.contains("bound to no driver"), "{e}");
    env.fake.rebind_vf(&vf, Some("iavf"));
    env.fake.remove(&format!("bus/pci/devices/{vf}/physfn"));
    let e = env.add("ctr1", POD, &plain_conf(&env, 0)).unwrap_err();
    assert!(e.msg.contains("not an SR-IOV VF"), "{e}");

    assert_eq!(env.mutations(), Vec::<Call>::new(), "nothing touched");
    assert_eq!(
        env.state_files(),
        Vec::<String>::new(),
        "no record, no lock"
    );
}

#[test]
fn keys_match_case_insensitively_and_device_id_comes_from_any_injected_place() {
    let env = Env::new();
    let conf = json!({"cniVersion":"1.0.0","name":"n","type":"sriov",
        "DeviceID": env.vf(0).to_string(),"VLAN":7,"SpoofChk":"on","Link_State":"disable"});
    env.add("ctr1", POD, &conf).unwrap();
    let vf = env.vf_config(0);
    assert_eq!(vf.vlan, 7);
    assert_eq!(vf.link_state, VfLinkState::Disable);
    env.del("ctr1", Some(POD), &conf).unwrap();

    let conf = json!({"cniVersion":"1.0.0","name":"n","type":"sriov",
        "pciBusID": env.vf(1).to_string(),"vlan":8});
    env.add("ctr1", POD, &conf).unwrap();
    assert_eq!(env.vf_config(1).vlan, 8);
    env.del("ctr1", Some(POD), &conf).unwrap();

    let conf = json!({"cniVersion":"1.0.0","name":"n","type":"sriov",
        "runtimeConfig":{"deviceID": env.vf(0).to_string(),"mac":"02:00:00:00:00:77"},
        "mac":"02:00:00:00:00:01"});
    let r = env.add("ctr2", POD, &conf).unwrap();
    assert_eq!(
        r.interfaces[0].mac, "02:00:00:00:00:77",
        "runtimeConfig.mac wins"
    );
    env.del("ctr2", Some(POD), &conf).unwrap();
    assert_eq!(env.state_files(), env.released(&[0, 1]));
    assert_eq!(env.tombstone(0).unwrap().owner.container_id, "ctr2");
}

/// A failure at any step undoes what was done: no lease, no record, no lock, the VF as before;
/// just the tombstone that tells the runtime's DEL so.
#[test]
fn a_failure_at_each_step_rolls_everything_back() {
    for (op, skip) in [
        ("set_vf", 0),
        ("set_vf", 3),
        ("set_vf", 5),
        ("set_link_down", 0),
        ("set_link_mac", 0),
        ("set_link_mtu", 0),
        ("move_link", 0),
        ("set_sysctl", 0),
        ("add_address", 0),
        ("add_route", 0),
        ("set_link_up", 0),
    ] {
        let env = Env::new();
        let dir = tempfile::tempdir().unwrap();
        let mut conf = full_conf(&env, 0);
        conf["ipam"] = json!({"type":"host-local","subnet":"10.9.0.0/24","dataDir":dir.path(),
            "routes":[{"dst":"0.0.0.0/0"}],"gateway":"10.9.0.1"});
        let before_vf = env.vf_config(0);
        let before = env.host_link("ens1f0v0").unwrap();
        env.nl.world.lock().unwrap().fail_nth(
            op,
            skip,
            NetlinkError::from_errno(op, "injected", nix::errno::Errno::EIO as i32),
        );
        let e = env.add("ctr1", POD, &conf).expect_err(op);
        assert!(e.msg.contains("injected"), "{op}/{skip}: {e}");
        assert!(!e.msg.contains("rollback incomplete"), "{op}/{skip}: {e}");
        assert_eq!(
            env.vf_config(0),
            before_vf,
            "{op}/{skip}: VF settings restored"
        );
        let l = env
            .host_link("ens1f0v0")
            .unwrap_or_else(|| panic!("{op}/{skip}: netdev home"));
        assert_eq!(
            (l.index, l.mtu, l.mac, l.up),
            (before.index, before.mtu, before.mac, before.up),
            "{op}/{skip}"
        );
        assert!(env.pod_link(POD, "net1").is_none(), "{op}/{skip}");
        assert_eq!(
            env.state_files(),
            env.released(&[0]),
            "{op}/{skip}: no record, no lock"
        );
        let leases: Vec<String> = std::fs::read_dir(dir.path().join("sriov-net"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        assert!(leases.is_empty(), "{op}/{skip}: lease released: {leases:?}");
    }
}

/// The record is written before the first change: when it cannot be, nothing is changed.
#[test]
fn no_change_without_a_durable_record() {
    let env = Env::new();
    let blocker = env.state.path().join("state");
    std::fs::write(&blocker, "a file where the state dir should be").unwrap();
    let mut plugin = env.plugin.clone();
    plugin.state = super::store::StateStore::new(&blocker);
    let e = plugin
        .add(&req(Command::Add, "ctr1", Some(POD), &full_conf(&env, 0)))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Io as u32, "{e}");
    assert!(e.msg.contains("state"), "{e}");
    assert_eq!(env.mutations(), Vec::<Call>::new());
}

#[test]
fn a_failed_rollback_keeps_the_record_for_del_to_finish() {
    let env = Env::new();
    let conf = full_conf(&env, 0);
    let before_vf = env.vf_config(0);
    {
        let mut w = env.nl.world.lock().unwrap();
        // ADD fails adding the address; the rollback then cannot restore the VLAN
        w.fail_next(
            "add_address",
            NetlinkError::from_errno("add_address", "x", 5),
        );
        w.fail_nth(
            "set_vf",
            6 + 5,
            NetlinkError::from_errno("set_vf", "stuck", 16),
        );
    }
    let e = env.add("ctr1", POD, &conf).unwrap_err();
    assert!(e.msg.contains("rollback incomplete"), "{e}");
    assert!(e.msg.contains("kept for DEL"), "{e}");
    let rec = env.record(0).expect("record kept");
    assert_eq!(rec.changes.vf.len(), 6);
    assert!(
        env.host_link("ens1f0v0").is_some(),
        "the netdev came home anyway"
    );
    assert_ne!(env.vf_config(0), before_vf);
    // the runtime's DEL after the failed ADD finishes the job
    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.vf_config(0), before_vf);
    assert_eq!(env.state_files(), env.released(&[0]));
}

#[test]
fn del_from_another_container_does_not_touch_the_vf() {
    let env = Env::new();
    let conf = full_conf(&env, 0);
    env.add("ctr1", POD, &conf).unwrap();
    let held = env.vf_config(0);
    env.clear_calls();
    env.del("ctr2", Some(POD2), &conf).unwrap();
    assert_eq!(env.vf_config(0), held);
    assert!(env.pod_link(POD, "net1").is_some());
    assert!(env.record(0).is_some());
    assert_eq!(env.mutations(), Vec::<Call>::new());
    // and an ADD by another container is refused while the owner's netns lives
    let e = env.add("ctr2", POD2, &conf).unwrap_err();
    assert_eq!(e.code, ErrorCode::TryAgainLater as u32, "{e}");
    assert!(e.msg.contains("ctr1") && e.msg.contains(POD), "{e}");
    assert_eq!(env.vf_config(0), held);
    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.state_files(), env.released(&[0]));
}

#[test]
fn concurrent_adds_of_one_vf_let_exactly_one_through() {
    let env = Env::new();
    let conf = plain_conf(&env, 0);
    let results: Vec<Result<CniResult, CniError>> = std::thread::scope(|s| {
        let handles: Vec<_> = [("ctr1", POD), ("ctr2", POD2)]
            .into_iter()
            .map(|(cid, pod)| {
                let env = &env;
                let conf = &conf;
                s.spawn(move || env.add(cid, pod, conf))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let e = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(e.code, ErrorCode::TryAgainLater as u32, "{e}");
}

/// The pod's netns is destroyed before DEL: the kernel puts the VF back in the host under its
/// pod name (or devN); DEL finds it by PCI address and restores name and settings.
#[test]
fn del_after_the_netns_is_gone_finds_the_vf_by_pci_address() {
    let env = Env::new();
    let conf = full_conf(&env, 0);
    let before = env.host_link("ens1f0v0").unwrap();
    env.add("ctr1", POD, &conf).unwrap();
    // something else took the VF's pod name in the host: it comes back as devN
    env.nl.world.lock().unwrap().add_link(None, "net1");
    assert!(env.nl.world.lock().unwrap().remove_netns(POD));
    let back = format!("dev{}", before.index);
    assert!(env.host_link(&back).is_some(), "kernel-style return");
    env.fake.set_vf_netdev(&env.vf(0).to_string(), Some(&back));
    env.del("ctr1", Some(POD), &conf).unwrap();
    let l = env.host_link("ens1f0v0").expect("renamed back");
    assert_eq!((l.index, l.mtu, l.mac), (before.index, 1500, before.mac));
    assert_eq!(env.vf_config(0), VfConfig::clean(0));
    assert_eq!(env.state_files(), env.released(&[0]));
}

#[test]
fn del_without_device_id_finds_its_record_by_owner() {
    let env = Env::new();
    let conf = full_conf(&env, 1);
    env.add("ctr1", POD, &conf).unwrap();
    let mut bare = conf.clone();
    bare.as_object_mut().unwrap().remove("deviceID");
    env.del("ctr1", Some(POD), &bare).unwrap();
    assert_eq!(env.vf_config(1), VfConfig::clean(1));
    assert!(env.host_link("ens1f0v1").is_some());
    assert_eq!(env.state_files(), env.released(&[1]));
}

#[test]
fn an_add_takes_over_a_vf_whose_owner_vanished_without_del() {
    let env = Env::new();
    // a kernel VF named in the pod as in the host: the kernel returns it under that name
    let conf = full_conf(&env, 0);
    let mut first = req(Command::Add, "ctr1", Some(POD), &conf);
    first.ifname = "ens1f0v0".into();
    env.plugin.add(&first).unwrap();
    assert!(env.host_link("ens1f0v0").is_none());
    assert!(env.nl.world.lock().unwrap().remove_netns(POD));
    let back = env.host_link("ens1f0v0").expect("returned by the kernel");
    assert_eq!((back.mtu, back.up), (9000, false));
    let mut conf2 = plain_conf(&env, 0);
    conf2["name"] = json!("other");
    env.add("ctr2", POD2, &conf2).unwrap();
    let rec = env.record(0).unwrap();
    assert_eq!(rec.owner.container_id, "ctr2");
    assert_eq!(
        rec.original.vf,
        VfConfig::clean(0),
        "restored before taking it"
    );
    let netdev = rec.original.netdev.unwrap();
    assert_eq!(
        (netdev.name.as_str(), netdev.mtu, netdev.up),
        ("ens1f0v0", 1500, true)
    );
    assert!(env.pod_link(POD2, "net1").is_some());
    assert_eq!(env.vf_config(0).vlan, 200);

    // a userspace VF: only the PF side to put back
    let dpdk = json!({"cniVersion":"1.0.0","name":"n","type":"sriov",
        "deviceID": env.vf(2).to_string(),"vlan":5,"trust":"on"});
    let e = env.add("ctr3", POD, &dpdk).unwrap_err();
    assert!(e.msg.contains(POD), "ADD into a netns that is gone: {e}");
    env.nl.world.lock().unwrap().add_netns(POD);
    env.add("ctr3", POD, &dpdk).unwrap();
    assert!(env.nl.world.lock().unwrap().remove_netns(POD));
    let mut other = dpdk.clone();
    other["vlan"] = json!(6);
    env.add("ctr4", POD2, &other).unwrap();
    let rec = env.record(2).unwrap();
    assert_eq!(rec.owner.container_id, "ctr4");
    assert_eq!(rec.original.vf, VfConfig::clean(2));
    assert_eq!((env.vf_config(2).vlan, env.vf_config(2).trust), (6, true));
}

/// The record is lost while the pod holds the VF: DEL clears what the configuration put on it
/// and brings the netdev home; a repeated DEL after a proper restore leaves an administrator's
/// settings alone.
#[test]
fn del_without_a_record_resets_what_the_pod_left_and_nothing_else() {
    let env = Env::new();
    let conf = full_conf(&env, 0);
    let r = env.add("ctr1", POD, &conf).unwrap();
    assert!(!r.interfaces.is_empty());
    std::fs::remove_file(env.plugin.state.record_path(&env.vf(0))).unwrap();
    let index = env.pod_link(POD, "net1").unwrap().index;
    env.del("ctr1", Some(POD), &conf).unwrap();
    let vf = env.vf_config(0);
    assert_eq!(
        vf,
        VfConfig::clean(0),
        "the pod's VLAN, MAC, rates... cleared"
    );
    assert!(
        env.host_link(&format!("dev{index}")).is_some(),
        "home under the kernel's devN name"
    );
    assert!(env.pod_link(POD, "net1").is_none());

    // an administrator's VF: a DEL without a record must not reset it
    let env = Env::new();
    let mut admin = VfConfig::clean(1);
    admin.mac = mac("02:ad:00:00:00:01");
    admin.vlan = 7;
    admin.trust = true;
    env.nl
        .world
        .lock()
        .unwrap()
        .set_vf_config(None, PF, admin.clone());
    let conf = json!({"cniVersion":"1.0.0","name":"n","type":"sriov",
        "deviceID": env.vf(1).to_string(),"vlan":100,"mac":"02:00:00:00:00:99","trust":"off"});
    env.add("ctr1", POD, &conf).unwrap();
    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.vf_config(1), admin, "restored");
    env.del("ctr1", Some(POD), &conf).unwrap();
    env.del("ctr1", None, &conf).unwrap();
    assert_eq!(
        env.vf_config(1),
        admin,
        "containerd's repeated DELs keep it"
    );
}

fn with_prev(conf: &Value, prev: &CniResult) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.to_json(crate::cni::CniVersion::V1_0_0);
    c
}

#[test]
fn check_compares_the_live_vf_with_the_record() {
    let env = Env::new();
    let conf = full_conf(&env, 0);
    let r = env.add("ctr1", POD, &conf).unwrap();
    let check = |cid: &str, c: &Value| {
        env.plugin
            .check(&req(Command::Check, cid, Some(POD), &with_prev(c, &r)))
    };
    check("ctr1", &conf).unwrap();

    let e = check("ctr2", &conf).unwrap_err();
    assert!(e.msg.contains("held by container ctr1"), "{e}");
    let mut changed = conf.clone();
    changed["vlan"] = json!(101);
    let e = check("ctr1", &changed).unwrap_err();
    assert!(e.msg.contains("vlan 101"), "{e}");

    // someone changes the VF behind the pod's back
    let mut vf = env.vf_config(0);
    vf.vlan = 5;
    env.nl.world.lock().unwrap().set_vf_config(None, PF, vf);
    let e = check("ctr1", &conf).unwrap_err();
    assert!(e.msg.starts_with("CHECK:"), "{e}");
    assert!(
        e.msg.contains("vlan is vlan 5") && e.msg.contains("expected vlan 100"),
        "{e}"
    );
    let mut fixed = env.vf_config(0);
    fixed.vlan = 100;
    env.nl.world.lock().unwrap().set_vf_config(None, PF, fixed);
    check("ctr1", &conf).unwrap();
    env.nl
        .world
        .lock()
        .unwrap()
        .update_link(Some(Path::new(POD)), "net1", |l| l.mtu = 1500);
    let e = check("ctr1", &conf).unwrap_err();
    assert!(e.msg.contains("MTU is 1500"), "{e}");

    env.del("ctr1", Some(POD), &conf).unwrap();
    let e = check("ctr1", &conf).unwrap_err();
    assert!(
        e.msg.contains("no record") && e.msg.contains("released (container ctr1 as net1)"),
        "{e}"
    );
}

#[test]
fn status_says_whether_the_pf_is_present_and_up() {
    let env = Env::new();
    let conf = json!({"cniVersion":"1.1.0","name":"n","type":"sriov",
        "deviceID": env.vf(0).to_string()});
    let status = |c: &Value| env.plugin.status(&req(Command::Status, "", None, c));
    status(&conf).unwrap();
    // no deviceID (injected per pod): nothing to look at
    status(&json!({"cniVersion":"1.1.0","name":"n","type":"sriov"})).unwrap();
    env.fake.set_link(PF, false);
    let e = status(&conf).unwrap_err();
    assert_eq!(e.code, ErrorCode::PluginNotAvailable as u32);
    assert!(e.msg.contains("ens1f0") && e.msg.contains("down"), "{e}");
    env.fake.remove_pf_netdev(PF_PCI);
    let e = status(&conf).unwrap_err();
    assert_eq!(e.code, ErrorCode::PluginNotAvailable as u32);
    assert!(e.msg.contains("no netdev"), "{e}");
    env.fake.remove_vf(&env.vf(0).to_string());
    let e = status(&conf).unwrap_err();
    assert_eq!(e.code, ErrorCode::PluginNotAvailable as u32, "{e}");
}

#[test]
fn gc_restores_vfs_of_attachments_that_are_no_longer_valid() {
    let env = Env::new();
    env.add("ctr1", POD, &plain_conf(&env, 0)).unwrap();
    env.add("ctr2", POD2, &plain_conf(&env, 1)).unwrap();
    let gc = json!({"cniVersion":"1.1.0","name":"sriov-net","type":"sriov",
        "cni.dev/valid-attachments":[{"containerID":"ctr2","ifname":"net1"}]});
    env.plugin.gc(&req(Command::Gc, "", None, &gc)).unwrap();
    assert!(env.record(0).is_none());
    assert_eq!(env.vf_config(0), VfConfig::clean(0));
    assert!(env.host_link("ens1f0v0").is_some());
    assert!(env.record(1).is_some(), "valid attachment kept");
    assert_eq!(env.vf_config(1).vlan, 200);
    // another network's GC does not touch this network's VFs
    let mut other = gc.clone();
    other["name"] = json!("other");
    other["cni.dev/valid-attachments"] = json!([]);
    env.plugin.gc(&req(Command::Gc, "", None, &other)).unwrap();
    assert!(env.record(1).is_some());
}

#[test]
fn the_record_holds_the_applied_settings_in_order() {
    let env = Env::new();
    env.add("ctr1", POD, &full_conf(&env, 0)).unwrap();
    let rec = env.record(0).unwrap();
    assert_eq!(
        rec.changes.vf,
        vec![
            VfSetting::Vlan {
                vlan: 100,
                qos: 3,
                proto: VlanProto::Dot1Ad
            },
            VfSetting::Mac(mac("02:aa:bb:cc:dd:01")),
            VfSetting::Rate { min: 10, max: 100 },
            VfSetting::SpoofCheck(false),
            VfSetting::Trust(true),
            VfSetting::LinkState(VfLinkState::Enable),
        ]
    );
    assert_eq!(rec.changes.mtu, Some(9000));
    assert!(rec.changes.moved);
    assert_eq!(rec.pf_name, PF);
    assert_eq!(rec.vf_index, 0);
    assert_eq!(rec.driver.as_deref(), Some("iavf"));
}

/// An administrator's VF whose setting already equals the configured one: ADD changes nothing
/// there, DEL restores it, and containerd's repeated DELs (with and without a netns) must not
/// take the missing record for a lost one and "clean" it.
#[test]
fn repeated_dels_keep_admin_values_equal_to_the_configured_ones() {
    let vlan = VfSetting::Vlan {
        vlan: 100,
        qos: 0,
        proto: VlanProto::Dot1Q,
    };
    let cases = [
        ("spoofchk", VfSetting::SpoofCheck(false), json!("off")),
        ("vlan", vlan, json!(100)),
        (
            "mac",
            VfSetting::Mac(mac("02:ad:00:00:00:01")),
            json!("02:ad:00:00:00:01"),
        ),
    ];
    for (key, seed, value) in cases {
        let env = Env::new();
        let mut admin = VfConfig::clean(1);
        admin.apply(&seed);
        assert_ne!(admin, VfConfig::clean(1), "{key}: not the clean value");
        env.nl
            .world
            .lock()
            .unwrap()
            .set_vf_config(None, PF, admin.clone());
        let mut conf = json!({"cniVersion":"1.0.0","name":"sriov-net","type":"sriov",
            "deviceID": env.vf(1).to_string()});
        conf[key] = value;
        env.add("ctr1", POD, &conf).unwrap();
        env.del("ctr1", Some(POD), &conf).unwrap();
        assert_eq!(env.vf_config(1), admin, "{key}: restored");
        env.clear_calls();
        env.del("ctr1", Some(POD), &conf).unwrap();
        env.del("ctr1", None, &conf).unwrap();
        assert_eq!(env.vf_config(1), admin, "{key}: repeated DELs keep it");
        assert_eq!(env.mutations(), Vec::<Call>::new(), "{key}: no-op DELs");
    }
}

/// The runtime's DEL after a failed (and fully rolled back) ADD finds no record: the rollback's
/// restore must be remembered as well.
#[test]
fn del_after_a_rolled_back_add_keeps_admin_values() {
    let env = Env::new();
    let mut admin = VfConfig::clean(0);
    admin.spoofchk = false;
    env.nl
        .world
        .lock()
        .unwrap()
        .set_vf_config(None, PF, admin.clone());
    let conf = full_conf(&env, 0);
    env.nl.world.lock().unwrap().fail_next(
        "add_address",
        NetlinkError::from_errno("add_address", "injected", 5),
    );
    let e = env.add("ctr1", POD, &conf).unwrap_err();
    assert!(!e.msg.contains("rollback incomplete"), "{e}");
    assert_eq!(env.vf_config(0), admin, "rolled back");
    env.clear_calls();
    env.del("ctr1", Some(POD), &conf).unwrap();
    env.del("ctr1", None, &conf).unwrap();
    assert_eq!(env.vf_config(0), admin, "the runtime's DELs keep it");
    assert_eq!(env.mutations(), Vec::<Call>::new());
}

/// GC put the VF back; a late DEL of that attachment leaves it alone.
#[test]
fn del_after_gc_restored_the_vf_keeps_admin_values() {
    let env = Env::new();
    let mut admin = VfConfig::clean(0);
    admin.vlan = 200;
    env.nl
        .world
        .lock()
        .unwrap()
        .set_vf_config(None, PF, admin.clone());
    let conf = plain_conf(&env, 0);
    env.add("ctr1", POD, &conf).unwrap();
    let gc = json!({"cniVersion":"1.1.0","name":"sriov-net","type":"sriov",
        "cni.dev/valid-attachments":[]});
    env.plugin.gc(&req(Command::Gc, "", None, &gc)).unwrap();
    assert_eq!(env.vf_config(0), admin, "GC restored it");
    env.clear_calls();
    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.vf_config(0), admin, "a late DEL keeps it");
    assert_eq!(env.mutations(), Vec::<Call>::new());
}

/// The tombstone lasts until the next ADD of the VF, by any attachment, which replaces it with
/// its record; it neither holds the VF nor keeps the lock file.
#[test]
fn the_next_add_replaces_the_tombstone() {
    let env = Env::new();
    let conf = plain_conf(&env, 0);
    env.add("ctr1", POD, &conf).unwrap();
    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.state_files(), env.released(&[0]));
    // not "in use": another pod gets the VF at once, and its ADD removes the tombstone
    env.add("ctr2", POD2, &conf).unwrap();
    assert!(env.tombstone(0).is_none(), "{:?}", env.state_files());
    assert_eq!(env.record(0).unwrap().owner.container_id, "ctr2");
    let files = env.state_files();
    assert_eq!(
        files,
        [format!("{}.json", env.vf(0)), format!("{}.lock", env.vf(0))]
    );
    // ctr1's late DEL now meets ctr2's record: not its VF
    env.del("ctr1", Some(POD), &conf).unwrap();
    assert_eq!(env.vf_config(0).vlan, 200);
    env.del("ctr2", Some(POD2), &conf).unwrap();
    assert_eq!(env.state_files(), env.released(&[0]));
    assert_eq!(env.tombstone(0).unwrap().owner.container_id, "ctr2");

    // an ADD that fails before taking the VF leaves an earlier tombstone where it is
    env.nl
        .world
        .lock()
        .unwrap()
        .add_link(Some(Path::new(POD)), "net1");
    let e = env.add("ctr3", POD, &conf).unwrap_err();
    assert_eq!(e.code, ErrorCode::InterfaceExists as u32, "{e}");
    assert_eq!(env.tombstone(0).unwrap().owner.container_id, "ctr2");
}

/// A tombstone speaks only for its own attachment: a DEL by another container, another
/// interface or (same container and interface) another network, finding no record, still
/// takes the state for lost and clears what its configuration would have put on the VF.
#[test]
fn another_attachments_del_with_a_tombstone_present_resets_as_for_a_lost_record() {
    for (cid, ifname, network) in [
        ("ctr2", "net1", "sriov-net"),
        ("ctr1", "net2", "sriov-net"),
        ("ctr1", "net1", "other-net"),
    ] {
        let env = Env::new();
        let mut admin = VfConfig::clean(1);
        admin.spoofchk = false;
        admin.vlan = 100;
        env.nl
            .world
            .lock()
            .unwrap()
            .set_vf_config(None, PF, admin.clone());
        let conf = json!({"cniVersion":"1.0.0","name":"sriov-net","type":"sriov",
            "deviceID": env.vf(1).to_string(),"spoofchk":"off","vlan":100});
        env.add("ctr1", POD, &conf).unwrap();
        env.del("ctr1", Some(POD), &conf).unwrap();
        assert_eq!(env.vf_config(1), admin);
        let mut other = conf.clone();
        other["name"] = json!(network);
        let mut del = req(Command::Del, cid, None, &other);
        del.ifname = ifname.into();
        env.plugin.del(&del).unwrap();
        assert_eq!(
            env.vf_config(1),
            VfConfig::clean(1),
            "{cid}/{ifname}/{network}: lost-record reset"
        );
        assert_eq!(
            env.tombstone(1).unwrap().owner.container_id,
            "ctr1",
            "the tombstone stays until the next ADD"
        );
    }
}

/// A tombstone that cannot be read counts as none: DEL falls back to the lost-record reset.
#[test]
fn an_unreadable_tombstone_counts_as_none() {
    let env = Env::new();
    let mut admin = VfConfig::clean(1);
    admin.vlan = 100;
    env.nl
        .world
        .lock()
        .unwrap()
        .set_vf_config(None, PF, admin.clone());
    let conf = json!({"cniVersion":"1.0.0","name":"sriov-net","type":"sriov",
        "deviceID": env.vf(1).to_string(),"vlan":100});
    env.add("ctr1", POD, &conf).unwrap();
    env.del("ctr1", Some(POD), &conf).unwrap();
    std::fs::write(env.plugin.state.released_path(&env.vf(1)), "{").unwrap();
    env.del("ctr1", None, &conf).unwrap();
    assert_eq!(env.vf_config(1).vlan, 0, "reset as for a lost record");
}
