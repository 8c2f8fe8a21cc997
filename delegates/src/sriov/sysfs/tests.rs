use super::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use super::*;

fn p(s: &str) -> PciAddress {
    s.parse().unwrap()
}

/// ens1f0 (E810, NUMA 0) with 4 iavf VFs + 2 vfio-pci VFs; ens2f0 (mlx5, NUMA 1) with 2 VFs.
fn host() -> FakeSysfs {
    FakeSysfs::new()
        .add_pf("ens1f0", "0000:03:00.0", PfSpec::default())
        .add_vfs(4, VfSpec::kernel("iavf"))
        .add_vfs(2, VfSpec::userspace("vfio-pci"))
        .add_pf(
            "ens2f0",
            "0000:81:00.0",
            PfSpec::new("mlx5_core", "0x15b3", "0x101d")
                .vf_device("0x101e")
                .numa(1)
                .total_vfs(16),
        )
        .add_vfs(2, VfSpec::kernel("mlx5_core"))
}

fn ok_vfs(s: &Sysfs, pf: &str) -> Vec<Vf> {
    s.vfs_of(&p(pf))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn pci_address_parse_display() {
    let a = p("0000:03:02.1");
    assert_eq!(a, PciAddress::new(0, 3, 2, 1));
    assert_eq!(a.to_string(), "0000:03:02.1");
    assert_eq!(p("0000:AF:1F.7").to_string(), "0000:af:1f.7");
    assert_eq!(p("10000:00:01.0").to_string(), "10000:00:01.0");
    for bad in [
        "",
        "03:02.1",
        "0000:03:20.0",
        "0000:03:02.8",
        "0000:3g:00.0",
        "0000:03:02",
        "x",
    ] {
        let e = bad.parse::<PciAddress>().unwrap_err();
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
    }
    assert_eq!(a.with_routing_id(a.routing_id()), a);
}

#[test]
fn discovers_pfs() {
    let fake = host();
    let s = fake.sysfs();
    let pfs: Vec<Pf> = s.pfs().unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(pfs.len(), 2);
    let pf = &pfs[0];
    assert_eq!(pf.name.as_deref(), Some("ens1f0"));
    assert_eq!(pf.pci, p("0000:03:00.0"));
    assert_eq!(pf.driver.as_deref(), Some("ice"));
    assert_eq!((pf.vendor, pf.device), (0x8086, 0x1592));
    assert_eq!(pf.numa_node, Some(0));
    assert_eq!((pf.total_vfs, pf.num_vfs), (8, 6));
    assert_eq!(pf.link_up, Some(true));
    assert_eq!(pfs[1].name.as_deref(), Some("ens2f0"));
    assert_eq!(pfs[1].numa_node, Some(1));
    assert_eq!(s.pf_by_name("ens2f0").unwrap(), pfs[1]);
    assert!(matches!(
        s.pf_by_name("nope"),
        Err(SysfsError::NoSuchNetdev { .. })
    ));
}

#[test]
fn vfs_index_driver_numa_iommu_netdev() {
    let fake = host();
    let s = fake.sysfs();
    let vfs = ok_vfs(&s, "0000:03:00.0");
    assert_eq!(vfs.len(), 6);
    for (i, vf) in vfs.iter().enumerate() {
        assert_eq!(vf.index, i as u32);
        assert_eq!(vf.pf_pci, p("0000:03:00.0"));
        assert_eq!(vf.pf_name.as_deref(), Some("ens1f0"));
        assert_eq!((vf.vendor, vf.device), (0x8086, 0x1889));
        assert_eq!(vf.numa_node, Some(0));
        assert!(vf.iommu_group.is_some());
        assert_eq!(s.vf(&vf.pci).unwrap(), *vf, "vf() agrees with vfs_of()");
    }
    assert_eq!(vfs[0].pci, p("0000:03:02.0"));
    assert_eq!(vfs[0].vendor_hex(), "8086");
    assert_eq!(vfs[0].device_hex(), "1889");
    assert_eq!(vfs[1].netdev.as_deref(), Some("ens1f0v1"));
    assert_eq!(vfs[3].driver.as_deref(), Some("iavf"));
    assert!(!vfs[3].is_userspace_driver());
    // userspace-driver VFs: no netdev
    assert_eq!(vfs[4].driver.as_deref(), Some("vfio-pci"));
    assert!(vfs[4].is_userspace_driver());
    assert_eq!(vfs[4].netdev, None);
    let groups: std::collections::BTreeSet<_> = vfs.iter().map(|v| v.iommu_group).collect();
    assert_eq!(groups.len(), 6, "one IOMMU group per VF");
    // lookups
    let vf = s.vf_by_netdev("ens1f0v2").unwrap().unwrap();
    assert_eq!(vf.index, 2);
    assert_eq!(s.pf_of(&vf).unwrap().name.as_deref(), Some("ens1f0"));
    assert_eq!(s.vf_by_netdev("ens1f0").unwrap(), None, "a PF is not a VF");
    assert_eq!(s.vf_by_netdev("eth9").unwrap(), None);
    assert!(matches!(
        s.vf(&p("0000:03:00.0")),
        Err(SysfsError::NotAVf { .. })
    ));
    assert!(matches!(
        s.vf(&p("0000:09:00.0")),
        Err(SysfsError::NoSuchDevice { .. })
    ));
    let mlx = ok_vfs(&s, "0000:81:00.0");
    assert_eq!(mlx[1].numa_node, Some(1));
    assert_eq!(mlx[1].netdev.as_deref(), Some("ens2f0v1"));
    assert_eq!(s.link_type(&mlx[1]).unwrap().as_deref(), Some("ether"));
}

#[test]
fn real_layout_symlinks() {
    let fake = host();
    let vf_dir = fake.path("bus/pci/devices/0000:03:02.0");
    let rl = |rel: &str| std::fs::read_link(vf_dir.join(rel)).unwrap();
    assert_eq!(rl("physfn"), PathBuf::from("../0000:03:00.0"));
    assert_eq!(rl("driver"), PathBuf::from("../../../bus/pci/drivers/iavf"));
    assert!(rl("iommu_group").starts_with("../../../kernel/iommu_groups"));
    assert!(vf_dir.join("driver").metadata().unwrap().is_dir());
    assert!(vf_dir.join("iommu_group").metadata().unwrap().is_dir());
    assert_eq!(
        std::fs::read_link(fake.path("bus/pci/devices/0000:03:00.0/virtfn0")).unwrap(),
        PathBuf::from("../0000:03:02.0")
    );
    assert_eq!(
        std::fs::read_to_string(vf_dir.join("vendor")).unwrap(),
        "0x8086\n"
    );
    assert!(fake.path("class/net/ens1f0/device/sriov_totalvfs").exists());
    assert!(
        fake.path("bus/pci/drivers/iavf/0000:03:02.0/physfn")
            .exists()
    );
}

#[test]
fn netdev_names_are_reread() {
    let fake = host();
    let s = fake.sysfs();
    let vf = p("0000:03:02.1");
    assert_eq!(s.vf_netdev(&vf).unwrap().as_deref(), Some("ens1f0v1"));
    fake.set_vf_netdev("0000:03:02.1", None); // moved into a pod
    assert_eq!(s.vf_netdev(&vf).unwrap(), None);
    assert_eq!(s.vf_by_netdev("ens1f0v1").unwrap(), None);
    fake.set_vf_netdev("0000:03:02.1", Some("dev7")); // back from a destroyed netns
    assert_eq!(s.vf_netdev(&vf).unwrap().as_deref(), Some("dev7"));
    assert_eq!(s.vf_by_netdev("dev7").unwrap().unwrap().index, 1);
}

#[test]
fn rebind_numvfs_remove_link_down() {
    let fake = host();
    let s = fake.sysfs();
    let vf0 = fake.vf_pci("0000:03:00.0", 0);
    fake.rebind_vf(&vf0.to_string(), Some("vfio-pci"));
    let vf = s.vf(&vf0).unwrap();
    assert!(vf.is_userspace_driver());
    assert_eq!(vf.netdev, None);
    assert!(!fake.path("class/net/ens1f0v0").exists());
    fake.rebind_vf(&vf0.to_string(), Some("iavf"));
    assert_eq!(s.vf(&vf0).unwrap().netdev.as_deref(), Some("ens1f0v0"));
    fake.rebind_vf(&vf0.to_string(), None);
    assert_eq!(s.vf(&vf0).unwrap().driver, None);

    fake.set_num_vfs("0000:03:00.0", 2, VfSpec::kernel("iavf"));
    assert_eq!(ok_vfs(&s, "0000:03:00.0").len(), 2);
    assert_eq!(s.pf(&p("0000:03:00.0")).unwrap().num_vfs, 2);
    fake.set_num_vfs("0000:03:00.0", 5, VfSpec::kernel("iavf"));
    let vfs = ok_vfs(&s, "0000:03:00.0");
    assert_eq!(
        vfs.iter().map(|v| v.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(vfs[4].netdev.as_deref(), Some("ens1f0v4"));

    fake.remove_vf(&vfs[1].pci.to_string());
    let idx: Vec<u32> = ok_vfs(&s, "0000:03:00.0").iter().map(|v| v.index).collect();
    assert_eq!(idx, [0, 2, 3, 4]);

    fake.set_link("ens1f0", false);
    assert_eq!(s.pf(&p("0000:03:00.0")).unwrap().link_up, Some(false));
    fake.write_attr("class/net/ens1f0/operstate", "unknown\n")
        .write_attr("class/net/ens1f0/carrier", "1\n");
    assert_eq!(s.link_up("ens1f0").unwrap(), Some(true));
}

#[test]
fn pf_whose_netdev_is_gone() {
    let fake = host();
    fake.remove_pf_netdev("0000:03:00.0");
    let s = fake.sysfs();
    let pfs: Vec<Pf> = s.pfs().unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(pfs.len(), 2);
    assert_eq!(pfs[0].pci, p("0000:03:00.0"));
    assert_eq!(pfs[0].name, None);
    assert_eq!(pfs[0].link_up, None);
    let vfs = ok_vfs(&s, "0000:03:00.0");
    assert_eq!(vfs.len(), 6);
    assert_eq!(vfs[0].pf_name, None);
    assert_eq!(
        vfs[0].netdev.as_deref(),
        Some("ens1f0v0"),
        "VF netdevs stay"
    );
}

#[test]
fn discover_collects() {
    let fake = host();
    let d = fake.sysfs().discover().unwrap();
    assert_eq!((d.pfs.len(), d.vfs.len(), d.errors.len()), (2, 8, 0));
}

#[test]
fn missing_root_is_an_error() {
    let s = Sysfs::new("/nonexistent/plexus-sysfs");
    let e = s.pfs().unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/plexus-sysfs/bus/pci/devices"),
        "{e}"
    );
}

fn err_of(fake: &FakeSysfs, pf: &str, index: usize) -> String {
    let vfs = fake.sysfs().vfs_of(&p(pf)).unwrap();
    let others_ok = vfs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .all(|(_, v)| v.is_ok());
    assert!(others_ok, "a broken VF hides no other: {vfs:?}");
    vfs[index].as_ref().unwrap_err().to_string()
}

#[test]
fn malformed_vf_attributes() {
    let fake = host();
    let vf = fake.vf_pci("0000:03:00.0", 1);
    let rel = |a: &str| format!("bus/pci/devices/{vf}/{a}");

    fake.write_attr(&rel("vendor"), "intel\n");
    let e = err_of(&fake, "0000:03:00.0", 1);
    assert!(e.contains(&rel("vendor")) && e.contains("\"intel\""), "{e}");
    assert!(fake.sysfs().vf(&vf).is_err());

    fake.write_attr(&rel("vendor"), "0x8086\n")
        .remove(&rel("device"));
    let e = err_of(&fake, "0000:03:00.0", 1);
    assert!(e.contains(&rel("device")) && e.contains("missing"), "{e}");

    fake.write_attr(&rel("device"), "0x1889\n")
        .write_attr(&rel("numa_node"), "zero\n");
    let e = err_of(&fake, "0000:03:00.0", 1);
    assert!(
        e.contains(&rel("numa_node")) && e.contains("\"zero\""),
        "{e}"
    );

    fake.write_attr(&rel("numa_node"), "-1\n");
    assert_eq!(fake.sysfs().vf(&vf).unwrap().numa_node, None);

    fake.symlink(&rel("driver"), "../../../bus/pci/drivers/gone");
    let e = err_of(&fake, "0000:03:00.0", 1);
    assert!(
        e.contains(&rel("driver")) && e.contains("dangling") && e.contains("gone"),
        "{e}"
    );

    fake.symlink(&rel("driver"), "../../../bus/pci/drivers/iavf")
        .symlink(&rel("iommu_group"), "../../../kernel/iommu_groups/none");
    let e = err_of(&fake, "0000:03:00.0", 1);
    assert!(e.contains("iommu_group") && e.contains("dangling"), "{e}");

    fake.remove(&rel("iommu_group"));
    assert_eq!(fake.sysfs().vf(&vf).unwrap().iommu_group, None);

    fake.symlink(&rel("physfn"), "../0000:81:00.0");
    let e = err_of(&fake, "0000:03:00.0", 1);
    assert!(e.contains("physfn") && e.contains("0000:81:00.0"), "{e}");
    let e = fake.sysfs().vf(&vf).unwrap_err();
    assert!(matches!(e, SysfsError::VfNotListed { .. }), "{e}");
}

#[test]
fn virtfn_link_to_nowhere() {
    let fake = host();
    fake.symlink("bus/pci/devices/0000:03:00.0/virtfn2", "../0000:03:0f.7");
    let e = err_of(&fake, "0000:03:00.0", 2);
    assert!(
        e.contains("virtfn2") && e.contains("dangling") && e.contains("0000:03:0f.7"),
        "{e}"
    );
    fake.symlink("bus/pci/devices/0000:03:00.0/virtfn2", "../0000:03:02.2")
        .symlink("bus/pci/devices/0000:03:00.0/virtfn3", "../garbage");
    std::fs::create_dir(fake.path("devices/pci0000:00/garbage")).unwrap();
    let e = err_of(&fake, "0000:03:00.0", 3);
    assert!(e.contains("virtfn3") && e.contains("garbage"), "{e}");
    fake.symlink("bus/pci/devices/0000:03:00.0/virtfn2", "../0000:03:0f.7");
    // discover keeps the others
    let d = fake.sysfs().discover().unwrap();
    assert_eq!((d.vfs.len(), d.errors.len()), (6, 2));
}

#[test]
fn malformed_pf() {
    let fake = host();
    fake.write_attr("bus/pci/devices/0000:03:00.0/sriov_numvfs", "9\n");
    let s = fake.sysfs();
    let e = s.pf(&p("0000:03:00.0")).unwrap_err().to_string();
    assert!(
        e.contains("sriov_numvfs") && e.contains('9') && e.contains('8'),
        "{e}"
    );
    let pfs = s.pfs().unwrap();
    assert!(
        pfs[0].is_err() && pfs[1].is_ok(),
        "a broken PF hides no other"
    );
    let d = s.discover().unwrap();
    assert_eq!((d.pfs.len(), d.vfs.len(), d.errors.len()), (1, 2, 1));

    fake.write_attr("bus/pci/devices/0000:03:00.0/sriov_numvfs", "six\n");
    let e = s.pf(&p("0000:03:00.0")).unwrap_err().to_string();
    assert!(e.contains("sriov_numvfs") && e.contains("\"six\""), "{e}");

    fake.remove("bus/pci/devices/0000:03:00.0/sriov_numvfs");
    let e = s.pf(&p("0000:03:00.0")).unwrap_err().to_string();
    assert!(e.contains("sriov_numvfs") && e.contains("missing"), "{e}");

    fake.write_attr("bus/pci/devices/0000:03:00.0/sriov_numvfs", "6\n")
        .write_attr("bus/pci/devices/0000:03:00.0/device", "0x\n");
    let e = s.pf(&p("0000:03:00.0")).unwrap_err().to_string();
    assert!(e.contains("/device") && e.contains("\"0x\""), "{e}");

    fake.write_attr("class/net/ens1f0/operstate", "sideways\n");
    fake.write_attr("bus/pci/devices/0000:03:00.0/device", "0x1592\n");
    let e = s.pf(&p("0000:03:00.0")).unwrap_err().to_string();
    assert!(e.contains("operstate") && e.contains("sideways"), "{e}");

    assert!(matches!(
        s.pf(&p("0000:03:02.0")),
        Err(SysfsError::NotAPf { .. })
    ));
}
