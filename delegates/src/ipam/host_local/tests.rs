//! host-local tests: configuration, allocation order, the on-disk format, DEL/CHECK/GC,
//! STATUS, concurrency between processes and side by side with the reference binary.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{Value, json};

use super::config::HostLocalConfig;
use crate::cni::args::CniArgs;
use crate::cni::{CniError, Command, ErrorCode, NetConf, Request};
use crate::ipam;

const NET: &str = "testnet";

fn network(dir: &Path, mut ipam: Value) -> Value {
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(dir.join("data").to_str().unwrap());
    json!({"cniVersion": "1.0.0", "name": NET, "type": "macvlan", "ipam": ipam})
}

fn request(command: Command, id: &str, ifname: &str, args: &str, config: &Value) -> Request {
    Request {
        command,
        container_id: id.into(),
        netns: Some("/proc/self/ns/net".into()),
        ifname: ifname.into(),
        args: CniArgs::parse(args).unwrap(),
        path: vec![],
        config: serde_json::to_vec(config).unwrap(),
    }
}

fn parse(config: &Value) -> NetConf {
    NetConf::parse(&serde_json::to_vec(config).unwrap()).unwrap()
}

fn add_args(config: &Value, id: &str, ifname: &str, args: &str) -> Result<Vec<IpAddr>, CniError> {
    let r = ipam::add(
        &request(Command::Add, id, ifname, args, config),
        &parse(config),
    )?;
    Ok(r.ips.iter().map(|i| i.address.addr()).collect())
}

fn add(config: &Value, id: &str) -> Result<Vec<IpAddr>, CniError> {
    add_args(config, id, "eth0", "IgnoreUnknown=1")
}

fn del(config: &Value, id: &str, ifname: &str) -> Result<(), CniError> {
    ipam::del(
        &request(Command::Del, id, ifname, "", config),
        &parse(config),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

fn net_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("data").join(NET)
}

/// Lease files (named by an address) in the network directory, sorted.
fn leases(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(net_dir(dir))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn load(config: &Value) -> Result<HostLocalConfig, CniError> {
    Ok(HostLocalConfig::load(&parse(config), &CniArgs::default())?)
}

fn load_err(ipam: Value) -> String {
    let d = tempfile::tempdir().unwrap();
    load(&network(d.path(), ipam)).unwrap_err().msg
}

// ---------------------------------------------------------------- configuration

#[test]
fn parses_every_key() {
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({
            "ranges": [
                [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20", "gateway": "10.1.0.254"},
                 {"subnet": "10.2.0.0/24"}],
                [{"subnet": "fd00::/64", "gateway": "fd00::fe"}]
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.1"}],
            "resolvConf": "/nonexistent/resolv.conf"
        }),
    );
    let cfg = load(&c).unwrap();
    assert_eq!(cfg.name, NET);
    assert_eq!(cfg.data_dir, d.path().join("data"));
    assert_eq!(
        cfg.resolv_conf.as_deref(),
        Some(Path::new("/nonexistent/resolv.conf"))
    );
    assert_eq!(cfg.routes.len(), 2);
    assert_eq!(cfg.routes[1].gw, Some(ip("10.1.0.1")));
    assert_eq!(cfg.ranges.len(), 2);
    let r = &cfg.ranges[0].0[0];
    assert_eq!(
        (r.start, r.end, r.gateway),
        (ip("10.1.0.10"), ip("10.1.0.20"), ip("10.1.0.254"))
    );
    let r = &cfg.ranges[0].0[1];
    assert_eq!(
        (r.start, r.end, r.gateway),
        (ip("10.2.0.1"), ip("10.2.0.254"), ip("10.2.0.1"))
    );
    let r = &cfg.ranges[1].0[0];
    assert_eq!(
        (r.start, r.end, r.gateway),
        (
            ip("fd00::1"),
            ip("fd00::ffff:ffff:ffff:ffff"),
            ip("fd00::fe")
        )
    );
    assert_eq!(
        cfg.ranges[0].to_string(),
        "10.1.0.10-10.1.0.20,10.2.0.1-10.2.0.254"
    );
}

#[test]
fn default_data_dir_and_legacy_subnet_form_goes_first() {
    let c = json!({"cniVersion": "0.4.0", "name": "n", "ipam": {"type": "host-local",
        "subnet": "10.5.0.0/16", "rangeStart": "10.5.1.0", "rangeEnd": "10.5.1.255", "gateway": "10.5.0.1",
        "ranges": [[{"subnet": "fd00::/120"}]]}});
    let cfg = load(&c).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/var/lib/cni/networks"));
    assert_eq!(cfg.ranges.len(), 2);
    assert_eq!(cfg.ranges[0].0[0].start, ip("10.5.1.0"));
    assert_eq!(cfg.ranges[0].0[0].end, ip("10.5.1.255"));
    assert_eq!(cfg.ranges[1].0[0].end, ip("fd00::ff"));
    assert!(cfg.routes.is_empty() && cfg.resolv_conf.is_none());
}

#[test]
fn rejects_invalid_ranges_with_reference_meaning() {
    let cases = [
        (
            json!({"subnet": "10.9.1.5/24"}),
            "Network has host bits set. For a subnet mask of length 24 the network address is 10.9.1.0",
        ),
        (
            json!({"subnet": "10.9.1.0/31"}),
            "Network 10.9.1.0/31 too small to allocate from",
        ),
        (
            json!({"subnet": "fd00::/127"}),
            "too small to allocate from",
        ),
        (
            json!({"subnet": "banana"}),
            "subnet \"banana\" is not a CIDR",
        ),
        (
            json!({"subnet": "10.9.1.0/24", "rangeStart": "10.9.2.2"}),
            "invalid range set 0: RangeStart 10.9.2.2 not in network 10.9.1.0/24",
        ),
        (
            json!({"subnet": "10.9.1.0/24", "rangeEnd": "fd00::1"}),
            "RangeEnd fd00::1 not in network 10.9.1.0/24",
        ),
        (
            json!({"subnet": "10.9.1.0/24", "rangeStart": "10.9.1.9", "rangeEnd": "10.9.1.8"}),
            "before RangeStart",
        ),
        (
            json!({"subnet": "10.9.1.0/24", "gateway": "x"}),
            "gateway \"x\" is not an IP address",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.1.0/24"}, {"subnet": "fd00::/64"}]]}),
            "invalid range set 0: mixed address families",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.1.0/24"}, {"subnet": "10.9.1.0/25"}]]}),
            "subnets 10.9.1.1-10.9.1.254 and 10.9.1.1-10.9.1.126 overlap",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.1.0/24"}], [{"subnet": "10.9.1.0/25"}]]}),
            "range set 0 overlaps with 1",
        ),
        (
            json!({"ranges": [[{"subnet": "10.9.1.0/24"}], []]}),
            "invalid range set 1: empty range set",
        ),
        (
            json!({"ranges": [[{"rangeStart": "10.9.1.1"}]]}),
            "subnet is required",
        ),
        (json!({}), "no IP ranges specified"),
    ];
    for (ipam, want) in cases {
        let msg = load_err(ipam.clone());
        assert!(
            msg.contains(want),
            "{ipam}: {msg:?} should contain {want:?}"
        );
    }
}

#[test]
fn old_versions_allow_one_address_per_family_and_bad_names_are_rejected() {
    let two = json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]});
    let e = load(&json!({"cniVersion": "0.2.0", "name": "n", "ipam": two})).unwrap_err();
    assert!(
        e.msg
            .contains("CNI version 0.2.0 does not support more than 1 address per family"),
        "{e}"
    );
    assert!(load(&json!({"cniVersion": "0.3.1", "name": "n", "ipam": two})).is_ok());
    for name in ["", "..", "a/b"] {
        let e = load(&json!({"cniVersion": "1.0.0", "name": name, "ipam": two})).unwrap_err();
        assert!(e.msg.contains("name"), "{e}");
        assert_eq!(e.code, 7);
    }
}

#[test]
fn missing_ipam_is_distinguishable() {
    let c = json!({"cniVersion": "1.0.0", "name": "n", "type": "macvlan"});
    let e = ipam::add(&request(Command::Add, "c", "eth0", "", &c), &parse(&c)).unwrap_err();
    assert!(ipam::is_missing(&e), "{e}");
    assert!(!ipam::is_configured(&parse(&c)));
    let d = tempfile::tempdir().unwrap();
    let e = add(&network(d.path(), json!({})), "c").unwrap_err();
    assert!(!ipam::is_missing(&e));
}

#[test]
fn requested_ips_come_from_cni_args_args_and_runtime_config() {
    let d = tempfile::tempdir().unwrap();
    let mut c = network(d.path(), json!({"subnet": "10.1.0.0/24"}));
    c["args"] = json!({"cni": {"ips": ["10.1.0.7", "10.1.0.5"]}});
    c["runtimeConfig"] = json!({"ips": ["10.1.0.8/24"]});
    let cfg = HostLocalConfig::load(
        &parse(&c),
        &CniArgs::parse("IP=10.1.0.5, 10.1.0.6/24").unwrap(),
    )
    .unwrap();
    assert_eq!(
        cfg.requested,
        ips(&["10.1.0.5", "10.1.0.6", "10.1.0.7", "10.1.0.8"])
    );
    let e = HostLocalConfig::load(&parse(&c), &CniArgs::parse("IP=nope").unwrap()).unwrap_err();
    let e = CniError::from(e);
    assert_eq!(e.code, 4);
    assert!(
        e.msg.contains("CNI_ARGS IP") && e.msg.contains("nope"),
        "{e}"
    );
    c["runtimeConfig"] = json!({"ips": ["10.1.0.300"]});
    let e = CniError::from(HostLocalConfig::load(&parse(&c), &CniArgs::default()).unwrap_err());
    assert!(
        e.msg.contains("runtimeConfig.ips") && e.msg.contains("10.1.0.300"),
        "{e}"
    );
}

#[test]
fn keys_match_case_insensitively() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("data");
    let c = json!({"cniVersion": "1.0.0", "name": NET, "ipam": {"Type": "host-local",
        "Ranges": [[{"Subnet": "10.1.0.0/24", "RangeStart": "10.1.0.40", "RangeEnd": "10.1.0.50", "Gateway": "10.1.0.254"}]],
        "DataDir": dir.to_str().unwrap(), "Routes": [{"dst": "0.0.0.0/0"}]},
        "RuntimeConfig": {"IPs": ["10.1.0.45"]}});
    let cfg = load(&c).unwrap();
    assert_eq!(cfg.ranges[0].0[0].start, ip("10.1.0.40"));
    assert_eq!(cfg.ranges[0].0[0].gateway, ip("10.1.0.254"));
    assert_eq!(cfg.data_dir, dir);
    assert_eq!(cfg.routes.len(), 1);
    assert_eq!(cfg.requested, ips(&["10.1.0.45"]));
}

#[test]
fn resolv_conf_is_parsed_like_the_reference() {
    let dns = super::dns::parse_resolv_conf(
        "# comment\n; other\nnameserver 10.0.0.53\nnameserver fd00::53 ignored\ndomain example.com\n\
         search a.example b.example\noptions ndots:5 edns0\nsortlist 10.0.0.0\nbogus\n",
    );
    assert_eq!(dns.nameservers, ["10.0.0.53", "fd00::53"]);
    assert_eq!(dns.domain, "example.com");
    assert_eq!(dns.search, ["a.example", "b.example"]);
    assert_eq!(dns.options, ["ndots:5", "edns0"]);
}

// ---------------------------------------------------------------- allocation order

#[test]
fn first_add_gets_dot_two_with_routes_and_dns() {
    let d = tempfile::tempdir().unwrap();
    let resolv = d.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 1.1.1.1\nsearch svc\n").unwrap();
    let c = network(
        d.path(),
        json!({"subnet": "10.1.0.0/24", "routes": [{"dst": "0.0.0.0/0"}], "resolvConf": resolv.to_str().unwrap()}),
    );
    let r = ipam::add(&request(Command::Add, "c1", "eth0", "", &c), &parse(&c)).unwrap();
    assert!(r.interfaces.is_empty());
    assert_eq!(r.ips.len(), 1);
    assert_eq!(r.ips[0].address.to_string(), "10.1.0.2/24");
    assert_eq!(r.ips[0].gateway, Some(ip("10.1.0.1")));
    assert_eq!(r.ips[0].interface, None);
    assert_eq!(r.routes.len(), 1);
    assert_eq!(r.dns.nameservers, ["1.1.1.1"]);
    assert_eq!(r.dns.search, ["svc"]);
    // the reference's exact bytes
    assert_eq!(
        fs::read(net_dir(d.path()).join("10.1.0.2")).unwrap(),
        b"c1\r\neth0"
    );
    assert_eq!(
        fs::read(net_dir(d.path()).join("last_reserved_ip.0")).unwrap(),
        b"10.1.0.2"
    );
    assert!(net_dir(d.path()).join("lock").exists());
    assert_eq!(add(&c, "c2").unwrap(), ips(&["10.1.0.3"]));
}

#[test]
fn missing_resolv_conf_is_an_io_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({"subnet": "10.1.0.0/24", "resolvConf": "/nonexistent/resolv"}),
    );
    let e = add(&c, "c1").unwrap_err();
    assert!(
        e.is(ErrorCode::Io)
            && e.msg.contains("resolvConf")
            && e.msg.contains("/nonexistent/resolv"),
        "{e}"
    );
    assert!(leases(d.path()).is_empty());
}

#[test]
fn continues_after_last_reserved_and_wraps_around() {
    let d = tempfile::tempdir().unwrap();
    let c = network(d.path(), json!({"subnet": "10.1.0.0/29"}));
    assert_eq!(add(&c, "a").unwrap(), ips(&["10.1.0.2"]));
    // a previous run (or the reference plugin) reserved .5 last: continue at .6
    fs::write(net_dir(d.path()).join("last_reserved_ip.0"), "10.1.0.5").unwrap();
    assert_eq!(add(&c, "b").unwrap(), ips(&["10.1.0.6"]));
    // .6 is the range end (.7 is broadcast): wrap to the start, skip gateway .1 and taken .2
    assert_eq!(add(&c, "c").unwrap(), ips(&["10.1.0.3"]));
    assert_eq!(add(&c, "d").unwrap(), ips(&["10.1.0.4"]));
    assert_eq!(add(&c, "e").unwrap(), ips(&["10.1.0.5"]));
    let e = add(&c, "f").unwrap_err();
    assert!(
        e.msg.contains(
            "no IP addresses available in range set: 10.1.0.1-10.1.0.6 (subnet 10.1.0.0/29)"
        ),
        "{e}"
    );
    // a released address is found again after wrapping
    del(&c, "c", "eth0").unwrap();
    assert_eq!(add(&c, "g").unwrap(), ips(&["10.1.0.3"]));
    // a last_reserved outside every range is ignored: start from the beginning
    del(&c, "d", "eth0").unwrap();
    fs::write(net_dir(d.path()).join("last_reserved_ip.0"), "192.168.0.1").unwrap();
    assert_eq!(add(&c, "h").unwrap(), ips(&["10.1.0.4"]));
}

#[test]
fn skips_a_gateway_inside_the_range_and_the_broadcast_address() {
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({"subnet": "10.1.0.0/29", "gateway": "10.1.0.3", "rangeStart": "10.1.0.1", "rangeEnd": "10.1.0.7"}),
    );
    let got: Vec<IpAddr> = (0..5)
        .flat_map(|i| add(&c, &format!("c{i}")).unwrap())
        .collect();
    assert_eq!(
        got,
        ips(&["10.1.0.1", "10.1.0.2", "10.1.0.4", "10.1.0.5", "10.1.0.6"])
    );
    assert!(
        add(&c, "c9").is_err(),
        "broadcast .7 must not be handed out"
    );
}

#[test]
fn slash_30_has_one_address_and_slash_31_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let c = network(d.path(), json!({"subnet": "10.0.0.0/30"}));
    assert_eq!(add(&c, "a").unwrap(), ips(&["10.0.0.2"]));
    let e = add(&c, "b").unwrap_err();
    assert!(e.is(ErrorCode::Ipam));
    assert!(e.msg.contains("failed to allocate for range 0: no IP addresses available in range set: 10.0.0.1-10.0.0.2 (subnet 10.0.0.0/30)"), "{e}");
    let c = network(d.path(), json!({"subnet": "10.0.0.0/31"}));
    assert!(add(&c, "c").unwrap_err().msg.contains("too small"));
}

#[test]
fn ipv6_range_has_no_broadcast() {
    let d = tempfile::tempdir().unwrap();
    let c = network(d.path(), json!({"ranges": [[{"subnet": "fd00::/126"}]]}));
    assert_eq!(add(&c, "a").unwrap(), ips(&["fd00::2"]));
    assert_eq!(add(&c, "b").unwrap(), ips(&["fd00::3"]));
    assert!(add(&c, "c").is_err());
    assert_eq!(leases(d.path()), ["fd00::2", "fd00::3"]);
}

#[test]
fn walks_across_the_ranges_of_one_set() {
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({"ranges": [[{"subnet": "10.1.0.0/30"}, {"subnet": "10.2.0.0/30"}]]}),
    );
    assert_eq!(add(&c, "a").unwrap(), ips(&["10.1.0.2"]));
    assert_eq!(add(&c, "b").unwrap(), ips(&["10.2.0.2"]));
    assert!(add(&c, "c").is_err());
    del(&c, "a", "eth0").unwrap();
    assert_eq!(add(&c, "d").unwrap(), ips(&["10.1.0.2"]));
}

#[test]
fn dual_stack_gets_one_address_per_set() {
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00:1::/64"}]]}),
    );
    let r = ipam::add(&request(Command::Add, "c1", "net1", "", &c), &parse(&c)).unwrap();
    let addrs: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(addrs, ["10.1.0.2/24", "fd00:1::2/64"]);
    assert_eq!(r.ips[1].gateway, Some(ip("fd00:1::1")));
    assert_eq!(
        fs::read_to_string(net_dir(d.path()).join("last_reserved_ip.1")).unwrap(),
        "fd00:1::2"
    );
    assert_eq!(
        fs::read(net_dir(d.path()).join("fd00:1::2")).unwrap(),
        b"c1\r\nnet1"
    );
    del(&c, "c1", "net1").unwrap();
    assert!(leases(d.path()).is_empty());
}

// ---------------------------------------------------------------- requested addresses

#[test]
fn requested_addresses_are_honoured_or_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut c = network(
        d.path(),
        json!({"subnet": "10.1.0.0/24", "rangeEnd": "10.1.0.100"}),
    );
    assert_eq!(
        add_args(&c, "a", "eth0", "IgnoreUnknown=1;IP=10.1.0.50").unwrap(),
        ips(&["10.1.0.50"])
    );
    c["runtimeConfig"] = json!({"ips": ["10.1.0.60/24"]});
    assert_eq!(add(&c, "b").unwrap(), ips(&["10.1.0.60"]));

    // taken
    c["runtimeConfig"] = json!({"ips": ["10.1.0.50"]});
    let e = add(&c, "c").unwrap_err();
    assert!(
        e.msg.contains(
            "requested IP address 10.1.0.50 is not available in range set 10.1.0.1-10.1.0.100"
        ),
        "{e}"
    );
    // outside every range set (here: after rangeEnd)
    c["runtimeConfig"] = json!({"ips": ["10.1.0.200"]});
    let e = add(&c, "c").unwrap_err();
    assert!(
        e.msg
            .contains("failed to allocate all requested IPs: 10.1.0.200"),
        "{e}"
    );
    // the gateway
    c["runtimeConfig"] = json!({"ips": ["10.1.0.1"]});
    assert!(
        add(&c, "c")
            .unwrap_err()
            .msg
            .contains("requested ip 10.1.0.1 is subnet's gateway")
    );
    // two in the same set: one is left over, nothing stays reserved
    c["runtimeConfig"] = json!({"ips": ["10.1.0.70", "10.1.0.71"]});
    assert!(
        add(&c, "c")
            .unwrap_err()
            .msg
            .contains("failed to allocate all requested IPs: 10.1.0.71")
    );
    assert_eq!(leases(d.path()), ["10.1.0.50", "10.1.0.60"]);
    // args.cni.ips with dual stack: each goes to its own set
    let mut c = network(
        d.path(),
        json!({"ranges": [[{"subnet": "10.3.0.0/24"}], [{"subnet": "fd03::/64"}]]}),
    );
    c["args"] = json!({"cni": {"ips": ["fd03::99", "10.3.0.99"]}});
    assert_eq!(add(&c, "e").unwrap(), ips(&["10.3.0.99", "fd03::99"]));
}

// ---------------------------------------------------------------- DEL, CHECK, GC, duplicates

#[test]
fn duplicate_add_is_refused_like_the_reference() {
    let d = tempfile::tempdir().unwrap();
    let c = network(d.path(), json!({"subnet": "10.1.0.0/24"}));
    add(&c, "c1").unwrap();
    let e = add(&c, "c1").unwrap_err();
    assert!(e.msg.contains("failed to allocate for range 0: 10.1.0.2 has been allocated to c1, duplicate allocation is not allowed"), "{e}");
    // another interface of the same container is another attachment
    assert_eq!(add_args(&c, "c1", "net1", "").unwrap(), ips(&["10.1.0.3"]));
    assert_eq!(leases(d.path()), ["10.1.0.2", "10.1.0.3"]);
}

#[test]
fn del_releases_only_its_own_leases_and_is_idempotent() {
    let d = tempfile::tempdir().unwrap();
    let c = network(d.path(), json!({"subnet": "10.1.0.0/24"}));
    add_args(&c, "c1", "eth0", "").unwrap();
    add_args(&c, "c1", "net1", "").unwrap();
    add_args(&c, "c2", "eth0", "").unwrap();
    del(&c, "c1", "eth0").unwrap();
    assert_eq!(leases(d.path()), ["10.1.0.3", "10.1.0.4"]);
    del(&c, "c1", "eth0").unwrap();
    del(&c, "nobody", "eth0").unwrap();
    assert_eq!(leases(d.path()), ["10.1.0.3", "10.1.0.4"]);
    assert!(net_dir(d.path()).join("last_reserved_ip.0").exists());
    // DEL for a network that never allocated creates nothing
    let other = tempfile::tempdir().unwrap();
    del(
        &network(other.path(), json!({"subnet": "10.1.0.0/24"})),
        "c1",
        "eth0",
    )
    .unwrap();
    assert!(!other.path().join("data").exists());
}

#[test]
fn legacy_leases_hold_by_container_id() {
    let d = tempfile::tempdir().unwrap();
    let c = network(d.path(), json!({"subnet": "10.1.0.0/24"}));
    fs::create_dir_all(net_dir(d.path())).unwrap();
    fs::write(net_dir(d.path()).join("10.1.0.2"), "old\n").unwrap();
    fs::write(net_dir(d.path()).join("10.1.0.9"), "lf\neth0").unwrap();
    // the legacy lease is taken and counts as this container's allocation
    let e = add(&c, "old").unwrap_err();
    assert!(e.msg.contains("10.1.0.2 has been allocated to old"), "{e}");
    assert_eq!(add(&c, "new").unwrap(), ips(&["10.1.0.3"]));
    let check = |id: &str, ifname: &str| {
        ipam::check(&request(Command::Check, id, ifname, "", &c), &parse(&c))
    };
    check("old", "eth0").unwrap();
    check("lf", "eth0").unwrap();
    del(&c, "old", "eth0").unwrap();
    del(&c, "lf", "eth0").unwrap();
    assert_eq!(leases(d.path()), ["10.1.0.3"]);
}

#[test]
fn check_needs_the_lease_of_this_attachment() {
    let d = tempfile::tempdir().unwrap();
    let c = network(d.path(), json!({"subnet": "10.1.0.0/24"}));
    let check = |id: &str, ifname: &str| {
        ipam::check(&request(Command::Check, id, ifname, "", &c), &parse(&c))
    };
    let e = check("c1", "eth0").unwrap_err();
    assert!(
        e.msg
            .contains("Failed to find address added by container c1"),
        "{e}"
    );
    add(&c, "c1").unwrap();
    check("c1", "eth0").unwrap();
    assert!(check("c1", "net1").is_err());
}

#[test]
fn gc_releases_leases_of_invalid_attachments_only() {
    let d = tempfile::tempdir().unwrap();
    let mut c = network(d.path(), json!({"subnet": "10.1.0.0/24"}));
    c["cniVersion"] = json!("1.1.0");
    add_args(&c, "keep", "eth0", "").unwrap();
    add_args(&c, "keep", "net1", "").unwrap();
    add_args(&c, "gone", "eth0", "").unwrap();
    fs::write(net_dir(d.path()).join("10.1.0.50"), "keep").unwrap();
    fs::write(net_dir(d.path()).join("10.1.0.51"), "legacy-gone").unwrap();
    c["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    ipam::gc(&request(Command::Gc, "", "", "", &c), &parse(&c)).unwrap();
    assert_eq!(leases(d.path()), ["10.1.0.2", "10.1.0.50"]);
    assert!(net_dir(d.path()).join("lock").exists());
    assert!(net_dir(d.path()).join("last_reserved_ip.0").exists());
    // without the list GC refuses rather than releasing everything
    c.as_object_mut()
        .unwrap()
        .remove("cni.dev/valid-attachments");
    let e = ipam::gc(&request(Command::Gc, "", "", "", &c), &parse(&c)).unwrap_err();
    assert!(e.msg.contains("valid-attachments"), "{e}");
    c["cni.dev/valid-attachments"] = json!([]);
    ipam::gc(&request(Command::Gc, "", "", "", &c), &parse(&c)).unwrap();
    assert!(leases(d.path()).is_empty());
}

#[test]
fn partial_failure_leaves_no_lease_behind() {
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/30"}]]}),
    );
    assert_eq!(add(&c, "a").unwrap(), ips(&["10.1.0.2", "10.2.0.2"]));
    let e = add(&c, "b").unwrap_err();
    assert!(e.msg.contains("failed to allocate for range 1: no IP addresses available in range set: 10.2.0.1-10.2.0.2 (subnet 10.2.0.0/30)"), "{e}");
    assert_eq!(leases(d.path()), ["10.1.0.2", "10.2.0.2"]);
}

// ---------------------------------------------------------------- STATUS

fn status(c: &Value) -> Result<(), CniError> {
    ipam::status(&request(Command::Status, "", "", "", c), &parse(c))
}

#[test]
fn status_reports_exhaustion_and_unusable_data_dir() {
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/30"}]]}),
    );
    status(&c).unwrap();
    add(&c, "a").unwrap();
    let e = status(&c).unwrap_err();
    assert_eq!(e.code, 51, "{e}");
    assert!(e.msg.contains("10.2.0.0/30"), "{e}");
    del(&c, "a", "eth0").unwrap();
    status(&c).unwrap();

    // dataDir is a file: code 50
    let f = d.path().join("file");
    fs::write(&f, "x").unwrap();
    let mut c = c.clone();
    c["ipam"]["dataDir"] = json!(f.to_str().unwrap());
    assert_eq!(status(&c).unwrap_err().code, 50);
    // invalid config: code 7
    c["ipam"]["ranges"] = json!([[{"subnet": "10.0.0.0/31"}]]);
    assert_eq!(status(&c).unwrap_err().code, 7);
}

// ---------------------------------------------------------------- concurrency

const HELPER_DIR: &str = "PLEXUS_IPAM_TEST_HELPER_DIR";
const HELPER_TAG: &str = "PLEXUS_IPAM_TEST_HELPER_TAG";
const PER_PROCESS: usize = 12;

fn concurrency_network(dir: &Path) -> Value {
    network(
        dir,
        json!({"ranges": [[{"subnet": "10.7.0.0/24"}], [{"subnet": "fd07::/64"}]]}),
    )
}

/// Not a test of its own: the worker that `processes_allocate_distinct_addresses` re-executes
/// in several processes (hence ignored in normal runs).
#[test]
#[ignore = "worker process of processes_allocate_distinct_addresses"]
fn concurrency_helper_process() {
    let (Ok(dir), Ok(tag)) = (std::env::var(HELPER_DIR), std::env::var(HELPER_TAG)) else {
        return;
    };
    let dir = Path::new(&dir);
    let c = concurrency_network(dir);
    let mut out = String::new();
    for i in 0..PER_PROCESS {
        for a in add(&c, &format!("{tag}-{i}")).unwrap() {
            out.push_str(&format!("{a}\n"));
        }
    }
    fs::write(dir.join(format!("out-{tag}")), out).unwrap();
}

#[test]
fn processes_allocate_distinct_addresses() {
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|p| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "--ignored",
                    "ipam::host_local::tests::concurrency_helper_process",
                    "--test-threads=1",
                ])
                .env(HELPER_DIR, d.path())
                .env(HELPER_TAG, format!("p{p}"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let mut all = Vec::new();
    for p in 0..6 {
        let text = fs::read_to_string(d.path().join(format!("out-p{p}"))).unwrap();
        all.extend(text.lines().map(ip));
    }
    assert_eq!(all.len(), 6 * PER_PROCESS * 2);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "an address was handed out twice");
    assert_eq!(leases(d.path()).len(), all.len());
    // one process handed out .2 .. .73: nothing skipped, nothing doubled
    let v4: Vec<IpAddr> = unique.iter().copied().filter(IpAddr::is_ipv4).collect();
    assert_eq!(v4.first(), Some(&ip("10.7.0.2")));
    assert_eq!(v4.last(), Some(&ip("10.7.0.73")));
}

// ---------------------------------------------------------------- side by side with the reference

const REFERENCE: &str = "/usr/lib/cni/host-local";

fn reference(command: &str, id: &str, config: &Value) -> Result<Value, String> {
    use std::io::Write;
    let mut child = std::process::Command::new(REFERENCE)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/proc/self/ns/net")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(config).unwrap())
        .unwrap();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    if out.stdout.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
fn side_by_side_with_the_reference_plugin() {
    if !Path::new(REFERENCE).exists() {
        eprintln!("skipping: {REFERENCE} is not installed");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let c = network(
        d.path(),
        json!({"ranges": [[{"subnet": "10.8.0.0/28"}], [{"subnet": "fd08::/124"}]]}),
    );
    let mut handed_out = Vec::new();
    for i in 0..5 {
        handed_out.extend(add(&c, &format!("ours{i}")).unwrap());
        let r = reference("ADD", &format!("ref{i}"), &c).unwrap();
        for a in r["ips"].as_array().unwrap() {
            let cidr: ipnet::IpNet = a["address"].as_str().unwrap().parse().unwrap();
            handed_out.push(cidr.addr());
        }
    }
    // both follow last_reserved_ip: strictly sequential, alternating, no duplicates
    let v4: Vec<IpAddr> = handed_out.iter().copied().filter(IpAddr::is_ipv4).collect();
    let want: Vec<IpAddr> = (2..12).map(|n| ip(&format!("10.8.0.{n}"))).collect();
    assert_eq!(v4, want);
    let mut unique = handed_out.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20);
    // the reference refuses a duplicate of our lease, and we refuse a duplicate of its lease
    let e = reference("ADD", "ours0", &c).unwrap_err();
    assert!(e.contains("duplicate allocation is not allowed"), "{e}");
    assert!(
        add(&c, "ref0")
            .unwrap_err()
            .msg
            .contains("duplicate allocation")
    );
    // each releases the other's leases
    for i in 0..5 {
        reference("DEL", &format!("ours{i}"), &c).unwrap();
        del(&c, &format!("ref{i}"), "eth0").unwrap();
    }
    assert!(leases(d.path()).is_empty(), "{:?}", leases(d.path()));
    // and picks up where the other left off
    assert_eq!(add(&c, "next").unwrap(), ips(&["10.8.0.12", "fd08::c"]));
    let r = reference("ADD", "next-ref", &c).unwrap();
    assert_eq!(r["ips"][0]["address"], "10.8.0.13/28");
}

/// A lease appears with its owner or not at all: what a writer killed mid-way leaves is a temp
/// file, never an empty lease (which no DEL could match to its owner), and the next DEL of the
/// network removes it.
#[test]
fn a_lease_is_never_seen_without_its_owner_and_a_killed_writers_temp_goes_with_the_next_del() {
    let d = tempfile::tempdir().unwrap();
    let config = network(
        d.path(),
        json!({"type": "host-local", "subnet": "10.9.0.0/29"}),
    );
    let first = add(&config, "ctr1").unwrap();
    // What a writer killed before linking its temp file leaves beside the leases.
    fs::write(net_dir(d.path()).join(".lease-10.9.0.5"), "ctr9\r\neth0").unwrap();
    let second = add(&config, "ctr2").unwrap();
    assert_ne!(first, second);
    for lease in leases(d.path()) {
        let owner = fs::read_to_string(net_dir(d.path()).join(&lease)).unwrap();
        assert!(owner.starts_with("ctr"), "{lease}: {owner:?}");
    }
    // The temp file is not counted as a lease.
    assert_eq!(leases(d.path()).len(), 2);
    del(&config, "ctr1", "eth0").unwrap();
    assert!(
        !net_dir(d.path()).join(".lease-10.9.0.5").exists(),
        "the stale temp file is left"
    );
    assert_eq!(leases(d.path()).len(), 1);
}
