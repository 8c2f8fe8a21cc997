use plexus_delegates::sriov::selectors::DpConfig;
use plexus_delegates::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use serde_json::json;

use super::*;

/// ens1f0 (NUMA 0): 3 iavf VFs; ens2f0 (NUMA -1): 2 iavf VFs + 1 vfio-pci VF.
fn host() -> FakeSysfs {
    FakeSysfs::new()
        .add_pf("ens1f0", "0000:03:00.0", PfSpec::default())
        .add_vfs(3, VfSpec::kernel("iavf"))
        .add_pf("ens2f0", "0000:81:00.0", PfSpec::default().numa(-1))
        .add_vfs(2, VfSpec::kernel("iavf"))
        .add_vfs(1, VfSpec::userspace("vfio-pci"))
}

fn config() -> DpConfig {
    DpConfig::from_json(json!({"resourceList": [
        {"resourceName": "net", "selectors": {"drivers": ["iavf"]}},
        {"resourceName": "dpdk", "selectors": {"drivers": ["vfio-pci"], "needVhostNet": true}},
    ]}))
    .unwrap()
}

fn ids(inv: &Inventory, pool: &str) -> Vec<String> {
    inv.pool(pool).iter().map(|d| d.pci.to_string()).collect()
}

#[test]
fn pools_health_and_numa() {
    let fake = host();
    let inv = discover(&fake.sysfs(), &config(), None).unwrap();
    assert!(inv.broken.is_empty(), "{:?}", inv.broken);
    let net = inv.pool("intel.com/net");
    assert_eq!(net.len(), 5);
    assert!(net.iter().all(PoolDevice::is_healthy));
    assert_eq!(net[0].numa_node, Some(0));
    assert_eq!(net[0].to_api(true).topology.unwrap().nodes[0].id, 0);
    assert_eq!(net[0].to_api(false).topology, None);
    // NUMA -1: no topology at all
    assert_eq!(net[4].numa_node, None);
    assert_eq!(net[4].to_api(true).topology, None);
    let dpdk = inv.pool("intel.com/dpdk");
    assert_eq!(dpdk.len(), 1);
    assert!(dpdk[0].need_vhost_net);
    assert!(!net[0].need_vhost_net);
    assert_eq!(dpdk[0].driver.as_deref(), Some("vfio-pci"));
}

#[test]
fn pf_link_down_makes_its_vfs_unhealthy() {
    let fake = host();
    fake.set_link("ens1f0", false);
    let inv = discover(&fake.sysfs(), &config(), None).unwrap();
    let net = inv.pool("intel.com/net");
    let down: Vec<_> = net.iter().filter(|d| !d.is_healthy()).collect();
    assert_eq!(down.len(), 3);
    assert!(down.iter().all(|d| d.unhealthy
        == Some(Unhealthy::PfLinkDown {
            pf: "ens1f0".into()
        })));
    assert_eq!(net[0].to_api(true).health, "Unhealthy");
    assert_eq!(net[4].to_api(true).health, "Healthy");
}

#[test]
fn an_unbound_vf_stays_in_its_pool_as_unhealthy_and_a_rebind_moves_it() {
    let fake = host();
    let sysfs = fake.sysfs();
    let first = discover(&sysfs, &config(), None).unwrap();
    let vf = fake.vf_pci("0000:03:00.0", 1).to_string();
    fake.rebind_vf(&vf, None);
    let second = discover(&sysfs, &config(), Some(&first)).unwrap();
    assert_eq!(ids(&second, "intel.com/net"), ids(&first, "intel.com/net"));
    let d = second.device("intel.com/net", &vf).unwrap();
    assert_eq!(d.unhealthy, Some(Unhealthy::NoDriver));
    // without memory of the previous pass, an unbound VF matches no `drivers` selector
    let fresh = discover(&sysfs, &config(), None).unwrap();
    assert!(fresh.device("intel.com/net", &vf).is_none());

    fake.rebind_vf(&vf, Some("vfio-pci"));
    let third = discover(&sysfs, &config(), Some(&second)).unwrap();
    assert!(third.device("intel.com/net", &vf).is_none());
    assert!(third.device("intel.com/dpdk", &vf).unwrap().is_healthy());
    let c = changes(&second, &third, "intel.com/dpdk");
    assert_eq!(c.added, vec![vf.parse().unwrap()]);
    assert!(!changes(&second, &third, "intel.com/net").removed.is_empty());
}

#[test]
fn a_vf_moved_into_a_pod_stays_listed_and_healthy() {
    let fake = host();
    let vf = fake.vf_pci("0000:03:00.0", 0).to_string();
    fake.set_vf_netdev(&vf, None);
    // also on a first pass, as after a restart of the daemon
    let inv = discover(&fake.sysfs(), &config(), None).unwrap();
    let d = inv.device("intel.com/net", &vf).unwrap();
    assert!(d.is_healthy());
    assert_eq!(inv.pool("intel.com/net").len(), 5);
}

#[test]
fn numvfs_changes_add_and_remove_devices() {
    let fake = host();
    let sysfs = fake.sysfs();
    let before = discover(&sysfs, &config(), None).unwrap();
    fake.set_num_vfs("0000:03:00.0", 5, VfSpec::kernel("iavf"));
    let grown = discover(&sysfs, &config(), Some(&before)).unwrap();
    assert_eq!(grown.pool("intel.com/net").len(), 7);
    assert_eq!(changes(&before, &grown, "intel.com/net").added.len(), 2);
    fake.set_num_vfs("0000:03:00.0", 0, VfSpec::kernel("iavf"));
    let shrunk = discover(&sysfs, &config(), Some(&grown)).unwrap();
    assert_eq!(shrunk.pool("intel.com/net").len(), 2);
    assert_eq!(changes(&grown, &shrunk, "intel.com/net").removed.len(), 5);
}

#[test]
fn a_broken_vf_is_reported_and_left_out_on_a_first_pass() {
    let fake = host();
    let vf = fake.vf_pci("0000:03:00.0", 2).to_string();
    fake.write_attr(&format!("bus/pci/devices/{vf}/vendor"), "garbage\n");
    let inv = discover(&fake.sysfs(), &config(), None).unwrap();
    assert_eq!(inv.pool("intel.com/net").len(), 4);
    assert_eq!(inv.broken.len(), 1);
    assert!(inv.broken[0].contains(&vf), "{:?}", inv.broken);
}

#[test]
fn an_unreadable_vf_or_pf_stays_listed_as_unhealthy_until_it_reads_again() {
    let fake = host();
    let sysfs = fake.sysfs();
    let first = discover(&sysfs, &config(), None).unwrap();
    let vf = fake.vf_pci("0000:03:00.0", 2).to_string();
    let vendor = format!("bus/pci/devices/{vf}/vendor");
    fake.write_attr(&vendor, "garbage\n");
    let second = discover(&sysfs, &config(), Some(&first)).unwrap();
    assert_eq!(second.pool("intel.com/net").len(), 5);
    assert_eq!(
        second.device("intel.com/net", &vf).unwrap().unhealthy,
        Some(Unhealthy::Unreadable)
    );
    assert_eq!(second.broken.len(), 1);
    // and on the next pass too
    let third = discover(&sysfs, &config(), Some(&second)).unwrap();
    assert_eq!(third, second);
    fake.write_attr(&vendor, "0x8086\n");
    let fourth = discover(&sysfs, &config(), Some(&third)).unwrap();
    assert_eq!(fourth, first);

    // a PF caught mid-write: all its VFs stay, and it stays fingerprinted
    let operstate = "class/net/ens1f0/operstate";
    fake.write_attr(operstate, "");
    let broken_pf = discover(&sysfs, &config(), Some(&first)).unwrap();
    assert_eq!(broken_pf.pfs, first.pfs);
    let unreadable: Vec<_> = broken_pf
        .pool("intel.com/net")
        .iter()
        .filter(|d| d.unhealthy == Some(Unhealthy::Unreadable))
        .collect();
    assert_eq!(unreadable.len(), 3);
    fake.write_attr(operstate, "up\n");
    assert_eq!(
        discover(&sysfs, &config(), Some(&broken_pf)).unwrap(),
        first
    );
    // a VF that is really gone is dropped
    fake.set_num_vfs("0000:03:00.0", 2, VfSpec::kernel("iavf"));
    let gone = discover(&sysfs, &config(), Some(&first)).unwrap();
    assert!(gone.device("intel.com/net", &vf).is_none());
}

#[test]
fn a_missing_sysfs_root_is_an_error_naming_it() {
    let e = discover(&Sysfs::new("/nonexistent/sys"), &config(), None).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/sys"), "{e}");
}
