//! A read-only model of SR-IOV devices in sysfs, read from a root given as a parameter
//! (production passes `/sys`; tests build fake trees with [`fake_tree`]).
//!
//! Layout read (COMPAT.md §7):
//! - PF: `<root>/class/net/<pf>/device` → the PF's PCI dir, which holds `sriov_totalvfs`,
//!   `sriov_numvfs`, `virtfn<N>` → `../<vf-bdf>`, `vendor`, `device`, `numa_node`, `driver`.
//! - VF: `<root>/bus/pci/devices/<vf-bdf>/` with `physfn`, `net/<ifname>/` (only while the netdev
//!   is in the host netns on a kernel driver), `driver`, `iommu_group`, `vendor`, `device`,
//!   `numa_node`. The VF index is the N of the PF's `virtfn<N>` link pointing at the VF.
//!
//! Nothing is cached: every call reads the tree again, so names and drivers are current (a VF
//! returning from a destroyed netns may come back as `devN`). Malformed trees give a
//! [`SysfsError`] naming the path and the content; enumeration reports a broken VF or PF on its
//! own and keeps the others.

mod pci;

#[cfg(any(test, feature = "test-fixtures"))]
pub mod fake_tree;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use pci::{PciAddress, PciAddressError};

/// Drivers that bind a VF for userspace (no netdev): DPDK and VM passthrough.
pub const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// A malformed or unexpected sysfs tree. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("{}: missing", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: invalid content {content:?}: expected {expected}", path.display())]
    Invalid {
        path: PathBuf,
        content: String,
        expected: &'static str,
    },
    #[error("{}: dangling symlink to {}", path.display(), target.display())]
    Dangling { path: PathBuf, target: PathBuf },
    #[error("{}: symlink target {} is not a PCI device: {source}", path.display(), target.display())]
    BadLinkTarget {
        path: PathBuf,
        target: PathBuf,
        #[source]
        source: PciAddressError,
    },
    #[error("{}: sriov_numvfs {num} exceeds sriov_totalvfs {total}", path.display())]
    NumVfsExceedsTotal { path: PathBuf, num: u32, total: u32 },
    #[error("no PCI device {pci}: {} does not exist", path.display())]
    NoSuchDevice { pci: PciAddress, path: PathBuf },
    #[error("{pci} is not an SR-IOV PF: {} does not exist", path.display())]
    NotAPf { pci: PciAddress, path: PathBuf },
    #[error("{pci} is not an SR-IOV VF: {} does not exist", path.display())]
    NotAVf { pci: PciAddress, path: PathBuf },
    #[error("VF {vf}: no virtfn<N> link in its PF's dir {} points to it", pf_dir.display())]
    VfNotListed { vf: PciAddress, pf_dir: PathBuf },
    #[error("{}: VF names PF {actual}, but it is listed by PF {expected}", path.display())]
    PhysfnMismatch {
        path: PathBuf,
        actual: PciAddress,
        expected: PciAddress,
    },
    #[error("no network interface {name}: {} does not exist", path.display())]
    NoSuchNetdev { name: String, path: PathBuf },
}

impl SysfsError {
    fn io(path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            SysfsError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            SysfsError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    fn invalid(path: &Path, content: &str, expected: &'static str) -> Self {
        SysfsError::Invalid {
            path: path.to_path_buf(),
            content: content.to_string(),
            expected,
        }
    }
}

/// An SR-IOV physical function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pf {
    /// The PF netdev in the host netns; `None` when it is gone (or in another netns).
    pub name: Option<String>,
    pub pci: PciAddress,
    pub driver: Option<String>,
    pub vendor: u16,
    pub device: u16,
    pub numa_node: Option<u32>,
    pub total_vfs: u32,
    pub num_vfs: u32,
    /// From the netdev's `operstate` (or `carrier` when that says `unknown`); `None` without a
    /// netdev or when neither tells.
    pub link_up: Option<bool>,
}

/// An SR-IOV virtual function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vf {
    pub pci: PciAddress,
    pub pf_pci: PciAddress,
    /// The PF netdev, if it is in the host netns.
    pub pf_name: Option<String>,
    /// The N of the PF's `virtfn<N>` link.
    pub index: u32,
    /// `None` when no driver is bound.
    pub driver: Option<String>,
    pub vendor: u16,
    pub device: u16,
    pub numa_node: Option<u32>,
    pub iommu_group: Option<u32>,
    /// The VF netdev, present only while it is in the host netns on a kernel net driver.
    pub netdev: Option<String>,
}

impl Vf {
    /// Bound to vfio-pci, uio_pci_generic or igb_uio: no netdev, handed to userspace.
    pub fn is_userspace_driver(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| USERSPACE_DRIVERS.contains(&d))
    }

    /// Vendor ID as the device plugin config writes it (`8086`).
    pub fn vendor_hex(&self) -> String {
        format!("{:04x}", self.vendor)
    }

    /// Device ID as the device plugin config writes it (`1889`).
    pub fn device_hex(&self) -> String {
        format!("{:04x}", self.device)
    }
}

/// Everything found in one pass; broken devices are in `errors`, the rest are usable.
#[derive(Debug, Default)]
pub struct Discovery {
    pub pfs: Vec<Pf>,
    /// All VFs of `pfs`, by PF then index.
    pub vfs: Vec<Vf>,
    pub errors: Vec<SysfsError>,
}

/// The sysfs tree under `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// A model of the tree under `root` (`/sys` in production).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/bus/pci/devices/<pci>`
    pub fn pci_dir(&self, pci: &PciAddress) -> PathBuf {
        self.root.join("bus/pci/devices").join(pci.to_string())
    }

    /// `<root>/class/net/<name>`
    pub fn netdev_dir(&self, name: &str) -> PathBuf {
        self.root.join("class/net").join(name)
    }

    /// Every SR-IOV PF: PCI devices with `sriov_totalvfs` (including PFs whose netdev is gone)
    /// and netdevs whose `device` dir has one. The outer error means the tree cannot be listed at
    /// all; each inner error is one broken PF.
    pub fn pfs(&self) -> Result<Vec<Result<Pf, SysfsError>>, SysfsError> {
        let mut found: BTreeMap<PciAddress, Option<String>> = BTreeMap::new();
        let mut out = Vec::new();
        let devices = self.root.join("bus/pci/devices");
        for entry in list_dir(&devices)? {
            let dir = devices.join(&entry);
            if !exists(&dir.join("sriov_totalvfs")) {
                continue;
            }
            match entry.parse::<PciAddress>() {
                Ok(pci) => {
                    found.entry(pci).or_default();
                }
                Err(source) => out.push(Err(SysfsError::BadLinkTarget {
                    path: dir.clone(),
                    target: dir,
                    source,
                })),
            }
        }
        let net = self.root.join("class/net");
        let names = match list_dir(&net) {
            Ok(names) => names,
            Err(SysfsError::Missing { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        for name in names {
            let device = net.join(&name).join("device");
            if !exists(&device.join("sriov_totalvfs")) {
                continue;
            }
            match link_pci(&device) {
                Ok(Some(pci)) => {
                    found.insert(pci, Some(name));
                }
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
        for (pci, name) in found {
            out.push(self.read_pf(&pci, name));
        }
        Ok(out)
    }

    /// The PF at `pci`, whether or not its netdev exists.
    pub fn pf(&self, pci: &PciAddress) -> Result<Pf, SysfsError> {
        self.read_pf(pci, None)
    }

    /// The PF whose netdev is `name`.
    pub fn pf_by_name(&self, name: &str) -> Result<Pf, SysfsError> {
        let dir = self.netdev_dir(name);
        if !exists(&dir) {
            return Err(SysfsError::NoSuchNetdev {
                name: name.to_string(),
                path: dir,
            });
        }
        let device = dir.join("device");
        let pci = link_pci(&device)?.ok_or(SysfsError::Missing { path: device })?;
        self.read_pf(&pci, Some(name.to_string()))
    }

    /// The PF of `vf`, read again.
    pub fn pf_of(&self, vf: &Vf) -> Result<Pf, SysfsError> {
        self.pf(&vf.pf_pci)
    }

    /// The device's PCI dir, or [`SysfsError::NoSuchDevice`] when it is not there.
    fn existing_pci_dir(&self, pci: &PciAddress) -> Result<PathBuf, SysfsError> {
        let dir = self.pci_dir(pci);
        if exists(&dir) {
            Ok(dir)
        } else {
            Err(SysfsError::NoSuchDevice {
                pci: *pci,
                path: dir,
            })
        }
    }

    fn read_pf(&self, pci: &PciAddress, name: Option<String>) -> Result<Pf, SysfsError> {
        let dir = self.existing_pci_dir(pci)?;
        let total_path = dir.join("sriov_totalvfs");
        if !exists(&total_path) {
            return Err(SysfsError::NotAPf {
                pci: *pci,
                path: total_path,
            });
        }
        let total_vfs = read_u32(&total_path)?;
        let num_path = dir.join("sriov_numvfs");
        let num_vfs = read_u32(&num_path)?;
        if num_vfs > total_vfs {
            return Err(SysfsError::NumVfsExceedsTotal {
                path: num_path,
                num: num_vfs,
                total: total_vfs,
            });
        }
        let name = match name {
            Some(n) => Some(n),
            None => first_entry(&dir.join("net"))?,
        };
        let link_up = match &name {
            Some(n) => self.link_up(n)?,
            None => None,
        };
        Ok(Pf {
            name,
            pci: *pci,
            driver: link_name(&dir.join("driver"))?,
            vendor: read_hex_u16(&dir.join("vendor"))?,
            device: read_hex_u16(&dir.join("device"))?,
            numa_node: read_numa(&dir.join("numa_node"))?,
            total_vfs,
            num_vfs,
            link_up,
        })
    }

    /// Whether netdev `name` is up: `operstate` `up`/`down`, falling back to `carrier` when the
    /// state is `unknown` or absent. `None` when neither tells (or the netdev is gone).
    pub fn link_up(&self, name: &str) -> Result<Option<bool>, SysfsError> {
        let dir = self.netdev_dir(name);
        let state_path = dir.join("operstate");
        match read_attr_opt(&state_path)?.as_deref() {
            Some("up") => return Ok(Some(true)),
            Some("down" | "lowerlayerdown" | "notpresent" | "dormant") => return Ok(Some(false)),
            Some("unknown" | "testing") | None => {}
            Some(other) => {
                return Err(SysfsError::invalid(
                    &state_path,
                    other,
                    "an operstate (up, down, unknown, ...)",
                ));
            }
        }
        let carrier_path = dir.join("carrier");
        // The kernel answers EINVAL to reading `carrier` of an interface that is down.
        match std::fs::read_to_string(&carrier_path) {
            Ok(s) => match s.trim_end() {
                "1" => Ok(Some(true)),
                "0" => Ok(Some(false)),
                other => Err(SysfsError::invalid(&carrier_path, other, "0 or 1")),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(22) => Ok(Some(false)),
            Err(e) => Err(SysfsError::io(&carrier_path, e)),
        }
    }

    /// The VFs of the PF at `pf`, by index. The outer error means the PF dir cannot be listed;
    /// each inner error is one broken VF (a `virtfn` link to nowhere, a bad attribute), so one
    /// broken VF does not hide the others.
    pub fn vfs_of(&self, pf: &PciAddress) -> Result<Vec<Result<Vf, SysfsError>>, SysfsError> {
        let dir = self.pci_dir(pf);
        if !exists(&dir) {
            return Err(SysfsError::NoSuchDevice {
                pci: *pf,
                path: dir,
            });
        }
        let pf_name = first_entry(&dir.join("net"))?;
        let mut links: Vec<(u32, String)> = Vec::new();
        let mut out = Vec::new();
        for entry in list_dir(&dir)? {
            let Some(n) = entry.strip_prefix("virtfn") else {
                continue;
            };
            match n.parse::<u32>() {
                Ok(i) => links.push((i, entry)),
                Err(_) => out.push(Err(SysfsError::invalid(
                    &dir.join(&entry),
                    &entry,
                    "a link named virtfn<N>",
                ))),
            }
        }
        links.sort();
        for (index, entry) in links {
            let link = dir.join(&entry);
            out.push(
                link_pci(&link)
                    .and_then(|pci| pci.ok_or(SysfsError::Missing { path: link.clone() }))
                    .and_then(|pci| self.read_vf(&pci, *pf, pf_name.clone(), index)),
            );
        }
        Ok(out)
    }

    /// The VF at `pci`.
    pub fn vf(&self, pci: &PciAddress) -> Result<Vf, SysfsError> {
        let dir = self.existing_pci_dir(pci)?;
        let physfn = dir.join("physfn");
        let pf_pci = match link_pci(&physfn)? {
            Some(p) => p,
            None => {
                return Err(SysfsError::NotAVf {
                    pci: *pci,
                    path: physfn,
                });
            }
        };
        let pf_dir = self.pci_dir(&pf_pci);
        let mut index = None;
        for entry in list_dir(&pf_dir)? {
            let Some(Ok(i)) = entry.strip_prefix("virtfn").map(str::parse::<u32>) else {
                continue;
            };
            let link = pf_dir.join(&entry);
            let target = std::fs::read_link(&link).map_err(|e| SysfsError::io(&link, e))?;
            if target.file_name().and_then(|s| s.to_str()) == Some(&pci.to_string()) {
                index = Some(i);
                break;
            }
        }
        let index = index.ok_or(SysfsError::VfNotListed {
            vf: *pci,
            pf_dir: pf_dir.clone(),
        })?;
        let pf_name = first_entry(&pf_dir.join("net"))?;
        self.read_vf(pci, pf_pci, pf_name, index)
    }

    fn read_vf(
        &self,
        pci: &PciAddress,
        pf_pci: PciAddress,
        pf_name: Option<String>,
        index: u32,
    ) -> Result<Vf, SysfsError> {
        let dir = self.existing_pci_dir(pci)?;
        let physfn = dir.join("physfn");
        match link_pci(&physfn)? {
            Some(actual) if actual == pf_pci => {}
            Some(actual) => {
                return Err(SysfsError::PhysfnMismatch {
                    path: physfn,
                    actual,
                    expected: pf_pci,
                });
            }
            None => {
                return Err(SysfsError::NotAVf {
                    pci: *pci,
                    path: physfn,
                });
            }
        }
        let iommu_path = dir.join("iommu_group");
        let iommu_group = match link_name(&iommu_path)? {
            Some(g) => Some(
                g.parse::<u32>()
                    .map_err(|_| SysfsError::invalid(&iommu_path, &g, "a group number"))?,
            ),
            None => None,
        };
        Ok(Vf {
            pci: *pci,
            pf_pci,
            pf_name,
            index,
            driver: link_name(&dir.join("driver"))?,
            vendor: read_hex_u16(&dir.join("vendor"))?,
            device: read_hex_u16(&dir.join("device"))?,
            numa_node: read_numa(&dir.join("numa_node"))?,
            iommu_group,
            netdev: first_entry(&dir.join("net"))?,
        })
    }

    /// The VF's netdev name now (read again on every call: it changes when the netdev moves to
    /// a pod, or comes back renamed `devN` from a destroyed netns).
    pub fn vf_netdev(&self, pci: &PciAddress) -> Result<Option<String>, SysfsError> {
        let dir = self.existing_pci_dir(pci)?;
        first_entry(&dir.join("net"))
    }

    /// The VF whose host netdev is `name`; `None` when there is no such netdev or it is not a
    /// PCI VF (a veth, a PF, ...).
    pub fn vf_by_netdev(&self, name: &str) -> Result<Option<Vf>, SysfsError> {
        let dir = self.netdev_dir(name);
        if !exists(&dir) {
            return Ok(None);
        }
        let Some(Ok(pci)) = link_name(&dir.join("device"))?.map(|n| n.parse::<PciAddress>()) else {
            return Ok(None);
        };
        if !exists(&self.pci_dir(&pci).join("physfn")) {
            return Ok(None);
        }
        self.vf(&pci).map(Some)
    }

    /// The link type of the VF's netdev, else its PF's (`ether`, `infiniband`, or the ARPHRD
    /// number); `None` when neither netdev is in the host netns.
    pub fn link_type(&self, vf: &Vf) -> Result<Option<String>, SysfsError> {
        let Some(name) = vf.netdev.as_ref().or(vf.pf_name.as_ref()) else {
            return Ok(None);
        };
        let path = self.netdev_dir(name).join("type");
        let Some(content) = read_attr_opt(&path)? else {
            return Ok(None);
        };
        let kind: u32 = content
            .parse()
            .map_err(|_| SysfsError::invalid(&path, &content, "an ARPHRD number"))?;
        Ok(Some(match kind {
            1 => "ether".to_string(),
            32 => "infiniband".to_string(),
            n => n.to_string(),
        }))
    }

    /// Whether the device has an RDMA device (`<pci dir>/infiniband/<dev>`).
    pub fn has_rdma(&self, pci: &PciAddress) -> Result<bool, SysfsError> {
        match first_entry(&self.pci_dir(pci).join("infiniband"))? {
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// All PFs and their VFs in one pass; broken ones go to `errors`.
    pub fn discover(&self) -> Result<Discovery, SysfsError> {
        let mut d = Discovery::default();
        for pf in self.pfs()? {
            match pf {
                Ok(pf) => {
                    match self.vfs_of(&pf.pci) {
                        Ok(vfs) => {
                            for vf in vfs {
                                match vf {
                                    Ok(vf) => d.vfs.push(vf),
                                    Err(e) => d.errors.push(e),
                                }
                            }
                        }
                        Err(e) => d.errors.push(e),
                    }
                    d.pfs.push(pf);
                }
                Err(e) => d.errors.push(e),
            }
        }
        Ok(d)
    }
}

/// Whether `path` exists, following symlinks (a dangling link does not exist).
fn exists(path: &Path) -> bool {
    path.metadata().is_ok()
}

/// Sorted entry names of a directory.
fn list_dir(dir: &Path) -> Result<Vec<String>, SysfsError> {
    let rd = std::fs::read_dir(dir).map_err(|e| SysfsError::io(dir, e))?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| SysfsError::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The first entry of a directory (sorted), `None` when it is missing or empty.
fn first_entry(dir: &Path) -> Result<Option<String>, SysfsError> {
    match list_dir(dir) {
        Ok(names) => Ok(names.into_iter().next()),
        Err(SysfsError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An attribute without its trailing newline.
fn read_attr(path: &Path) -> Result<String, SysfsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| SysfsError::io(path, e))
}

fn read_attr_opt(path: &Path) -> Result<Option<String>, SysfsError> {
    match read_attr(path) {
        Ok(s) => Ok(Some(s)),
        Err(SysfsError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_u32(path: &Path) -> Result<u32, SysfsError> {
    let s = read_attr(path)?;
    s.parse()
        .map_err(|_| SysfsError::invalid(path, &s, "a decimal number"))
}

/// `0x8086` (as the kernel writes `vendor` and `device`).
fn read_hex_u16(path: &Path) -> Result<u16, SysfsError> {
    let s = read_attr(path)?;
    s.strip_prefix("0x")
        .filter(|h| !h.is_empty() && h.len() <= 4 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|h| u16::from_str_radix(h, 16).ok())
        .ok_or_else(|| SysfsError::invalid(path, &s, "a 0x-prefixed 16-bit hex number"))
}

/// `numa_node`: `-1` (or a missing file, as on kernels without NUMA) is no node.
fn read_numa(path: &Path) -> Result<Option<u32>, SysfsError> {
    let Some(s) = read_attr_opt(path)? else {
        return Ok(None);
    };
    if s == "-1" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| SysfsError::invalid(path, &s, "a NUMA node number or -1"))
}

/// The basename of a symlink's target; `None` when the link does not exist, an error when it
/// dangles or is not a link.
fn link_name(path: &Path) -> Result<Option<String>, SysfsError> {
    let target = match std::fs::read_link(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(22) => {
            return Err(SysfsError::invalid(path, "(not a symlink)", "a symlink"));
        }
        Err(e) => return Err(SysfsError::io(path, e)),
    };
    if !exists(path) {
        return Err(SysfsError::Dangling {
            path: path.to_path_buf(),
            target,
        });
    }
    match target.file_name().and_then(|s| s.to_str()) {
        Some(name) => Ok(Some(name.to_string())),
        None => Err(SysfsError::invalid(
            path,
            &target.to_string_lossy(),
            "a symlink to a named entry",
        )),
    }
}

/// The PCI address a symlink (`physfn`, `virtfnN`, a netdev's `device`) points to.
fn link_pci(path: &Path) -> Result<Option<PciAddress>, SysfsError> {
    let Some(name) = link_name(path)? else {
        return Ok(None);
    };
    name.parse().map(Some).map_err(|source| {
        let target = std::fs::read_link(path).unwrap_or_else(|_| PathBuf::from(&name));
        SysfsError::BadLinkTarget {
            path: path.to_path_buf(),
            target,
            source,
        }
    })
}
