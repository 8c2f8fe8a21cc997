use serde_json::json;

use super::*;
use crate::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};

/// ens1f0: 4 iavf + 2 vfio-pci VFs (8086:1889, NUMA 0); ens2f0: 4 mlx5 VFs (15b3:101e), VF 3
/// with an RDMA device.
fn host() -> FakeSysfs {
    let fake = FakeSysfs::new()
        .add_pf("ens1f0", "0000:03:00.0", PfSpec::default())
        .add_vfs(4, VfSpec::kernel("iavf"))
        .add_vfs(2, VfSpec::userspace("vfio-pci"))
        .add_pf(
            "ens2f0",
            "0000:81:00.0",
            PfSpec::new("mlx5_core", "0x15b3", "0x101d").vf_device("0x101e"),
        )
        .add_vfs(4, VfSpec::kernel("mlx5_core"));
    let vf3 = fake.vf_pci("0000:81:00.0", 3).to_string();
    fake.add_rdma(&vf3, "mlx5_3");
    fake
}

fn cfg(v: serde_json::Value) -> DpConfig {
    DpConfig::from_json(v).unwrap()
}

fn err(v: serde_json::Value) -> String {
    DpConfig::from_json(v).unwrap_err().to_string()
}

/// `(pf netdev, index)` of each VF in the pool.
fn pool(fake: &FakeSysfs, config: &DpConfig, name: &str) -> Vec<(String, u32)> {
    let sel = select(&fake.sysfs(), config).unwrap();
    assert!(sel.errors.is_empty(), "{:?}", sel.errors);
    sel.pools[name]
        .iter()
        .map(|v| (v.pf_name.clone().unwrap_or_default(), v.index))
        .collect()
}

fn one(selectors: serde_json::Value) -> DpConfig {
    cfg(json!({"resourceList": [{"resourceName": "r", "selectors": selectors}]}))
}

fn idx(fake: &FakeSysfs, selectors: serde_json::Value) -> Vec<String> {
    pool(fake, &one(selectors), "intel.com/r")
        .into_iter()
        .map(|(pf, i)| format!("{pf}#{i}"))
        .collect()
}

#[test]
fn parses_config_case_insensitively() {
    let c = DpConfig::parse(
        br#"{"ResourceList": [{"RESOURCENAME": "sriov_a", "resourceprefix": "example.com",
            "DeviceType": "netDevice", "ExcludeTopology": true,
            "Selectors": {"Vendors": ["8086"], "PFNAMES": ["ens1f0#0,2-3"], "IsRdma": false,
                          "NeedVhostNet": true}}]}"#,
    )
    .unwrap();
    let r = &c.resources[0];
    assert_eq!(r.full_name(), "example.com/sriov_a");
    assert!(r.exclude_topology);
    assert_eq!(r.selectors.len(), 1);
    let s = &r.selectors[0];
    assert_eq!(s.vendors, [0x8086]);
    assert!(s.need_vhost_net);
    assert_eq!(s.pf_names[0].pf, "ens1f0");
    assert_eq!(s.pf_names[0].vfs.as_ref().unwrap().to_string(), "0,2-3");
    // defaults
    let c = cfg(json!({"resourceList": [{"resourceName": "b", "selectors": {}}]}));
    assert_eq!(c.resources[0].full_name(), "intel.com/b");
    assert!(!c.resources[0].exclude_topology);
}

#[test]
fn vendors_devices_drivers_pci_addresses() {
    let fake = host();
    assert_eq!(idx(&fake, json!({"vendors": ["15b3"]})).len(), 4);
    assert_eq!(
        idx(&fake, json!({"vendors": ["0x8086"], "devices": ["1889"]})).len(),
        6
    );
    assert_eq!(idx(&fake, json!({"devices": ["101E"]})).len(), 4);
    assert_eq!(
        idx(&fake, json!({"drivers": ["vfio-pci"]})),
        ["ens1f0#4", "ens1f0#5"]
    );
    assert_eq!(
        idx(&fake, json!({"drivers": ["iavf", "mlx5_core"]})).len(),
        8
    );
    let a = fake.vf_pci("0000:81:00.0", 2).to_string();
    assert_eq!(idx(&fake, json!({"pciAddresses": [a]})), ["ens2f0#2"]);
    // AND across keys
    assert!(
        idx(
            &fake,
            json!({"vendors": ["8086"], "drivers": ["mlx5_core"]})
        )
        .is_empty()
    );
    // no selectors: every VF
    let c = cfg(json!({"resourceList": [{"resourceName": "all"}]}));
    assert_eq!(pool(&fake, &c, "intel.com/all").len(), 10);
}

#[test]
fn pf_names_and_root_devices_with_ranges() {
    let fake = host();
    assert_eq!(idx(&fake, json!({"pfNames": ["ens2f0"]})).len(), 4);
    assert_eq!(
        idx(&fake, json!({"pfNames": ["ens1f0#0,2-3", "ENS2F0#1"]})),
        ["ens1f0#0", "ens1f0#2", "ens1f0#3", "ens2f0#1"]
    );
    assert_eq!(
        idx(&fake, json!({"rootDevices": ["0000:03:00.0#1-200"]})),
        ["ens1f0#1", "ens1f0#2", "ens1f0#3", "ens1f0#4", "ens1f0#5"],
        "a range beyond totalvfs is accepted"
    );
    assert_eq!(
        idx(&fake, json!({"rootDevices": ["0000:81:00.0"]})).len(),
        4
    );
    // PF netdev gone: pfNames no longer match, rootDevices still do
    fake.remove_pf_netdev("0000:81:00.0");
    assert!(idx(&fake, json!({"pfNames": ["ens2f0"]})).is_empty());
    assert_eq!(
        idx(&fake, json!({"rootDevices": ["0000:81:00.0#3"]})),
        ["#3"]
    );
}

#[test]
fn link_types_and_rdma() {
    let fake = host();
    assert_eq!(
        idx(&fake, json!({"linkTypes": ["ether"]})).len(),
        10,
        "vfio VFs use the PF's"
    );
    assert!(idx(&fake, json!({"linkTypes": ["infiniband"]})).is_empty());
    fake.write_attr("class/net/ens2f0v0/type", "32\n");
    assert_eq!(
        idx(&fake, json!({"linkTypes": ["infiniband"]})),
        ["ens2f0#0"]
    );
    assert_eq!(idx(&fake, json!({"isRdma": true})), ["ens2f0#3"]);
    // an unreadable link type is a per-device error, the rest still pool
    fake.write_attr("class/net/ens2f0v0/type", "eth\n");
    let sel = select(&fake.sysfs(), &one(json!({"linkTypes": ["ether"]}))).unwrap();
    assert_eq!(sel.pools["intel.com/r"].len(), 9);
    assert_eq!(sel.errors.len(), 1);
    assert!(sel.errors[0].to_string().contains("\"eth\""));
}

#[test]
fn first_matching_selector_and_first_resource_win() {
    let fake = host();
    let c = cfg(json!({"resourceList": [
        {"resourceName": "dpdk", "selectors": [
            {"drivers": ["vfio-pci"], "needVhostNet": true},
            {"pfNames": ["ens1f0#0-4"]}
        ]},
        {"resourceName": "net", "resourcePrefix": "example.com",
         "selectors": {"vendors": ["8086"]}},
        {"resourceName": "empty", "selectors": {"vendors": ["1234"]}}
    ]}));
    let sel = select(&fake.sysfs(), &c).unwrap();
    let dpdk: Vec<u32> = sel.pools["intel.com/dpdk"]
        .iter()
        .map(|v| v.index)
        .collect();
    assert_eq!(dpdk, [0, 1, 2, 3, 4, 5]);
    assert_eq!(sel.selector_of[&fake.vf_pci("0000:03:00.0", 4)], 0);
    assert_eq!(sel.selector_of[&fake.vf_pci("0000:03:00.0", 5)], 0);
    assert_eq!(sel.selector_of[&fake.vf_pci("0000:03:00.0", 0)], 1);
    assert!(
        sel.pools["example.com/net"].is_empty(),
        "already taken by dpdk"
    );
    assert!(sel.pools["intel.com/empty"].is_empty());
    assert_eq!(sel.pools.len(), 3);
}

#[test]
fn range_errors_name_resource_selector_value() {
    for (item, why) in [
        ("ens1f0#7-2", "ends before"),
        ("ens1f0#a", "\"a\""),
        ("ens1f0#-1", "\"\""),
        ("ens1f0#", "no VF index"),
        ("ens1f0#1,,2", "\"\""),
        ("ens1f0#1#2", "more than one"),
        ("#1", "no PF"),
        ("ens.*", "regular expressions"),
    ] {
        let e = err(json!({"resourceList": [{"resourceName": "res1",
            "selectors": [{}, {"pfNames": ["ens1f0", item]}]}]}));
        assert!(
            e.contains("\"res1\"")
                && e.contains("selectors[1].pfNames")
                && e.contains(item)
                && e.contains(why),
            "{item}: {e}"
        );
    }
    let e = err(json!({"resourceList": [{"resourceName": "r",
        "selectors": {"rootDevices": ["0000:03:00.0#3-1"]}}]}));
    assert!(
        e.contains("selectors[0].rootDevices") && e.contains("0000:03:00.0#3-1"),
        "{e}"
    );
    let e = err(json!({"resourceList": [{"resourceName": "r",
        "selectors": {"rootDevices": ["03:00.0"]}}]}));
    assert!(e.contains("rootDevices") && e.contains("03:00.0"), "{e}");
}

#[test]
fn config_errors() {
    let e = err(json!({"resourceList": [{"resourceName": "a"}, {"selectors": {}}]}));
    assert!(
        e.contains("resourceList[1]") && e.contains("empty resourceName"),
        "{e}"
    );
    let e = err(json!({"resourceList": [{"resourceName": "a"}, {"resourceName": "a"}]}));
    assert!(e.contains("duplicate") && e.contains("intel.com/a"), "{e}");
    let ok = cfg(json!({"resourceList": [{"resourceName": "a"},
        {"resourceName": "a", "resourcePrefix": "other.io"}]}));
    assert_eq!(
        ok.resources.len(),
        2,
        "same name under another prefix is another resource"
    );
    let e = err(json!({"resourceList": [{"resourceName": "acc", "deviceType": "accelerator"}]}));
    assert!(
        e.contains("\"acc\"") && e.contains("\"accelerator\"") && e.contains("not supported"),
        "{e}"
    );
    let e = err(json!({"resourceList": [{"resourceName": "a-b"}]}));
    assert!(e.contains("\"a-b\"") && e.contains("resourceName"), "{e}");
    let e = err(json!({"resourceList": [{"resourceName": "r", "resourcePrefix": "a/b"}]}));
    assert!(e.contains("\"a/b\""), "{e}");
    let e =
        err(json!({"resourceList": [{"resourceName": "r", "selectors": {"vendors": ["intel"]}}]}));
    assert!(
        e.contains("selectors[0].vendors") && e.contains("\"intel\""),
        "{e}"
    );
    let e =
        err(json!({"resourceList": [{"resourceName": "r", "selectors": {"devices": ["12345"]}}]}));
    assert!(
        e.contains("selectors[0].devices") && e.contains("\"12345\""),
        "{e}"
    );
    let e = err(
        json!({"resourceList": [{"resourceName": "r", "selectors": {"pciAddresses": ["0000:03:02"]}}]}),
    );
    assert!(
        e.contains("pciAddresses") && e.contains("0000:03:02"),
        "{e}"
    );
    let e = err(
        json!({"resourceList": [{"resourceName": "r", "selectors": {"ddpProfiles": ["GTP"]}}]}),
    );
    assert!(
        e.contains("ddpProfiles") && e.contains("not supported"),
        "{e}"
    );
    let e = err(json!({"resourceList": [{"resourceName": "r", "selectors": "vendors"}]}));
    assert!(e.contains("\"r\"") && e.contains("object or a list"), "{e}");
    let e = err(json!({"resourceList": [{"resourceName": "r", "selectors": {"vendors": "8086"}}]}));
    assert!(e.contains("\"r\"") && e.contains("selectors[0]"), "{e}");
    let e = DpConfig::parse(b"{").unwrap_err().to_string();
    assert!(e.contains("device plugin config"), "{e}");
}

#[test]
fn vf_ranges() {
    let r = VfRanges::parse("0,2-7,9").unwrap();
    assert!(r.contains(0) && !r.contains(1) && r.contains(2) && r.contains(7) && r.contains(9));
    assert!(!r.contains(8) && !r.contains(10));
    assert_eq!(r.to_string(), "0,2-7,9");
    assert!(VfRanges::parse("5-5").unwrap().contains(5));
    for bad in ["", "7-2", "a", "-1", "1-", "1-2-3", " 1", "99999999999"] {
        assert!(VfRanges::parse(bad).is_err(), "{bad:?}");
    }
}
