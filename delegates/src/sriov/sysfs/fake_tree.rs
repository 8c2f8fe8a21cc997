//! Fake sysfs trees with the real layout, built in a temp dir for tests (this crate's and, via the
//! `test-fixtures` feature, the device plugin's).
//!
//! ```text
//! <root>/devices/pci0000:00/<bdf>/            real dirs: vendor, device, class, numa_node, ...
//!        .../<pf-bdf>/sriov_totalvfs, sriov_numvfs, virtfn<N> -> ../<vf-bdf>
//!        .../<vf-bdf>/physfn -> ../<pf-bdf>
//!        .../<bdf>/driver -> ../../../bus/pci/drivers/<name>
//!        .../<bdf>/iommu_group -> ../../../kernel/iommu_groups/<n>
//!        .../<bdf>/net/<ifname>/{operstate,carrier,type,address,device -> ../../../<bdf>}
//! <root>/bus/pci/devices/<bdf> -> ../../../devices/pci0000:00/<bdf>
//! <root>/bus/pci/drivers/<name>/<bdf> -> ../../../../devices/pci0000:00/<bdf>
//! <root>/kernel/iommu_groups/<n>/devices/<bdf> -> ../../../../devices/pci0000:00/<bdf>
//! <root>/class/net/<ifname> -> ../../devices/pci0000:00/<bdf>/net/<ifname>
//! ```
//! Attribute files end in a newline, as the kernel writes them. Builders consume and return the
//! tree; mutators take `&self`. Everything panics on I/O failure (tests only).

#![allow(clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{PciAddress, Sysfs, USERSPACE_DRIVERS};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The directory all fake PCI devices live in.
const PCI_PARENT: &str = "devices/pci0000:00";

/// How to build a PF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfSpec {
    pub driver: String,
    pub vendor: String,
    pub device: String,
    /// The device ID its VFs get.
    pub vf_device: String,
    /// Written to `numa_node`; -1 = none.
    pub numa_node: i32,
    pub total_vfs: u32,
    pub link_up: bool,
}

impl Default for PfSpec {
    /// An Intel E810 (`ice`, 0x8086:0x1592, VFs 0x1889) on NUMA node 0 with 8 VFs possible.
    fn default() -> Self {
        PfSpec {
            driver: "ice".into(),
            vendor: "0x8086".into(),
            device: "0x1592".into(),
            vf_device: "0x1889".into(),
            numa_node: 0,
            total_vfs: 8,
            link_up: true,
        }
    }
}

impl PfSpec {
    pub fn new(driver: &str, vendor: &str, device: &str) -> Self {
        PfSpec {
            driver: driver.into(),
            vendor: vendor.into(),
            device: device.into(),
            ..PfSpec::default()
        }
    }
    pub fn numa(mut self, node: i32) -> Self {
        self.numa_node = node;
        self
    }
    pub fn total_vfs(mut self, n: u32) -> Self {
        self.total_vfs = n;
        self
    }
    pub fn vf_device(mut self, device: &str) -> Self {
        self.vf_device = device.into();
        self
    }
    pub fn link_up(mut self, up: bool) -> Self {
        self.link_up = up;
        self
    }
}

/// How to build VFs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfSpec {
    /// `None`: no driver bound.
    pub driver: Option<String>,
}

impl VfSpec {
    /// Bound to a kernel net driver (`iavf`, `mlx5_core`, ...), with a netdev `<pf>v<index>`.
    pub fn kernel(driver: &str) -> Self {
        VfSpec {
            driver: Some(driver.into()),
        }
    }
    /// Bound to a userspace driver (`vfio-pci`, ...): no netdev.
    pub fn userspace(driver: &str) -> Self {
        VfSpec {
            driver: Some(driver.into()),
        }
    }
    /// No driver bound.
    pub fn unbound() -> Self {
        VfSpec { driver: None }
    }
    fn has_netdev(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| !USERSPACE_DRIVERS.contains(&d))
    }
}

/// A fake sysfs root in a temp dir, removed on drop.
#[derive(Debug)]
pub struct FakeSysfs {
    root: PathBuf,
    owned: bool,
    last_pf: Option<PciAddress>,
}

impl Default for FakeSysfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

fn pci(s: &str) -> PciAddress {
    s.parse().unwrap_or_else(|e| panic!("fake sysfs: {e}"))
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

fn write(p: &Path, content: &str) {
    if let Some(parent) = p.parent() {
        mkdir(parent);
    }
    fs::write(p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn link(p: &Path, target: &str) {
    if let Some(parent) = p.parent() {
        mkdir(parent);
    }
    let _ = fs::remove_file(p);
    symlink(target, p).unwrap_or_else(|e| panic!("symlink {} -> {target}: {e}", p.display()));
}

fn remove(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(p).unwrap_or_else(|e| panic!("rm -r {}: {e}", p.display()))
        }
        Ok(_) => fs::remove_file(p).unwrap_or_else(|e| panic!("rm {}: {e}", p.display())),
        Err(_) => {}
    }
}

impl FakeSysfs {
    /// An empty tree (`bus/pci/devices`, `class/net`, ...) in a new temp dir.
    pub fn new() -> Self {
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let root = base.join(format!("plexus-fake-sysfs-{}-{n}", std::process::id()));
            match fs::create_dir(&root) {
                Ok(()) => return Self::init(root, true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create {}: {e}", root.display()),
            }
        }
    }

    /// An empty tree in `root` (created if needed), left in place on drop.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self::init(root.into(), false)
    }

    fn init(root: PathBuf, owned: bool) -> Self {
        for d in [
            PCI_PARENT,
            "bus/pci/devices",
            "bus/pci/drivers",
            "class/net",
            "kernel/iommu_groups",
        ] {
            mkdir(&root.join(d));
        }
        FakeSysfs {
            root,
            owned,
            last_pf: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The model over this tree.
    pub fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.root)
    }

    /// `<root>/<rel>`
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The real device dir `<root>/devices/pci0000:00/<bdf>`.
    pub fn device_dir(&self, bdf: &str) -> PathBuf {
        self.root.join(PCI_PARENT).join(pci(bdf).to_string())
    }

    /// Add an SR-IOV PF with netdev `name` (no VFs yet: `sriov_numvfs` 0).
    pub fn add_pf(mut self, name: &str, bdf: &str, spec: PfSpec) -> Self {
        let addr = pci(bdf);
        let dir = self.add_pci_device(addr, &spec.vendor, &spec.device, spec.numa_node);
        write(
            &dir.join("sriov_totalvfs"),
            &format!("{}\n", spec.total_vfs),
        );
        write(&dir.join("sriov_numvfs"), "0\n");
        write(
            &dir.join("sriov_vf_device"),
            &format!("{}\n", spec.vf_device.trim_start_matches("0x")),
        );
        self.bind(addr, Some(&spec.driver));
        self.add_netdev(addr, name, spec.link_up);
        self.last_pf = Some(addr);
        self
    }

    /// Add `n` VFs to the PF added last (indices continue after its existing VFs). VFs on a
    /// kernel driver get netdevs `<pf>v<index>`.
    pub fn add_vfs(self, n: u32, spec: VfSpec) -> Self {
        let pf = self.last_pf.expect("fake sysfs: add_vfs before add_pf");
        for _ in 0..n {
            self.add_vf(pf, &spec);
        }
        self
    }

    /// Add `n` VFs to the PF at `pf_bdf`.
    pub fn add_vfs_to(self, pf_bdf: &str, n: u32, spec: VfSpec) -> Self {
        let pf = pci(pf_bdf);
        for _ in 0..n {
            self.add_vf(pf, &spec);
        }
        self
    }

    fn add_pci_device(&self, addr: PciAddress, vendor: &str, device: &str, numa: i32) -> PathBuf {
        let bdf = addr.to_string();
        let dir = self.root.join(PCI_PARENT).join(&bdf);
        mkdir(&dir);
        write(&dir.join("vendor"), &format!("{vendor}\n"));
        write(&dir.join("device"), &format!("{device}\n"));
        write(&dir.join("class"), "0x020000\n");
        write(&dir.join("numa_node"), &format!("{numa}\n"));
        link(
            &self.root.join("bus/pci/devices").join(&bdf),
            &format!("../../../{PCI_PARENT}/{bdf}"),
        );
        let group = fs::read_dir(self.root.join("kernel/iommu_groups"))
            .map(|rd| rd.count())
            .unwrap_or(0);
        let gdir = self.root.join(format!("kernel/iommu_groups/{group}"));
        link(
            &gdir.join("devices").join(&bdf),
            &format!("../../../../{PCI_PARENT}/{bdf}"),
        );
        link(
            &dir.join("iommu_group"),
            &format!("../../../kernel/iommu_groups/{group}"),
        );
        dir
    }

    fn add_vf(&self, pf: PciAddress, spec: &VfSpec) -> PciAddress {
        let pf_dir = self.root.join(PCI_PARENT).join(pf.to_string());
        let index = self.vf_links(pf).len() as u32;
        let mut rid = pf
            .routing_id()
            .checked_add(0x10)
            .expect("fake sysfs: out of RIDs");
        while self
            .root
            .join("bus/pci/devices")
            .join(pf.with_routing_id(rid).to_string())
            .symlink_metadata()
            .is_ok()
        {
            rid = rid.checked_add(1).expect("fake sysfs: out of RIDs");
        }
        let addr = pf.with_routing_id(rid);
        let vendor = read(&pf_dir.join("vendor"));
        let vf_device = format!("0x{}", read(&pf_dir.join("sriov_vf_device")));
        let numa: i32 = read(&pf_dir.join("numa_node")).parse().unwrap_or(-1);
        let dir = self.add_pci_device(addr, &vendor, &vf_device, numa);
        link(&dir.join("physfn"), &format!("../{pf}"));
        link(
            &pf_dir.join(format!("virtfn{index}")),
            &format!("../{addr}"),
        );
        write(&pf_dir.join("sriov_numvfs"), &format!("{}\n", index + 1));
        self.bind(addr, spec.driver.as_deref());
        if spec.has_netdev() {
            let pf_name = self.netdevs(pf).into_iter().next();
            let name = match pf_name {
                Some(p) => format!("{p}v{index}"),
                None => self.free_dev_name(),
            };
            self.add_netdev(addr, &name, true);
        }
        addr
    }

    /// `(index, vf)` for each `virtfn<N>` link of the PF.
    fn vf_links(&self, pf: PciAddress) -> Vec<(u32, PciAddress)> {
        let dir = self.root.join(PCI_PARENT).join(pf.to_string());
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).expect("read PF dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(Ok(i)) = name.strip_prefix("virtfn").map(str::parse::<u32>)
                && let Ok(t) = fs::read_link(entry.path())
                && let Some(Ok(a)) = t.file_name().and_then(|s| s.to_str()).map(str::parse)
            {
                out.push((i, a));
            }
        }
        out.sort();
        out
    }

    fn netdevs(&self, addr: PciAddress) -> Vec<String> {
        let dir = self
            .root
            .join(PCI_PARENT)
            .join(addr.to_string())
            .join("net");
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn free_dev_name(&self) -> String {
        (0..)
            .map(|n| format!("dev{n}"))
            .find(|n| {
                self.root
                    .join("class/net")
                    .join(n)
                    .symlink_metadata()
                    .is_err()
            })
            .expect("a free devN name")
    }

    fn add_netdev(&self, addr: PciAddress, name: &str, up: bool) {
        let bdf = addr.to_string();
        let ndir = self.root.join(PCI_PARENT).join(&bdf).join("net").join(name);
        mkdir(&ndir);
        write(&ndir.join("operstate"), if up { "up\n" } else { "down\n" });
        write(&ndir.join("carrier"), if up { "1\n" } else { "0\n" });
        write(&ndir.join("type"), "1\n");
        let rid = addr.routing_id();
        write(
            &ndir.join("address"),
            &format!(
                "02:00:00:{:02x}:{:02x}:{:02x}\n",
                addr.domain & 0xff,
                rid >> 8,
                rid & 0xff
            ),
        );
        link(&ndir.join("device"), &format!("../../../{bdf}"));
        link(
            &self.root.join("class/net").join(name),
            &format!("../../{PCI_PARENT}/{bdf}/net/{name}"),
        );
    }

    fn remove_netdevs(&self, addr: PciAddress) {
        for name in self.netdevs(addr) {
            remove(&self.root.join("class/net").join(&name));
        }
        remove(
            &self
                .root
                .join(PCI_PARENT)
                .join(addr.to_string())
                .join("net"),
        );
    }

    fn bind(&self, addr: PciAddress, driver: Option<&str>) {
        let bdf = addr.to_string();
        let dir = self.root.join(PCI_PARENT).join(&bdf);
        if let Ok(old) = fs::read_link(dir.join("driver"))
            && let Some(old) = old.file_name()
        {
            remove(&self.root.join("bus/pci/drivers").join(old).join(&bdf));
        }
        remove(&dir.join("driver"));
        if let Some(driver) = driver {
            let ddir = self.root.join("bus/pci/drivers").join(driver);
            mkdir(&ddir);
            link(&ddir.join(&bdf), &format!("../../../../{PCI_PARENT}/{bdf}"));
            link(
                &dir.join("driver"),
                &format!("../../../bus/pci/drivers/{driver}"),
            );
        }
    }

    /// The VF at `index` of the PF at `pf_bdf`.
    pub fn vf_pci(&self, pf_bdf: &str, index: u32) -> PciAddress {
        self.vf_links(pci(pf_bdf))
            .into_iter()
            .find(|(i, _)| *i == index)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("fake sysfs: PF {pf_bdf} has no VF {index}"))
    }

    /// Rebind a VF: a userspace driver (or `None`, unbound) removes its netdev; a kernel driver
    /// gives it one (`<pf>v<index>`, or `devN` when that name is taken) if it had none.
    pub fn rebind_vf(&self, vf_bdf: &str, driver: Option<&str>) -> &Self {
        let addr = pci(vf_bdf);
        let spec = VfSpec {
            driver: driver.map(str::to_string),
        };
        self.bind(addr, driver);
        if !spec.has_netdev() {
            self.remove_netdevs(addr);
        } else if self.netdevs(addr).is_empty() {
            let name = self.default_vf_name(addr);
            self.add_netdev(addr, &name, true);
        }
        self
    }

    fn default_vf_name(&self, vf: PciAddress) -> String {
        let vf_dir = self.root.join(PCI_PARENT).join(vf.to_string());
        let pf: Option<PciAddress> = fs::read_link(vf_dir.join("physfn")).ok().and_then(|t| {
            t.file_name()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
        });
        let candidate = pf.and_then(|pf| {
            let index = self.vf_links(pf).into_iter().find(|(_, a)| *a == vf)?.0;
            let pf_name = self.netdevs(pf).into_iter().next()?;
            Some(format!("{pf_name}v{index}"))
        });
        match candidate {
            Some(n)
                if self
                    .root
                    .join("class/net")
                    .join(&n)
                    .symlink_metadata()
                    .is_err() =>
            {
                n
            }
            _ => self.free_dev_name(),
        }
    }

    /// Set (or, with `None`, remove: moved into a pod netns) the VF's host netdev.
    pub fn set_vf_netdev(&self, vf_bdf: &str, name: Option<&str>) -> &Self {
        let addr = pci(vf_bdf);
        self.remove_netdevs(addr);
        if let Some(name) = name {
            self.add_netdev(addr, name, true);
        }
        self
    }

    /// Write `sriov_numvfs` as the kernel would: VFs at or above `n` disappear, new ones are
    /// added on `spec`.
    pub fn set_num_vfs(&self, pf_bdf: &str, n: u32, spec: VfSpec) -> &Self {
        let pf = pci(pf_bdf);
        for (i, vf) in self.vf_links(pf) {
            if i >= n {
                self.remove_vf(&vf.to_string());
            }
        }
        let have = self.vf_links(pf).len() as u32;
        for _ in have..n {
            self.add_vf(pf, &spec);
        }
        write(
            &self
                .root
                .join(PCI_PARENT)
                .join(pf.to_string())
                .join("sriov_numvfs"),
            &format!("{n}\n"),
        );
        self
    }

    /// Remove a VF entirely (its device dir, links, netdev); `sriov_numvfs` is left alone.
    pub fn remove_vf(&self, vf_bdf: &str) -> &Self {
        let addr = pci(vf_bdf);
        let bdf = addr.to_string();
        let dir = self.root.join(PCI_PARENT).join(&bdf);
        self.remove_netdevs(addr);
        self.bind(addr, None);
        if let Ok(t) = fs::read_link(dir.join("physfn"))
            && let Some(Ok(pf)) = t
                .file_name()
                .and_then(|s| s.to_str())
                .map(str::parse::<PciAddress>)
        {
            let pf_dir = self.root.join(PCI_PARENT).join(pf.to_string());
            for (i, a) in self.vf_links(pf) {
                if a == addr {
                    remove(&pf_dir.join(format!("virtfn{i}")));
                }
            }
        }
        if let Ok(t) = fs::read_link(dir.join("iommu_group"))
            && let Some(g) = t.file_name()
        {
            let groups = self.root.join("kernel/iommu_groups");
            remove(&groups.join(g).join("devices").join(&bdf));
        }
        remove(&self.root.join("bus/pci/devices").join(&bdf));
        remove(&dir);
        self
    }

    /// Set the link state of the PF netdev `name` (`operstate` and `carrier`).
    pub fn set_link(&self, name: &str, up: bool) -> &Self {
        let ndir = self.root.join("class/net").join(name);
        write(&ndir.join("operstate"), if up { "up\n" } else { "down\n" });
        write(&ndir.join("carrier"), if up { "1\n" } else { "0\n" });
        self
    }

    /// Remove the PF's netdev (driver unloaded, or moved away), keeping the PCI device.
    pub fn remove_pf_netdev(&self, pf_bdf: &str) -> &Self {
        self.remove_netdevs(pci(pf_bdf));
        self
    }

    /// Give the device an RDMA device `<pci dir>/infiniband/<name>`.
    pub fn add_rdma(&self, bdf: &str, name: &str) -> &Self {
        mkdir(&self.device_dir(bdf).join("infiniband").join(name));
        self
    }

    /// Write `<root>/<rel>` (following symlinks), for malformed trees.
    pub fn write_attr(&self, rel: &str, content: &str) -> &Self {
        write(&self.root.join(rel), content);
        self
    }

    /// Remove `<root>/<rel>` (a file, a link, or a dir).
    pub fn remove(&self, rel: &str) -> &Self {
        remove(&self.root.join(rel));
        self
    }

    /// Make `<root>/<rel>` a symlink to `target` (replacing what is there).
    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        link(&self.root.join(rel), target);
        self
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim_end()
        .to_string()
}
