//! A cheap digest of the sysfs state that can change a pool between full scans, so the daemon can
//! poll often without re-reading every attribute of every VF.
//!
//! Per known PF (`<root>/bus/pci/devices/<pf>`): `sriov_numvfs`, its netdev names and their
//! `operstate` and `carrier`, every `virtfnN` link target and the `driver` link of the VF behind it.
//! That covers VFs appearing and vanishing, driver binds and rebinds, and PF link state: about two
//! syscalls per VF, against some fifteen for a full read. Everything else a selector or Allocate
//! looks at (IDs, NUMA node, IOMMU group, RDMA, new PFs) is static in practice and is caught by the
//! periodic full scan.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use plexus_delegates::sriov::sysfs::{PciAddress, Sysfs};

/// The digest for `pfs`. Unreadable parts are hashed as their error kind, so a PF disappearing
/// also changes the digest.
pub fn fingerprint(sysfs: &Sysfs, pfs: &[PciAddress]) -> u64 {
    let mut h = DefaultHasher::new();
    for pf in pfs {
        pf.hash(&mut h);
        let dir = sysfs.pci_dir(pf);
        attr(&dir.join("sriov_numvfs"), &mut h);
        for name in names(&dir.join("net"), &mut h) {
            name.hash(&mut h);
            let netdev = sysfs.netdev_dir(&name);
            attr(&netdev.join("operstate"), &mut h);
            attr(&netdev.join("carrier"), &mut h);
        }
        for entry in names(&dir, &mut h) {
            if !entry.starts_with("virtfn") {
                continue;
            }
            entry.hash(&mut h);
            let link = dir.join(&entry);
            target(&link, &mut h);
            target(&link.join("driver"), &mut h);
        }
    }
    h.finish()
}

fn attr(path: &Path, h: &mut DefaultHasher) {
    match std::fs::read(path) {
        Ok(bytes) => bytes.hash(h),
        Err(e) => e.kind().hash(h),
    }
}

fn target(path: &Path, h: &mut DefaultHasher) {
    match std::fs::read_link(path) {
        Ok(t) => t.hash(h),
        Err(e) => e.kind().hash(h),
    }
}

/// Sorted entry names of `dir` (empty and hashed as an error when unreadable).
fn names(dir: &Path, h: &mut DefaultHasher) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
        Err(e) => {
            e.kind().hash(h);
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use plexus_delegates::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};

    use super::*;

    #[test]
    fn changes_with_what_matters_and_only_that() {
        let fake = FakeSysfs::new()
            .add_pf("ens1f0", "0000:03:00.0", PfSpec::default())
            .add_vfs(3, VfSpec::kernel("iavf"));
        let sysfs = fake.sysfs();
        let pfs: Vec<PciAddress> = vec!["0000:03:00.0".parse().unwrap()];
        let fp = || fingerprint(&sysfs, &pfs);
        let base = fp();
        assert_eq!(fp(), base);
        let vf = fake.vf_pci("0000:03:00.0", 1).to_string();

        // a VF netdev moving into a pod, or coming back renamed, does not matter
        fake.set_vf_netdev(&vf, None);
        assert_eq!(fp(), base);
        fake.set_vf_netdev(&vf, Some("dev3"));
        assert_eq!(fp(), base);

        let mut seen = vec![base];
        let mut changed = |what: &str| {
            let now = fp();
            assert!(
                !seen.contains(&now),
                "{what} did not change the fingerprint"
            );
            seen.push(now);
        };
        fake.set_link("ens1f0", false);
        changed("PF link down");
        fake.set_link("ens1f0", true);
        assert_eq!(fp(), base, "back to the same state");
        fake.rebind_vf(&vf, None);
        changed("VF unbound");
        fake.rebind_vf(&vf, Some("vfio-pci"));
        changed("VF bound to vfio-pci");
        fake.set_num_vfs("0000:03:00.0", 5, VfSpec::kernel("iavf"));
        changed("sriov_numvfs raised");
        fake.set_num_vfs("0000:03:00.0", 1, VfSpec::kernel("iavf"));
        changed("sriov_numvfs lowered");
        fake.remove_pf_netdev("0000:03:00.0");
        changed("PF netdev gone");
    }
}
