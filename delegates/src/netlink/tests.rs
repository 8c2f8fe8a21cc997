//! Privileged tests of [`RtNetlink`] against the real kernel. Each test works only inside
//! namespaces it creates ([`TestNetns`], removed on drop even on panic) and skips with a message
//! when not root or when the kernel lacks a link kind.

use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use ipnet::IpNet;

use super::*;
use crate::netns::fixture::{TestNetns, require_link_kind, require_root};

fn net(s: &str) -> IpNet {
    s.parse().expect("net")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn veth(name: &str, peer: &str) -> NewLink {
    NewLink::new(
        name,
        NewLinkKind::Veth {
            peer_name: peer.to_owned(),
        },
    )
}

fn has_ipv6(t: &TestNetns) -> bool {
    t.netns()
        .run_in(|| Path::new("/proc/sys/net/ipv6").exists())
        .expect("run_in")
}

#[test]
fn rt_veth_lookup_up_delete() {
    if !require_root("rt_veth_lookup_up_delete") {
        return;
    }
    let t = TestNetns::new("plx-veth");
    let start = Instant::now();
    let nl = RtNetlink::open(Some(t.netns())).expect("open");
    eprintln!(
        "RtNetlink::open in a foreign netns took {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let cur = RtNetlink::open(None).expect("open current");
    eprintln!("RtNetlink::open(None) took {:?}", start.elapsed());
    drop(cur);

    assert!(nl.link("va").expect("lookup").is_none());
    let mut spec = veth("va", "vb");
    spec.mtu = Some(1400);
    spec.mac = Some("02:11:22:33:44:55".parse().expect("mac"));
    nl.create_link(&spec).expect("create veth");
    let err = nl.create_link(&spec).expect_err("clash");
    assert!(err.is_already_exists(), "{err}");
    assert!(err.to_string().contains("\"va\""), "{err}");

    let va = nl.link("va").expect("lookup").expect("exists");
    assert_eq!(va.kind.as_deref(), Some("veth"));
    assert_eq!(va.mtu, 1400);
    assert_eq!(va.mac, spec.mac);
    assert!(!va.up);
    assert_eq!(
        nl.link_by_index(va.index).expect("by index"),
        Some(va.clone())
    );
    assert!(nl.link_by_index(999_999).expect("missing index").is_none());

    nl.set_link_up("va").expect("up va");
    nl.set_link_up("vb").expect("up vb");
    let va = nl.link("va").expect("lookup").expect("exists");
    assert!(va.up);
    let out = t.run_ok("ip", &["-o", "link", "show", "va"]);
    assert!(out.contains("UP"), "{out}");
    assert!(nl.set_link_up("nope0").expect_err("missing").is_not_found());
    assert!(matches!(
        nl.link("0123456789abcdefg").expect_err("too long"),
        NetlinkError::Invalid { .. }
    ));

    assert!(nl.delete_link("va").expect("delete"));
    assert!(!nl.delete_link("va").expect("delete again"));
    assert!(nl.link("vb").expect("peer").is_none(), "peer goes with it");
}

#[test]
fn rt_macvlan_created_directly_in_second_netns() {
    if !require_root("rt_macvlan_created_directly_in_second_netns")
        || !require_link_kind("rt_macvlan_created_directly_in_second_netns", "macvlan")
    {
        return;
    }
    let host = TestNetns::new("plx-mvh");
    let pod = TestNetns::new("plx-mvp");
    let nl1 = RtNetlink::open(Some(host.netns())).expect("open host");
    let nl2 = RtNetlink::open(Some(pod.netns())).expect("open pod");
    nl1.create_link(&veth("up0", "up1")).expect("parent");
    nl1.set_link_up("up0").expect("up");
    let parent = nl1.link("up0").expect("lookup").expect("parent");

    let mac: MacAddr = "02:aa:bb:cc:dd:01".parse().expect("mac");
    let spec = NewLink {
        name: "net1".into(),
        kind: NewLinkKind::Macvlan {
            parent_index: parent.index,
            mode: MacvlanMode::Private,
            bc_queue_len: None,
        },
        mtu: Some(1450),
        mac: Some(mac),
        target: Some(pod.path().to_path_buf()),
    };
    nl1.create_link(&spec).expect("create macvlan in pod");
    assert!(
        nl1.link("net1").expect("lookup").is_none(),
        "never in the host netns"
    );
    let l = nl2.link("net1").expect("lookup").expect("in pod");
    assert_eq!(l.kind.as_deref(), Some("macvlan"));
    assert_eq!(l.macvlan_mode, Some(MacvlanMode::Private));
    assert_eq!(l.mac, Some(mac));
    assert_eq!(l.mtu, 1450);
    assert!(l.parent_index.is_some());
    let err = nl1.create_link(&spec).expect_err("name clash in pod");
    assert!(err.is_already_exists(), "{err}");

    // Bridge mode with a broadcast queue length, into the pod as well.
    let spec2 = NewLink {
        name: "net2".into(),
        kind: NewLinkKind::Macvlan {
            parent_index: parent.index,
            mode: MacvlanMode::Bridge,
            bc_queue_len: None,
        },
        mtu: None,
        mac: None,
        target: Some(pod.path().to_path_buf()),
    };
    nl1.create_link(&spec2).expect("second macvlan");
    let l2 = nl2.link("net2").expect("lookup").expect("in pod");
    assert_eq!(l2.macvlan_mode, Some(MacvlanMode::Bridge));
    assert_eq!(l2.mtu, parent.mtu);

    let err = nl1
        .create_link(&NewLink {
            target: Some("/run/netns/plexus-does-not-exist".into()),
            ..spec2.clone()
        })
        .expect_err("missing target");
    assert!(err.is_netns_not_found(), "{err}");
    let err = nl1
        .create_link(&NewLink {
            kind: NewLinkKind::Macvlan {
                parent_index: 999_999,
                mode: MacvlanMode::Bridge,
                bc_queue_len: None,
            },
            ..spec2
        })
        .expect_err("missing parent");
    assert!(err.to_string().contains("parent index 999999"), "{err}");

    assert!(nl2.delete_link("net1").expect("delete"));
    assert!(!nl2.delete_link("net1").expect("delete again"));
}

#[test]
fn rt_addresses_and_routes() {
    if !require_root("rt_addresses_and_routes") {
        return;
    }
    let t = TestNetns::new("plx-addr");
    let v6 = has_ipv6(&t);
    let nl = RtNetlink::open(Some(t.netns())).expect("open");
    nl.create_link(&veth("r0", "r1")).expect("veth");
    nl.set_link_up("r0").expect("up");
    nl.set_link_up("r1").expect("up");
    assert!(nl.default_route_link().expect("no default").is_none());

    nl.add_address("r0", net("10.10.0.2/24")).expect("v4 addr");
    let err = nl.add_address("r0", net("10.10.0.2/24")).expect_err("dup");
    assert!(err.is_already_exists(), "{err}");
    assert!(err.to_string().contains("10.10.0.2/24"), "{err}");
    assert!(
        nl.add_address("nope0", net("10.0.0.1/8"))
            .expect_err("no link")
            .is_not_found()
    );
    if v6 {
        nl.add_address("r0", net("2001:db8:1::2/64"))
            .expect("v6 addr");
    }
    let addrs = nl.addresses("r0").expect("addresses");
    assert!(
        addrs
            .iter()
            .any(|a| a.addr == net("10.10.0.2/24") && !a.tentative),
        "{addrs:?}"
    );
    if v6 {
        assert!(
            addrs.iter().any(|a| a.addr == net("2001:db8:1::2/64")),
            "{addrs:?}"
        );
    }
    assert!(
        nl.addresses("r1")
            .expect("r1")
            .iter()
            .all(|a| a.addr.addr().is_ipv6())
    );

    let via = RouteSpec::new(net("10.20.0.0/16"))
        .via(ip("10.10.0.1"))
        .dev("r0");
    let onlink = RouteSpec {
        mtu: Some(1300),
        priority: Some(50),
        ..RouteSpec::new(net("10.30.0.0/16")).dev("r0")
    };
    let other_table = RouteSpec {
        table: Some(100),
        ..RouteSpec::new(net("10.40.0.0/16")).via(ip("10.10.0.1"))
    };
    let default = RouteSpec::new(net("0.0.0.0/0")).via(ip("10.10.0.1"));
    for r in [&via, &onlink, &other_table, &default] {
        nl.add_route(r).unwrap_or_else(|e| panic!("add {r:?}: {e}"));
    }
    assert!(nl.add_route(&via).expect_err("dup").is_already_exists());
    let unreachable = RouteSpec::new(net("10.50.0.0/16")).via(ip("192.0.2.1"));
    let err = nl.add_route(&unreachable).expect_err("unreachable gw");
    assert!(
        err.to_string().contains("10.50.0.0/16 via 192.0.2.1"),
        "{err}"
    );

    let routes = nl.routes("r0").expect("routes");
    let find = |dst: &str| {
        routes
            .iter()
            .find(|r| r.dst == net(dst))
            .unwrap_or_else(|| panic!("{dst} missing from {routes:?}"))
    };
    let r = find("10.20.0.0/16");
    assert_eq!(
        (r.gw, r.scope, r.table),
        (
            Some(ip("10.10.0.1")),
            Some(RT_SCOPE_UNIVERSE),
            Some(RT_TABLE_MAIN)
        )
    );
    let r = find("10.30.0.0/16");
    assert_eq!(
        (r.gw, r.scope, r.mtu, r.priority),
        (None, Some(RT_SCOPE_LINK), Some(1300), Some(50))
    );
    assert_eq!(find("10.40.0.0/16").table, Some(100));
    assert_eq!(
        find("10.10.0.0/24").scope,
        Some(RT_SCOPE_LINK),
        "connected route"
    );
    assert_eq!(find("0.0.0.0/0").oif.as_deref(), Some("r0"));
    let out = t.run_ok("ip", &["route", "show", "10.30.0.0/16"]);
    assert!(
        out.contains("scope link") && out.contains("mtu 1300"),
        "{out}"
    );

    assert_eq!(
        nl.default_route_link().expect("default"),
        Some("r0".to_owned())
    );

    if v6 {
        let r6 = RouteSpec::new(net("2001:db8:2::/64"))
            .via(ip("2001:db8:1::1"))
            .dev("r0");
        nl.add_route(&r6).expect("v6 route");
        let routes = nl.routes("r0").expect("routes");
        let got = routes
            .iter()
            .find(|r| r.dst == r6.dst)
            .expect("v6 route listed");
        assert_eq!(got.gw, r6.gw);
        nl.delete_route(&r6).expect("delete v6");
    }

    for r in [&via, &onlink, &other_table, &default] {
        nl.delete_route(r)
            .unwrap_or_else(|e| panic!("delete {r:?}: {e}"));
    }
    let err = nl.delete_route(&via).expect_err("already gone");
    assert!(err.is_not_found(), "{err}");
    assert!(nl.default_route_link().expect("no default").is_none());
    let left = nl.routes("r0").expect("routes");
    assert!(
        left.iter().all(|r| r.dst != net("10.20.0.0/16")),
        "{left:?}"
    );
}

#[test]
fn rt_move_link_with_rename_and_sysctl() {
    if !require_root("rt_move_link_with_rename_and_sysctl") {
        return;
    }
    let a = TestNetns::new("plx-mva");
    let b = TestNetns::new("plx-mvb");
    let nla = RtNetlink::open(Some(a.netns())).expect("open a");
    let nlb = RtNetlink::open(Some(b.netns())).expect("open b");
    nla.create_link(&veth("tmp-x", "peer-x")).expect("veth");
    nla.add_address("tmp-x", net("10.60.0.1/24")).expect("addr");
    nla.move_link("tmp-x", b.path(), "eth5")
        .expect("move + rename");
    assert!(nla.link("tmp-x").expect("lookup").is_none());
    assert!(nla.link("eth5").expect("lookup").is_none());
    let l = nlb.link("eth5").expect("lookup").expect("moved");
    assert_eq!(l.kind.as_deref(), Some("veth"));
    assert!(
        nlb.addresses("eth5")
            .expect("addrs")
            .iter()
            .all(|x| x.addr != net("10.60.0.1/24"))
    );

    let err = nla
        .move_link("tmp-x", b.path(), "eth6")
        .expect_err("missing");
    assert!(err.is_not_found(), "{err}");
    let err = nla
        .move_link(
            "peer-x",
            Path::new("/run/netns/plexus-does-not-exist"),
            "eth6",
        )
        .expect_err("missing netns");
    assert!(err.is_netns_not_found(), "{err}");

    // Only the new name clashes in the target: the kernel would move the link under its old
    // name and fail the rename; move_link must leave it where it was.
    nlb.create_link(&veth("eth6", "peer-b"))
        .expect("clashing name in b");
    let err = nla
        .move_link("peer-x", b.path(), "eth6")
        .expect_err("clash");
    assert!(err.is_already_exists(), "{err}");
    assert!(
        nla.link("peer-x").expect("lookup").is_some(),
        "still in a, under its name"
    );
    assert!(
        nlb.link("peer-x").expect("lookup").is_none(),
        "not half-moved into b"
    );

    nlb.set_sysctl("net/ipv4/conf/eth5/arp_notify", "1")
        .expect("arp_notify");
    let v = b
        .netns()
        .run_in(|| std::fs::read_to_string("/proc/sys/net/ipv4/conf/eth5/arp_notify"))
        .expect("run_in")
        .expect("read");
    assert_eq!(v.trim(), "1");
    // The other namespace has no eth5: the per-interface key is missing there.
    let err = nla
        .set_sysctl("net/ipv4/conf/eth5/arp_notify", "1")
        .expect_err("not in a");
    assert!(err.is_sysctl_not_found(), "{err}");
    if has_ipv6(&b) {
        nlb.set_sysctl("net/ipv6/conf/eth5/ndisc_notify", "1")
            .expect("ndisc_notify");
        let out = b.run_ok("cat", &["/proc/sys/net/ipv6/conf/eth5/ndisc_notify"]);
        assert_eq!(out.trim(), "1");
    }
}

#[test]
fn rt_ipvlan_created_directly_in_second_netns() {
    if !require_root("rt_ipvlan_created_directly_in_second_netns")
        || !require_link_kind("rt_ipvlan_created_directly_in_second_netns", "ipvlan")
    {
        return;
    }
    let host = TestNetns::new("plx-ivh");
    let pod = TestNetns::new("plx-ivp");
    let nl1 = RtNetlink::open(Some(host.netns())).expect("open host");
    let nl2 = RtNetlink::open(Some(pod.netns())).expect("open pod");
    nl1.create_link(&veth("ip0", "ip1")).expect("parent");
    let parent = nl1.link("ip0").expect("lookup").expect("parent");
    let spec = NewLink {
        name: "net1".into(),
        kind: NewLinkKind::Ipvlan {
            parent_index: parent.index,
            mode: IpvlanMode::L3,
            flags: IpvlanFlags::Private,
        },
        mtu: Some(1400),
        mac: None,
        target: Some(pod.path().to_path_buf()),
    };
    nl1.create_link(&spec).expect("create ipvlan");
    let l = nl2.link("net1").expect("lookup").expect("in pod");
    assert_eq!(l.kind.as_deref(), Some("ipvlan"));
    assert_eq!(l.ipvlan_mode, Some(IpvlanMode::L3));
    assert_eq!(l.ipvlan_flags, Some(IpvlanFlags::Private));
    assert_eq!(l.mtu, 1400);
}

#[test]
fn rt_refuses_async_context() {
    if !require_root("rt_refuses_async_context") {
        return;
    }
    let t = TestNetns::new("plx-async");
    let nl = RtNetlink::open(Some(t.netns())).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let err = rt
        .block_on(async { nl.link("lo") })
        .expect_err("inside runtime");
    assert!(matches!(err, NetlinkError::Protocol { .. }), "{err}");
    assert!(nl.link("lo").expect("outside").is_some());
    // Dropping inside an async context must not panic either.
    rt.block_on(async move { drop(nl) });
}
