//! Privileged tests of [`RtNetlink`]'s link changes (veth on the host kernel) and PF-side VF
//! settings (netdevsim, in the VM), each in its own namespace. `ip link` is the oracle.

use super::netdevsim_fixture::Netdevsim;
use super::*;
use crate::netns::fixture::{TestNetns, require_root};

fn veth(nl: &RtNetlink, name: &str, peer: &str) {
    nl.create_link(&NewLink::new(
        name,
        NewLinkKind::Veth {
            peer_name: peer.to_owned(),
        },
    ))
    .expect("create veth");
}

#[test]
fn rt_link_down_rename_mtu_mac() {
    if !require_root("rt_link_down_rename_mtu_mac") {
        return;
    }
    let t = TestNetns::new("plx-vfl");
    let nl = RtNetlink::open(Some(t.netns())).expect("open");
    veth(&nl, "sa", "sb");
    nl.set_link_up("sa").expect("up");
    assert!(nl.link("sa").expect("ok").expect("sa").up);
    // the VM's 6.1 refuses to rename a link that is up (newer kernels allow it), so callers
    // bring it down first
    match nl.rename_link("sa", "sx") {
        Ok(()) => nl.rename_link("sx", "sa").expect("rename back"),
        Err(e) => assert_eq!(e.errno(), Some(nix::errno::Errno::EBUSY as i32), "{e}"),
    }
    nl.set_link_down("sa").expect("down");
    assert!(!nl.link("sa").expect("ok").expect("sa").up);
    nl.rename_link("sa", "sc").expect("rename");
    assert!(nl.link("sa").expect("ok").is_none());
    assert!(
        nl.rename_link("sc", "sb")
            .expect_err("taken")
            .is_already_exists()
    );
    nl.set_link_mtu("sc", 9000).expect("mtu");
    let mac: MacAddr = "02:12:34:56:78:9a".parse().expect("mac");
    nl.set_link_mac("sc", mac).expect("mac");
    let l = nl.link("sc").expect("ok").expect("sc");
    assert_eq!((l.mtu, l.mac), (9000, Some(mac)));
    assert_eq!(l.parent_device, None, "a veth has no bus device");
    let out = t.run_ok("ip", &["-o", "link", "show", "sc"]);
    assert!(
        out.contains("mtu 9000") && out.contains("02:12:34:56:78:9a"),
        "{out}"
    );
    assert!(nl.set_link_mtu("sc", 10).is_err());
    assert!(
        nl.set_link_down("nope")
            .expect_err("missing")
            .is_not_found()
    );
    // a netdev without SR-IOV has no VFs and refuses VF settings
    assert_eq!(nl.vfs("sc").expect("vfs"), Vec::new());
    let e = nl
        .set_vf("sc", 0, &VfSetting::Trust(true))
        .expect_err("not a PF");
    assert!(e.errno().is_some(), "{e}");
    assert!(matches!(
        nl.set_vf(
            "sc",
            0,
            &VfSetting::Vlan {
                vlan: 4095,
                qos: 0,
                proto: VlanProto::Dot1Q
            }
        ),
        Err(NetlinkError::Invalid { .. })
    ));
}

/// Set every VF setting on a netdevsim PF, read each back (ours and `ip link`'s view), restore
/// the original snapshot.
#[test]
fn netdevsim_vf_settings_set_read_back_restore() {
    const TEST: &str = "netdevsim_vf_settings_set_read_back_restore";
    if !require_root(TEST) {
        return;
    }
    let t = TestNetns::new("plx-nsim");
    let Some(dev) = Netdevsim::new(TEST, &t, 4) else {
        return;
    };
    let nl = RtNetlink::open(Some(t.netns())).expect("open");
    let pf = dev.pf.as_str();
    let l = nl.link(pf).expect("ok").expect("PF");
    assert!(
        l.parent_device
            .as_deref()
            .is_some_and(|d| d.starts_with("netdevsim")),
        "{l:?}"
    );
    let original = nl.vfs(pf).expect("vfs");
    assert_eq!(
        original.iter().map(|v| v.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let settings = [
        VfSetting::Mac("02:11:22:33:44:55".parse().expect("mac")),
        VfSetting::Vlan {
            vlan: 100,
            qos: 3,
            proto: VlanProto::Dot1Ad,
        },
        VfSetting::Rate { min: 10, max: 100 },
        VfSetting::SpoofCheck(!original[1].spoofchk),
        VfSetting::Trust(true),
        VfSetting::LinkState(VfLinkState::Disable),
    ];
    let mut want = original[1].clone();
    for s in &settings {
        nl.set_vf(pf, 1, s)
            .unwrap_or_else(|e| panic!("set {s}: {e}"));
        want.apply(s);
        let got = nl.vfs(pf).expect("vfs");
        assert_eq!(got[1], want, "after {s}");
        assert_eq!(got[0], original[0], "VF 0 untouched by {s}");
    }
    let out = t.run_ok("ip", &["link", "show", pf]);
    let vf1 = out
        .lines()
        .find(|l| l.trim_start().starts_with("vf 1 "))
        .unwrap_or_else(|| panic!("no vf 1 in {out}"));
    for needle in [
        "02:11:22:33:44:55",
        "vlan 100",
        "qos 3",
        "vlan protocol 802.1ad",
        "max_tx_rate 100Mbps",
        "min_tx_rate 10Mbps",
        "link-state disable",
        "trust on",
    ] {
        assert!(vf1.contains(needle), "{needle:?} missing in: {vf1}");
    }
    for s in settings.iter().rev() {
        nl.set_vf(pf, 1, &original[1].current(s))
            .unwrap_or_else(|e| panic!("restore {s}: {e}"));
    }
    assert_eq!(nl.vfs(pf).expect("vfs"), original);
    // a zero MAC is "unset" and accepted; an index past the VFs is refused by the driver
    nl.set_vf(pf, 2, &VfSetting::Mac(MacAddr([0; 6])))
        .expect("zero MAC");
    let e = nl
        .set_vf(pf, 9, &VfSetting::Trust(true))
        .expect_err("no VF 9");
    assert_eq!(e.errno(), Some(nix::errno::Errno::EINVAL as i32), "{e}");
}
