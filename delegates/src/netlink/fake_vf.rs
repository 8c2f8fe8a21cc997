//! The fake's link attribute changes, SR-IOV PFs and VF settings, and physical links going
//! back to the host when their namespace dies (see the [`super`] module docs).

use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::{FakeLink, FakeNs, FakeWorld, check_name, enodev, link_what, ns_of};
use crate::netlink::{MacAddr, NetlinkError, VfConfig, VfSetting, validate_ifname};

/// The smallest MTU the kernel accepts for an Ethernet device.
const MIN_MTU: u32 = 68;

impl FakeWorld {
    /// Make `path` name the host namespace as a `move_link` target (production code moves a
    /// VF back with the host's `/proc/self/ns/net`).
    pub fn set_host_path(&mut self, path: impl Into<PathBuf>) {
        self.host_path = Some(path.into());
    }

    /// The namespace key a `move_link` target path refers to.
    pub(super) fn netns_key(&self, target: &Path) -> Option<PathBuf> {
        if self.host_path.as_deref() == Some(target) {
            None
        } else {
            Some(target.to_path_buf())
        }
    }

    /// Seed an up SR-IOV PF `name` with `num_vfs` VFs in [`VfConfig::clean`] state; returns its
    /// index.
    pub fn add_pf(&mut self, ns: Option<&Path>, name: &str, num_vfs: u32) -> u32 {
        let index = self.add_link(ns, name);
        if let Some(l) = self.ns_mut(ns).and_then(|n| n.by_name_mut(name)) {
            l.vfs = (0..num_vfs).map(VfConfig::clean).collect();
        }
        index
    }

    /// Seed an up VF netdev `name` (like [`FakeWorld::add_link`]) whose parent device is the
    /// VF's PCI address `pci`, so it returns to the host when its namespace dies; returns its
    /// index.
    pub fn add_vf_netdev(&mut self, ns: Option<&Path>, name: &str, pci: &str) -> u32 {
        let index = self.add_link(ns, name);
        self.update_link(ns, name, |l| l.parent_device = Some(pci.to_owned()));
        index
    }

    /// VF `index` of PF `pf` in `ns`.
    pub fn vf(&self, ns: Option<&Path>, pf: &str, index: u32) -> Option<VfConfig> {
        self.ns(ns)
            .and_then(|n| n.by_name(pf))
            .and_then(|l| l.vfs.iter().find(|v| v.index == index).cloned())
    }

    /// Overwrite a VF's settings without recording a call (seeding an administrator's state).
    pub fn set_vf_config(&mut self, ns: Option<&Path>, pf: &str, config: VfConfig) {
        if let Some(v) = self
            .ns_mut(ns)
            .and_then(|n| n.by_name_mut(pf))
            .and_then(|l| l.vfs.iter_mut().find(|v| v.index == config.index))
        {
            *v = config;
        }
    }
}

/// Move every link with a parent device out of the dying namespace `ns` into the host: down,
/// addresses flushed, renamed `dev<index>` when its name is taken there.
pub(super) fn return_physical_links(st: &mut FakeWorld, ns: &mut FakeNs) {
    let (physical, rest): (Vec<FakeLink>, Vec<FakeLink>) = std::mem::take(&mut ns.links)
        .into_iter()
        .partition(|l| l.info.parent_device.is_some() && l.info.index != 1);
    ns.links = rest;
    let host = ns_of(st, &None);
    for mut l in physical {
        l.addrs.clear();
        l.info.up = false;
        l.info.oper_up = false;
        if host.by_name(&l.info.name).is_some() {
            l.info.name = format!("dev{}", l.info.index);
        }
        host.links.push(l);
    }
}

fn link_mut<'a>(
    st: &'a mut FakeWorld,
    ns: &Option<PathBuf>,
    op: &'static str,
    name: &str,
) -> Result<&'a mut FakeLink, NetlinkError> {
    check_name(op, ns, name)?;
    ns_of(st, ns)
        .by_name_mut(name)
        .ok_or_else(|| enodev(op, link_what(ns, name)))
}

pub(super) fn set_link_down(
    st: &mut FakeWorld,
    ns: &Option<PathBuf>,
    name: &str,
) -> Result<(), NetlinkError> {
    let l = link_mut(st, ns, "set_link_down", name)?;
    l.info.up = false;
    l.info.oper_up = false;
    Ok(())
}

pub(super) fn rename_link(
    st: &mut FakeWorld,
    ns: &Option<PathBuf>,
    name: &str,
    new_name: &str,
) -> Result<(), NetlinkError> {
    const OP: &str = "rename_link";
    let what = || format!("{} -> {new_name:?}", link_what(ns, name));
    validate_ifname(new_name).map_err(|reason| NetlinkError::Invalid {
        op: OP,
        what: what(),
        reason,
    })?;
    let up = link_mut(st, ns, OP, name)?.info.up;
    if name == new_name {
        return Ok(());
    }
    if ns_of(st, ns).by_name(new_name).is_some() {
        return Err(NetlinkError::AlreadyExists {
            op: OP,
            what: what(),
        });
    }
    if up {
        return Err(NetlinkError::from_errno(OP, what(), Errno::EBUSY as i32));
    }
    let n = ns_of(st, ns);
    for r in &mut n.routes {
        if r.oif.as_deref() == Some(name) {
            r.oif = Some(new_name.to_owned());
        }
    }
    let renamed_keys: Vec<(String, String)> = n
        .sysctls
        .iter()
        .filter(|(k, _)| k.split('/').nth(3) == Some(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in renamed_keys {
        n.sysctls.remove(&k);
        let parts: Vec<&str> = k.split('/').collect();
        let mut parts: Vec<String> = parts.into_iter().map(str::to_owned).collect();
        parts[3] = new_name.to_owned();
        n.sysctls.insert(parts.join("/"), v);
    }
    if let Some(l) = n.by_name_mut(name) {
        l.info.name = new_name.to_owned();
    }
    Ok(())
}

pub(super) fn set_link_mtu(
    st: &mut FakeWorld,
    ns: &Option<PathBuf>,
    name: &str,
    mtu: u32,
) -> Result<(), NetlinkError> {
    const OP: &str = "set_link_mtu";
    let l = link_mut(st, ns, OP, name)?;
    if mtu < MIN_MTU || l.info.max_mtu.is_some_and(|m| mtu > m) {
        return Err(NetlinkError::from_errno(
            OP,
            format!("MTU {mtu} of {}", link_what(ns, name)),
            Errno::EINVAL as i32,
        ));
    }
    l.info.mtu = mtu;
    Ok(())
}

pub(super) fn set_link_mac(
    st: &mut FakeWorld,
    ns: &Option<PathBuf>,
    name: &str,
    mac: MacAddr,
) -> Result<(), NetlinkError> {
    const OP: &str = "set_link_mac";
    let l = link_mut(st, ns, OP, name)?;
    if !mac.is_valid_unicast() {
        return Err(NetlinkError::from_errno(
            OP,
            format!("MAC {mac} of {}", link_what(ns, name)),
            Errno::EADDRNOTAVAIL as i32,
        ));
    }
    l.info.mac = Some(mac);
    Ok(())
}

pub(super) fn vfs(
    st: &mut FakeWorld,
    ns: &Option<PathBuf>,
    pf: &str,
) -> Result<Vec<VfConfig>, NetlinkError> {
    Ok(link_mut(st, ns, "vfs", pf)?.vfs.clone())
}

pub(super) fn set_vf(
    st: &mut FakeWorld,
    ns: &Option<PathBuf>,
    pf: &str,
    vf: u32,
    setting: &VfSetting,
) -> Result<(), NetlinkError> {
    const OP: &str = "set_vf";
    let what = || format!("VF {vf} {setting} on {}", link_what(ns, pf));
    setting.validate().map_err(|reason| NetlinkError::Invalid {
        op: OP,
        what: what(),
        reason,
    })?;
    let l = link_mut(st, ns, OP, pf)?;
    if l.vfs.is_empty() {
        // a netdev without SR-IOV has no ndo_set_vf_* at all
        return Err(NetlinkError::from_errno(
            OP,
            what(),
            Errno::EOPNOTSUPP as i32,
        ));
    }
    let Some(config) = l.vfs.iter_mut().find(|c| c.index == vf) else {
        return Err(NetlinkError::from_errno(OP, what(), Errno::EINVAL as i32));
    };
    config.apply(setting);
    Ok(())
}
