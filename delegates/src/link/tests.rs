//! Delegate logic (macvlan, ipvlan) on the recording netlink fake: no root needed.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cni::{CniArgs, CniResult, Command, ErrorCode, Plugin, Request};
use crate::ipvlan::IpvlanPlugin;
use crate::link::FakeProvider;
use crate::macvlan::MacvlanPlugin;
use crate::netlink::{Call, LinkInfo, MacvlanMode, NetlinkError, RouteSpec};

const POD: &str = "/run/netns/pod-a";

fn world() -> FakeProvider {
    let p = FakeProvider::default();
    {
        let mut w = p.world.lock().unwrap();
        let mut eth1 = LinkInfo::new(0, "eth1");
        eth1.mtu = 1500;
        eth1.up = true;
        w.insert_link(None, eth1);
        w.add_netns(POD);
    }
    p
}

fn req(command: Command, conf: &Value) -> Request {
    Request {
        command,
        container_id: "ctr1".into(),
        netns: Some(PathBuf::from(POD)),
        ifname: "net1".into(),
        args: CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=a").unwrap(),
        path: vec![PathBuf::from("/usr/lib/cni")],
        config: serde_json::to_vec(conf).unwrap(),
    }
}

fn static_macvlan() -> Value {
    json!({"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"eth1",
        "ipam":{"type":"static","addresses":[{"address":"10.1.1.5/24","gateway":"10.1.1.1"}],
                "routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.1.1.254"}]},
        "dns":{"nameservers":["10.1.1.53"]}})
}

fn pod_links(p: &FakeProvider) -> Vec<String> {
    let w = p.world.lock().unwrap();
    w.links(Some(Path::new(POD)))
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo")
        .collect()
}

#[test]
fn macvlan_add_creates_link_in_pod_with_addresses_routes_and_sysctls() {
    let p = world();
    let plugin = MacvlanPlugin::new(p.clone());
    let r = plugin.add(&req(Command::Add, &static_macvlan())).unwrap();
    assert_eq!(r.interfaces.len(), 1);
    assert_eq!(r.interfaces[0].sandbox, POD);
    assert!(!r.interfaces[0].mac.is_empty());
    assert_eq!(r.ips[0].interface, Some(0));
    assert_eq!(r.dns.nameservers, vec!["10.1.1.53"]);

    let w = p.world.lock().unwrap();
    let pod = Some(Path::new(POD));
    let link = w.link(pod, "net1").expect("net1 in the pod");
    assert_eq!(link.kind.as_deref(), Some("macvlan"));
    assert_eq!(link.macvlan_mode, Some(MacvlanMode::Bridge));
    assert!(link.up);
    assert_eq!(
        w.addresses_of(pod, "net1")[0].addr.to_string(),
        "10.1.1.5/24"
    );
    let routes = w.routes_in(pod);
    // a route without gw takes the IP config's gateway, as the reference ConfigureIface does
    assert!(
        routes
            .iter()
            .any(|r| r.dst.to_string() == "0.0.0.0/0" && r.gw == Some("10.1.1.1".parse().unwrap()))
    );
    assert!(
        routes
            .iter()
            .any(|r| r.gw == Some("10.1.1.254".parse().unwrap()))
    );
    assert_eq!(
        w.sysctl(pod, "net/ipv4/conf/net1/arp_notify").as_deref(),
        Some("1")
    );
    // the reference's proxy_arp is reset when it moves the link; a link born in the pod has none
    assert_eq!(w.sysctl(pod, "net/ipv4/conf/net1/proxy_arp"), None);
    // created straight into the pod netns from the host: never half-named in the host
    let create = w
        .calls()
        .into_iter()
        .find(|c| matches!(c, Call::CreateLink { .. }))
        .unwrap();
    match create {
        Call::CreateLink { ns, spec } => {
            assert_eq!(ns, None);
            assert_eq!(spec.name, "net1");
            assert_eq!(spec.target.as_deref(), Some(Path::new(POD)));
        }
        _ => unreachable!(),
    }
    assert!(w.link(None, "net1").is_none());
}

#[test]
fn macvlan_without_ipam_is_l2_only_and_up() {
    let p = world();
    let conf =
        json!({"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"eth1","mode":"private"});
    let r = MacvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap();
    assert!(r.ips.is_empty());
    let w = p.world.lock().unwrap();
    let link = w.link(Some(Path::new(POD)), "net1").unwrap();
    assert!(link.up);
    assert_eq!(link.macvlan_mode, Some(MacvlanMode::Private));
    assert!(w.addresses_of(Some(Path::new(POD)), "net1").is_empty());
}

#[test]
fn empty_master_uses_the_default_route_interface() {
    let p = world();
    p.world.lock().unwrap().seed_route(
        None,
        RouteSpec::new("0.0.0.0/0".parse().unwrap())
            .via("192.0.2.1".parse().unwrap())
            .dev("eth1"),
    );
    let conf = json!({"cniVersion":"1.0.0","name":"mv","type":"macvlan"});
    MacvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap();
    assert_eq!(pod_links(&p), vec!["net1"]);
}

#[test]
fn config_errors_name_field_and_value_and_touch_nothing() {
    let cases = [
        (
            json!({"cniVersion":"1.0.0","name":"m","master":"nope"}),
            7,
            "nope",
        ),
        (
            json!({"cniVersion":"1.0.0","name":"m","master":"eth1","mode":"weird"}),
            7,
            "weird",
        ),
        (
            json!({"cniVersion":"1.0.0","name":"m","master":"eth1","mtu":9000}),
            7,
            "9000",
        ),
        (
            json!({"cniVersion":"1.0.0","name":"m","master":"eth1","mac":"zz:11"}),
            7,
            "zz:11",
        ),
        (
            json!({"cniVersion":"1.0.0","name":"m","master":"eth1","mtu":-1}),
            7,
            "-1",
        ),
        (
            json!({"cniVersion":"1.0.0","name":"m","master":"eth1","runtimeConfig":{"mac":"01:00:5e:00:00:01"}}),
            7,
            "01:00:5e",
        ),
    ];
    for (conf, code, needle) in cases {
        let p = world();
        let e = MacvlanPlugin::new(p.clone())
            .add(&req(Command::Add, &conf))
            .unwrap_err();
        assert_eq!(e.code, code, "{conf}: {e}");
        assert!(e.msg.contains(needle), "{conf}: {e}");
        assert!(pod_links(&p).is_empty(), "{conf}: left a link");
    }
}

#[test]
fn mac_precedence_config_then_cni_args_then_runtime_config() {
    let p = world();
    let mut conf = json!({"cniVersion":"1.0.0","name":"m","type":"macvlan","master":"eth1","mac":"02:00:00:00:00:01"});
    let mut r = req(Command::Add, &conf);
    r.args.set("MAC", "02:00:00:00:00:02");
    let res = MacvlanPlugin::new(p.clone()).add(&r).unwrap();
    assert_eq!(res.interfaces[0].mac, "02:00:00:00:00:02");

    let p = world();
    conf["runtimeConfig"] = json!({"mac":"02:00:00:00:00:03"});
    let mut r = req(Command::Add, &conf);
    r.args.set("MAC", "02:00:00:00:00:02");
    let res = MacvlanPlugin::new(p).add(&r).unwrap();
    assert_eq!(res.interfaces[0].mac, "02:00:00:00:00:03");
}

#[test]
fn unknown_cni_args_without_ignore_unknown_fail() {
    let p = world();
    let mut r = req(Command::Add, &static_macvlan());
    r.args = CniArgs::parse("K8S_POD_NAME=a").unwrap();
    let e = MacvlanPlugin::new(p.clone()).add(&r).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidEnv as u32);
    assert!(pod_links(&p).is_empty());
}

#[test]
fn existing_interface_is_code_104() {
    let p = world();
    p.world
        .lock()
        .unwrap()
        .add_link(Some(Path::new(POD)), "net1");
    let e = MacvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &static_macvlan()))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InterfaceExists as u32);
}

#[test]
fn failure_after_the_link_exists_removes_link_and_lease() {
    let dir = tempfile::tempdir().unwrap();
    let p = world();
    p.world.lock().unwrap().fail_next(
        "add_address",
        NetlinkError::from_errno("add_address", "net1", 22),
    );
    let conf = json!({"cniVersion":"1.0.0","name":"hl","type":"macvlan","master":"eth1",
        "ipam":{"type":"host-local","subnet":"10.9.0.0/24","dataDir":dir.path()}});
    let e = MacvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Netlink as u32, "{e}");
    assert!(pod_links(&p).is_empty(), "link left behind");
    let leases: Vec<_> = std::fs::read_dir(dir.path().join("hl"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert!(leases.is_empty(), "lease left behind: {leases:?}");
}

#[test]
fn host_name_clash_falls_back_to_temp_name_in_the_pod() {
    let p = world();
    p.world.lock().unwrap().fail_next(
        "create_link",
        NetlinkError::from_errno("create_link", "net1", 17),
    );
    MacvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &static_macvlan()))
        .unwrap();
    assert_eq!(pod_links(&p), vec!["net1"]);
    let w = p.world.lock().unwrap();
    assert!(
        w.calls()
            .iter()
            .any(|c| matches!(c, Call::MoveLink { new_name, .. } if new_name == "net1"))
    );
    assert_eq!(
        w.links(None)
            .iter()
            .filter(|l| l.name.starts_with("plx"))
            .count(),
        0
    );
}

#[test]
fn del_is_idempotent_and_tolerates_missing_netns() {
    let p = world();
    let plugin = MacvlanPlugin::new(p.clone());
    plugin.add(&req(Command::Add, &static_macvlan())).unwrap();
    plugin.del(&req(Command::Del, &static_macvlan())).unwrap();
    assert!(pod_links(&p).is_empty());
    plugin.del(&req(Command::Del, &static_macvlan())).unwrap();
    let mut r = req(Command::Del, &static_macvlan());
    r.netns = None;
    plugin.del(&r).unwrap();
    r.netns = Some(PathBuf::from("/run/netns/gone"));
    plugin.del(&r).unwrap();
    // the master may be gone too: DEL does not validate it
    let conf = json!({"cniVersion":"1.0.0","name":"m","type":"macvlan","master":"vanished"});
    plugin.del(&req(Command::Del, &conf)).unwrap();
}

fn with_prev(conf: &Value, prev: &CniResult) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.to_json(crate::cni::CniVersion::V1_0_0);
    c
}

#[test]
fn check_passes_then_reports_the_first_mismatch() {
    let p = world();
    let plugin = MacvlanPlugin::new(p.clone());
    let conf = static_macvlan();
    let res = plugin.add(&req(Command::Add, &conf)).unwrap();
    plugin
        .check(&req(Command::Check, &with_prev(&conf, &res)))
        .unwrap();

    let mut vepa = with_prev(&conf, &res);
    vepa["mode"] = json!("vepa");
    let e = plugin.check(&req(Command::Check, &vepa)).unwrap_err();
    assert!(e.msg.contains("mode is bridge, config says vepa"), "{e}");

    let mut other = res.clone();
    other.ips[0].address = "10.1.1.99/24".parse().unwrap();
    let e = plugin
        .check(&req(Command::Check, &with_prev(&conf, &other)))
        .unwrap_err();
    assert!(e.msg.contains("10.1.1.99/24"), "{e}");

    let mut mac = res.clone();
    mac.interfaces[0].mac = "02:aa:aa:aa:aa:aa".into();
    let e = plugin
        .check(&req(Command::Check, &with_prev(&conf, &mac)))
        .unwrap_err();
    assert!(e.msg.contains("MAC"), "{e}");

    let e = plugin.check(&req(Command::Check, &conf)).unwrap_err();
    assert!(e.msg.contains("prevResult"), "{e}");
}

#[test]
fn status_reports_a_missing_master_as_code_50() {
    let p = world();
    let plugin = MacvlanPlugin::new(p);
    let mut conf = static_macvlan();
    conf["cniVersion"] = json!("1.1.0");
    plugin.status(&req(Command::Status, &conf)).unwrap();
    conf["master"] = json!("eth9");
    let e = plugin.status(&req(Command::Status, &conf)).unwrap_err();
    assert_eq!(e.code, ErrorCode::PluginNotAvailable as u32);
}

#[test]
fn ipvlan_takes_master_and_addresses_from_a_chained_prev_result() {
    let p = world();
    let prev: CniResult = CniResult::from_json(&json!({"cniVersion":"1.0.0",
        "interfaces":[{"name":"eth1"}],
        "ips":[{"address":"10.3.0.4/24","gateway":"10.3.0.1","interface":0}]}))
    .unwrap();
    let conf = with_prev(
        &json!({"cniVersion":"1.0.0","name":"iv","type":"ipvlan","mode":"l3"}),
        &prev,
    );
    let r = IpvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.3.0.4/24");
    let w = p.world.lock().unwrap();
    let link = w.link(Some(Path::new(POD)), "net1").unwrap();
    assert_eq!(link.kind.as_deref(), Some("ipvlan"));
}

#[test]
fn ipvlan_needs_ipam_without_prev_ips() {
    let p = world();
    let conf = json!({"cniVersion":"1.0.0","name":"iv","type":"ipvlan","master":"eth1"});
    let e = IpvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap_err();
    assert_eq!(e.code, 7);
    assert!(e.msg.starts_with("ipam"), "{e}");
    let conf =
        json!({"cniVersion":"1.0.0","name":"iv","type":"ipvlan","master":"eth1","mode":"l4"});
    let e = IpvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap_err();
    assert!(e.msg.contains("l4"), "{e}");
    assert!(pod_links(&p).is_empty());
}

#[test]
fn l2_only_macvlan_sets_no_address_sysctls() {
    let p = world();
    let conf = json!({"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"eth1"});
    MacvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap();
    let w = p.world.lock().unwrap();
    assert_eq!(
        w.sysctl(Some(Path::new(POD)), "net/ipv4/conf/net1/arp_notify"),
        None
    );
}

#[test]
fn a_second_network_with_a_default_route_is_added_beside_the_first() {
    let p = world();
    p.world.lock().unwrap().add_link(None, "eth2");
    let plugin = MacvlanPlugin::new(p.clone());
    plugin.add(&req(Command::Add, &static_macvlan())).unwrap();
    let mut second = static_macvlan();
    second["master"] = json!("eth2");
    second["ipam"]["addresses"] = json!([{"address":"10.2.2.5/24","gateway":"10.2.2.1"}]);
    let mut r = req(Command::Add, &second);
    r.ifname = "net2".into();
    plugin.add(&r).unwrap();
    let w = p.world.lock().unwrap();
    let defaults = w
        .routes_in(Some(Path::new(POD)))
        .into_iter()
        .filter(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4())
        .count();
    assert_eq!(defaults, 2);
}

#[test]
fn link_in_container_uses_a_master_inside_the_pod() {
    let p = world();
    p.world
        .lock()
        .unwrap()
        .add_link(Some(Path::new(POD)), "vf0");
    let conf = json!({"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"vf0","linkInContainer":true});
    MacvlanPlugin::new(p.clone())
        .add(&req(Command::Add, &conf))
        .unwrap();
    let w = p.world.lock().unwrap();
    let create = w
        .calls()
        .into_iter()
        .find(|c| matches!(c, Call::CreateLink { .. }))
        .unwrap();
    let Call::CreateLink { ns, spec } = create else {
        unreachable!()
    };
    assert_eq!(
        ns.as_deref(),
        Some(Path::new(POD)),
        "created from inside the pod netns"
    );
    assert_eq!(spec.target, None);
    assert!(w.link(Some(Path::new(POD)), "net1").is_some());
    drop(w);
    // the same master name does not exist on the host: without linkInContainer it fails
    let p = world();
    p.world
        .lock()
        .unwrap()
        .add_link(Some(Path::new(POD)), "vf0");
    let conf = json!({"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"vf0"});
    let e = MacvlanPlugin::new(p)
        .add(&req(Command::Add, &conf))
        .unwrap_err();
    assert!(e.msg.contains("vf0"), "{e}");
}
