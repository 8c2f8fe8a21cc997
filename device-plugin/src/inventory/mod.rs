//! One sysfs pass turned into pools: which VFs each kubelet resource has, whether each is healthy
//! and on which NUMA node.
//!
//! Devices are identified by PCI address through the PFs' `virtfnN` links, never by netdev: a VF
//! moved into a pod's netns has no netdev in the host, and must stay listed (and healthy) or
//! kubelet's capacity would shrink under running pods, including across restarts of this daemon.
//!
//! Health: a VF is unhealthy when no driver is bound to it, or when its PF's link is down
//! (`operstate`, falling back to `carrier`). A PF whose link state cannot be told (no netdev in the
//! host, `unknown` without `carrier`) does not make its VFs unhealthy. A listed VF that cannot be
//! read for a moment but is still present stays listed, unhealthy, until it reads again.
//!
//! A VF that loses its driver would stop matching a `drivers` selector and vanish from its pool;
//! instead it stays in the pool it was in (as unhealthy) as long as the pool's selectors still
//! match it apart from `drivers`. Once bound again it is sorted by the selectors as usual, so a
//! rebind to another driver moves it to the pool that selects that driver.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use plexus_delegates::sriov::selectors::{DpConfig, ResourceConfig, Selector, matches, select_vfs};
use plexus_delegates::sriov::sysfs::{PciAddress, Pf, Sysfs, SysfsError, Vf};
use plexus_kubelet_api::deviceplugin as api;

/// Why a device is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    /// No driver is bound to the VF (unbound, or mid-rebind).
    NoDriver,
    /// The PF's link is down.
    PfLinkDown { pf: String },
    /// The VF (or its PF) could not be read in the last pass; see [`Inventory::broken`].
    Unreadable,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unhealthy::NoDriver => f.write_str("no driver bound to the VF"),
            Unhealthy::PfLinkDown { pf } => write!(f, "PF {pf} link is down"),
            Unhealthy::Unreadable => f.write_str("its sysfs entry could not be read"),
        }
    }
}

/// One VF in a pool, with what kubelet and Allocate need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDevice {
    pub pci: PciAddress,
    pub pf_pci: PciAddress,
    pub pf_name: Option<String>,
    pub index: u32,
    pub driver: Option<String>,
    /// The VF's NUMA node, else its PF's; `None` when the host reports none (-1).
    pub numa_node: Option<u32>,
    pub iommu_group: Option<u32>,
    /// The selector that put it in the pool asks for `/dev/vhost-net` and `/dev/net/tun`.
    pub need_vhost_net: bool,
    /// `None` = healthy.
    pub unhealthy: Option<Unhealthy>,
}

impl PoolDevice {
    pub fn is_healthy(&self) -> bool {
        self.unhealthy.is_none()
    }

    /// The device as ListAndWatch reports it. `with_topology` is false for pools with
    /// `excludeTopology`.
    pub fn to_api(&self, with_topology: bool) -> api::Device {
        let topology = match self.numa_node {
            Some(node) if with_topology => Some(api::TopologyInfo {
                nodes: vec![api::NumaNode {
                    id: i64::from(node),
                }],
            }),
            _ => None,
        };
        api::Device {
            id: self.pci.to_string(),
            health: if self.is_healthy() {
                api::HEALTHY
            } else {
                api::UNHEALTHY
            }
            .to_string(),
            topology,
        }
    }
}

/// Every pool after one discovery pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// `<prefix>/<name>` → its devices sorted by PCI address. Every configured resource has an
    /// entry, possibly empty.
    pub pools: BTreeMap<String, Vec<PoolDevice>>,
    /// Every SR-IOV PF known (also those with no VF in a pool, and those that could not be read
    /// this time but are still present), by address: the PFs each poll fingerprints.
    pub pfs: Vec<PciAddress>,
    /// Devices the pass could not read (malformed attributes, dangling links), as messages
    /// naming the path; they are in no pool.
    pub broken: Vec<String>,
}

impl Inventory {
    /// The devices of `resource` (empty when it is not configured).
    pub fn pool(&self, resource: &str) -> &[PoolDevice] {
        self.pools.get(resource).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The device `id` (a PCI address as kubelet sends it) of `resource`.
    pub fn device(&self, resource: &str, id: &str) -> Option<&PoolDevice> {
        let pci: PciAddress = id.parse().ok()?;
        let pool = self.pool(resource);
        pool.binary_search_by(|d| d.pci.cmp(&pci))
            .ok()
            .map(|i| &pool[i])
    }

    /// The resource of `config` whose pool held `pci`.
    fn pool_of(&self, pci: &PciAddress) -> Option<&str> {
        self.pools
            .iter()
            .find(|(_, devs)| devs.iter().any(|d| d.pci == *pci))
            .map(|(name, _)| name.as_str())
    }
}

/// Read sysfs once and sort the VFs into pools. `previous` is the last inventory; `None` on the
/// first pass. The error means the tree cannot be listed at all (a wrong sysfs root); broken
/// single devices are in [`Inventory::broken`].
///
/// From `previous`, a VF keeps its place in its pool, unhealthy, while it has no driver (see the
/// module docs) and while it cannot be read but is still present (a half-written attribute, a
/// `driver` link dangling mid-rebind): kubelet's capacity does not flap with such races.
pub fn discover(
    sysfs: &Sysfs,
    config: &DpConfig,
    previous: Option<&Inventory>,
) -> Result<Inventory, SysfsError> {
    let found = sysfs.discover()?;
    let selection = select_vfs(sysfs, &found.vfs, config);
    let pfs: BTreeMap<PciAddress, &Pf> = found.pfs.iter().map(|p| (p.pci, p)).collect();
    let resources: BTreeMap<String, &ResourceConfig> = config
        .resources
        .iter()
        .map(|r| (r.full_name(), r))
        .collect();

    let mut known_pfs: BTreeSet<PciAddress> = pfs.keys().copied().collect();
    if let Some(previous) = previous {
        known_pfs.extend(
            previous
                .pfs
                .iter()
                .filter(|p| sysfs.pci_dir(p).exists())
                .copied(),
        );
    }
    let mut inventory = Inventory {
        pools: BTreeMap::new(),
        pfs: known_pfs.into_iter().collect(),
        broken: found.errors.iter().map(ToString::to_string).collect(),
    };
    inventory
        .broken
        .extend(selection.errors.iter().map(ToString::to_string));
    let mut pooled: BTreeSet<PciAddress> = BTreeSet::new();
    for (name, vfs) in &selection.pools {
        let Some(resource) = resources.get(name) else {
            continue;
        };
        let devices = vfs
            .iter()
            .map(|vf| {
                pooled.insert(vf.pci);
                let selector = selection
                    .selector_of
                    .get(&vf.pci)
                    .and_then(|i| resource.selectors.get(*i));
                device(vf, pfs.get(&vf.pf_pci).copied(), selector)
            })
            .collect();
        inventory.pools.insert(name.clone(), devices);
    }

    if let Some(previous) = previous {
        for vf in found.vfs.iter().filter(|v| v.driver.is_none()) {
            if pooled.contains(&vf.pci) {
                continue;
            }
            let Some(name) = previous.pool_of(&vf.pci) else {
                continue;
            };
            let Some(resource) = resources.get(name) else {
                continue;
            };
            match matches_without_drivers(sysfs, resource, vf) {
                Ok(Some(selector)) => {
                    let d = device(vf, pfs.get(&vf.pf_pci).copied(), Some(selector));
                    inventory.pools.entry(name.to_string()).or_default().push(d);
                }
                Ok(None) => {}
                Err(e) => inventory.broken.push(e.to_string()),
            }
        }
        let read: BTreeSet<PciAddress> = found.vfs.iter().map(|v| v.pci).collect();
        for (name, devices) in &previous.pools {
            for d in devices {
                if read.contains(&d.pci) || !sysfs.pci_dir(&d.pci).exists() {
                    continue;
                }
                inventory
                    .pools
                    .entry(name.clone())
                    .or_default()
                    .push(PoolDevice {
                        unhealthy: Some(Unhealthy::Unreadable),
                        ..d.clone()
                    });
            }
        }
    }
    for devices in inventory.pools.values_mut() {
        devices.sort_by_key(|d| d.pci);
    }
    Ok(inventory)
}

/// The first selector of `resource` that matches `vf` when `drivers` is not looked at.
fn matches_without_drivers<'a>(
    sysfs: &Sysfs,
    resource: &'a ResourceConfig,
    vf: &Vf,
) -> Result<Option<&'a Selector>, SysfsError> {
    for s in &resource.selectors {
        let relaxed = Selector {
            drivers: Vec::new(),
            ..s.clone()
        };
        if matches(sysfs, &relaxed, vf)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

fn device(vf: &Vf, pf: Option<&Pf>, selector: Option<&Selector>) -> PoolDevice {
    let unhealthy = if vf.driver.is_none() {
        Some(Unhealthy::NoDriver)
    } else {
        pf.filter(|p| p.link_up == Some(false))
            .map(|pf| Unhealthy::PfLinkDown {
                pf: pf.name.clone().unwrap_or_else(|| pf.pci.to_string()),
            })
    };
    PoolDevice {
        pci: vf.pci,
        pf_pci: vf.pf_pci,
        pf_name: vf.pf_name.clone(),
        index: vf.index,
        driver: vf.driver.clone(),
        numa_node: vf.numa_node.or(pf.and_then(|p| p.numa_node)),
        iommu_group: vf.iommu_group,
        need_vhost_net: selector.is_some_and(|s| s.need_vhost_net),
        unhealthy,
    }
}

/// What changed in one pool between two passes, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PoolChanges {
    pub added: Vec<PciAddress>,
    pub removed: Vec<PciAddress>,
    /// Devices that became unhealthy, with the reason.
    pub now_unhealthy: Vec<(PciAddress, Unhealthy)>,
    pub now_healthy: Vec<PciAddress>,
}

impl PoolChanges {
    pub fn is_empty(&self) -> bool {
        *self == PoolChanges::default()
    }
}

/// The changes of `resource` from `before` to `after`.
pub fn changes(before: &Inventory, after: &Inventory, resource: &str) -> PoolChanges {
    let old: BTreeMap<PciAddress, &PoolDevice> =
        before.pool(resource).iter().map(|d| (d.pci, d)).collect();
    let new: BTreeMap<PciAddress, &PoolDevice> =
        after.pool(resource).iter().map(|d| (d.pci, d)).collect();
    let mut c = PoolChanges::default();
    for (pci, d) in &new {
        match old.get(pci) {
            None => c.added.push(*pci),
            Some(o) => match (&o.unhealthy, &d.unhealthy) {
                (None, Some(why)) => c.now_unhealthy.push((*pci, why.clone())),
                (Some(_), None) => c.now_healthy.push(*pci),
                _ => {}
            },
        }
    }
    c.removed = old
        .keys()
        .filter(|p| !new.contains_key(p))
        .copied()
        .collect();
    c
}

/// The inventory as shared between the poll loop and the gRPC services.
pub type Shared = Arc<Inventory>;
