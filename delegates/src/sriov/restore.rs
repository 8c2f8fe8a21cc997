//! Putting a VF back as its record says: PF-side settings first (some drivers refuse a VF MAC
//! change while the PF still pins an administrative MAC), then the netdev home from the pod
//! under its original name, then its MTU, MAC and up state.

use std::time::{Duration, Instant};

use super::plugin::SriovPlugin;
use super::record::{NetdevState, VfRecord};
use super::sysfs::{PciAddress, SysfsError};
use crate::cni::{CniError, ErrorCode};
use crate::link::{OpenError, join_errors, provider::netlink_error};
use crate::netlink::{LinkInfo, Netlink};

/// How often to look for a VF coming back from a dying namespace.
const POLL: Duration = Duration::from_millis(50);

/// Undo `rec.changes`. Every step is tried; the failures are reported together.
pub(super) fn restore(p: &SriovPlugin, rec: &VfRecord) -> Result<(), CniError> {
    if let Err(SysfsError::NoSuchDevice { .. }) = p.sysfs.vf(&rec.pci) {
        // its PF dropped its VFs (sriov_numvfs): nothing is left to put back
        tracing::warn!(vf = %rec.pci, "VF no longer exists: nothing to restore");
        return Ok(());
    }
    let mut errors = Vec::new();
    restore_pf_side(p, rec, &mut errors);
    if let Some(orig) = &rec.original.netdev {
        restore_netdev(p, rec, orig, &mut errors);
    }
    join_errors(errors)
}

/// The PF's netdev now (it may have been renamed since ADD), else the one recorded.
pub(super) fn pf_name(p: &SriovPlugin, rec: &VfRecord) -> String {
    p.sysfs
        .pf(&rec.pf_pci)
        .ok()
        .and_then(|pf| pf.name)
        .unwrap_or_else(|| rec.pf_name.clone())
}

fn restore_pf_side(p: &SriovPlugin, rec: &VfRecord, errors: &mut Vec<CniError>) {
    if rec.changes.vf.is_empty() {
        return;
    }
    let nl = match p.pfs.host() {
        Ok(nl) => nl,
        Err(e) => return errors.push(e),
    };
    let pf = pf_name(p, rec);
    for setting in rec.changes.vf.iter().rev() {
        let back = rec.original.vf.current(setting);
        if let Err(e) = nl.set_vf(&pf, rec.vf_index, &back) {
            errors.push(netlink_error(&e).context(format!("restore VF {} ({back})", rec.pci)));
        }
    }
}

/// Whether `link` can be the netdev of VF `pci`: its parent device is that VF, or the kernel
/// does not say (a virtual stand-in in tests, or a kernel without `IFLA_PARENT_DEV_NAME`).
pub(super) fn may_be_vf(link: &LinkInfo, pci: &PciAddress) -> bool {
    link.parent_device
        .as_deref()
        .is_none_or(|d| d == pci.to_string())
}

/// Whether the kernel says `link` is the netdev of VF `pci`.
pub(super) fn is_vf(link: &LinkInfo, pci: &PciAddress) -> bool {
    link.parent_device.as_deref() == Some(&pci.to_string())
}

fn restore_netdev(p: &SriovPlugin, rec: &VfRecord, orig: &NetdevState, errors: &mut Vec<CniError>) {
    let host = match p.netdevs.host() {
        Ok(h) => h,
        Err(e) => return errors.push(e),
    };
    let mut home = None;
    let mut netns_gone = false;
    if rec.changes.moved {
        match p.netdevs.netns(&rec.owner.netns) {
            Ok(pod) => match pod.link(&rec.owner.ifname) {
                Ok(Some(l)) if may_be_vf(&l, &rec.pci) => {
                    match move_home(p, pod.as_ref(), host.as_ref(), &l, &orig.name) {
                        Ok(name) => home = Some(name),
                        Err(e) => return errors.push(e),
                    }
                }
                // not in the pod: already back (a repeated DEL), or renamed in there
                Ok(_) => {}
                Err(e) => return errors.push(netlink_error(&e)),
            },
            Err(OpenError::NetnsGone(_)) => netns_gone = true,
            Err(OpenError::Other(e)) => return errors.push(e),
        }
    }
    let name = match home {
        Some(n) => n,
        None => match find_in_host(p, host.as_ref(), &rec.pci, &orig.name, netns_gone) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return errors.push(CniError::new(
                    ErrorCode::Netlink,
                    format!(
                        "VF {} has no netdev in the host network namespace (was {}; its pod \
                         netns {} {}); DEL again once it is back",
                        rec.pci,
                        orig.name,
                        rec.owner.netns.display(),
                        if netns_gone {
                            "is gone"
                        } else {
                            "does not hold it"
                        },
                    ),
                ));
            }
            Err(e) => return errors.push(e),
        },
    };
    let name = rename_home(host.as_ref(), &name, &orig.name, errors);
    if rec.changes.mtu.is_some()
        && let Err(e) = host.set_link_mtu(&name, orig.mtu)
    {
        errors.push(netlink_error(&e).context("restore MTU"));
    }
    if rec.changes.mac.is_some()
        && let Some(mac) = orig.mac
        && let Err(e) = host.set_link_mac(&name, mac)
    {
        errors.push(netlink_error(&e).context("restore MAC"));
    }
    if orig.up
        && let Err(e) = host.set_link_up(&name)
    {
        errors.push(netlink_error(&e).context("bring the VF netdev up"));
    }
}

/// Move `link` from the pod into the host under `name` (one request); when that name is taken
/// in the host, under `dev<ifindex>` as the kernel itself would. Returns the name it got.
fn move_home(
    p: &SriovPlugin,
    pod: &dyn Netlink,
    host: &dyn Netlink,
    link: &LinkInfo,
    name: &str,
) -> Result<String, CniError> {
    let failed = |e: &dyn std::fmt::Display| {
        CniError::new(
            ErrorCode::Netlink,
            format!(
                "cannot move VF netdev {} back to the host as {name}: {e}",
                link.name
            ),
        )
    };
    let taken = host.link(name).map_err(|e| failed(&e))?.is_some();
    let target = if taken {
        let fallback = format!("dev{}", link.index);
        tracing::warn!(
            "{name} is taken in the host; VF netdev {} comes back as {fallback}",
            link.name
        );
        fallback
    } else {
        name.to_string()
    };
    pod.move_link(&link.name, &p.host_netns, &target)
        .map_err(|e| failed(&e))?;
    Ok(target)
}

/// The VF's netdev in the host: the name sysfs shows for its PCI address, else a link named
/// `orig` whose parent device is the VF. After the pod's netns died the kernel may still be
/// returning it, so keep looking for `p.return_wait`.
fn find_in_host(
    p: &SriovPlugin,
    host: &dyn Netlink,
    pci: &PciAddress,
    orig: &str,
    wait: bool,
) -> Result<Option<String>, CniError> {
    let deadline = Instant::now() + if wait { p.return_wait } else { Duration::ZERO };
    loop {
        if let Ok(Some(name)) = p.sysfs.vf_netdev(pci)
            && host.link(&name).map_err(|e| netlink_error(&e))?.is_some()
        {
            return Ok(Some(name));
        }
        if let Some(l) = host.link(orig).map_err(|e| netlink_error(&e))?
            && is_vf(&l, pci)
        {
            return Ok(Some(l.name));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// Rename `current` to `orig` unless that name is taken (then keep `current`, logged).
fn rename_home(
    host: &dyn Netlink,
    current: &str,
    orig: &str,
    errors: &mut Vec<CniError>,
) -> String {
    if current == orig {
        return current.to_string();
    }
    match host.link(orig) {
        Ok(Some(_)) => {
            tracing::warn!("VF netdev stays {current}: its original name {orig} is taken");
            return current.to_string();
        }
        Ok(None) => {}
        Err(e) => {
            errors.push(netlink_error(&e));
            return current.to_string();
        }
    }
    // the kernel renames only links that are down
    let renamed = host
        .set_link_down(current)
        .and_then(|()| host.rename_link(current, orig));
    match renamed {
        Ok(()) => orig.to_string(),
        Err(e) => {
            errors.push(netlink_error(&e).context(format!("rename {current} back to {orig}")));
            current.to_string()
        }
    }
}
