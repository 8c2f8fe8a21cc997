//! DEL and GC. DEL releases the lease and, when this attachment holds the VF, puts the VF back
//! and replaces the record with this attachment's tombstone; it is idempotent and works with
//! the pod's netns gone. A VF held by another attachment is never touched. Without a record,
//! a DEL of the attachment named by the tombstone has nothing left to do; otherwise the state
//! was lost, and DEL clears what this configuration would have put on the VF, so no pod's VLAN
//! or MAC stays behind.

use super::config::{SriovConfig, lenient_device_id};
use super::plugin::SriovPlugin;
use super::record::VfRecord;
use super::released::Released;
use super::restore::{is_vf, restore};
use super::store::VfLock;
use super::sysfs::PciAddress;
use crate::cni::{CniError, NetConf, Request};
use crate::ipam;
use crate::link::{OpenError, join_errors, provider::netlink_error};
use crate::netlink::VfConfig;

pub(super) fn del(p: &SriovPlugin, req: &Request) -> Result<(), CniError> {
    let conf = NetConf::parse(&req.config)?;
    let mut errors = Vec::new();
    if ipam::is_configured(&conf)
        && let Err(e) = ipam::del(req, &conf)
    {
        errors.push(e.context("IPAM"));
    }
    match held_vf(p, req) {
        Ok(Some((lock, Some(rec)))) if rec.owner.is(&req.container_id, &req.ifname) => {
            tracing::info!(vf = %rec.pci, "restoring VF");
            match restore(p, &rec) {
                Ok(()) => {
                    if let Err(e) = p.state.release(&lock, &Released::of(&rec)) {
                        errors.push(e.into());
                    }
                }
                // the record stays: a later DEL finishes the job
                Err(e) => errors.push(e.context(format!("restore VF {}", rec.pci))),
            }
        }
        Ok(Some((_, Some(rec)))) => {
            tracing::info!(
                vf = %rec.pci, owner = %rec.owner.container_id, owner_ifname = %rec.owner.ifname,
                "VF is held by another attachment: not touching it"
            );
        }
        Ok(Some((lock, None))) => match p.state.load_released(&lock) {
            Some(done) if done.by(&req.container_id, &req.ifname, &conf.name) => {
                tracing::info!(
                    vf = %done.pci, released_at_unix = done.released_at_unix,
                    "VF already put back by this attachment: nothing to do"
                );
            }
            _ => {
                if let Err(e) = reset_without_record(p, req, &conf, &lock) {
                    errors.push(e);
                }
            }
        },
        Ok(None) => {}
        Err(e) => errors.push(e),
    }
    join_errors(errors)
}

/// The VF this DEL is about, locked, with its record: the configuration's `deviceID`, else the
/// record this attachment owns (a configuration without one).
fn held_vf(p: &SriovPlugin, req: &Request) -> Result<Option<(VfLock, Option<VfRecord>)>, CniError> {
    let pci = match lenient_device_id(&req.config) {
        Some(pci) => pci,
        None => {
            let own = p
                .state
                .scan()?
                .into_iter()
                .find(|r| r.owner.is(&req.container_id, &req.ifname));
            match own {
                Some(r) => r.pci,
                None => return Ok(None),
            }
        }
    };
    let lock = p.state.lock(&pci)?;
    let rec = p.state.load(&lock)?;
    Ok(Some((lock, rec)))
}

/// No record for the VF and no tombstone of this attachment (the state was lost): clear each
/// setting of this configuration that the VF still carries (its value is the configured one
/// and not the clean one), and bring the netdev home from the pod if it is there. Settings the
/// configuration does not name, or whose value differs from the configured one, are left
/// alone.
fn reset_without_record(
    p: &SriovPlugin,
    req: &Request,
    conf: &NetConf,
    lock: &VfLock,
) -> Result<(), CniError> {
    let pci = lock.pci();
    let Ok(vf) = p.sysfs.vf(&pci) else {
        tracing::info!(vf = %pci, "no record and no such VF in sysfs: nothing to reset");
        return Ok(());
    };
    let mut errors = Vec::new();
    match SriovConfig::parse(req, conf) {
        Ok(cfg) => {
            if let Some(pf) = vf.pf_name.as_deref()
                && let Err(e) = reset_settings(p, &cfg, pf, vf.index, &pci)
            {
                errors.push(e);
            }
        }
        Err(e) => {
            tracing::warn!(
                vf = %pci,
                "no record and an invalid configuration ({e}): VF settings left as they are"
            )
        }
    }
    if let Err(e) = bring_home_unrecorded(p, req, &pci) {
        errors.push(e);
    }
    join_errors(errors)
}

fn reset_settings(
    p: &SriovPlugin,
    cfg: &SriovConfig,
    pf: &str,
    index: u32,
    pci: &PciAddress,
) -> Result<(), CniError> {
    let clean = VfConfig::clean(index);
    if cfg.vf_settings(&clean).is_empty() {
        return Ok(());
    }
    let nl = p.pfs.host()?;
    let vfs = match nl.vfs(pf) {
        Ok(vfs) => vfs,
        // no PF netdev, no VF settings left to clear
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(netlink_error(&e)),
    };
    let Some(live) = vfs.into_iter().find(|c| c.index == index) else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for setting in cfg.vf_settings(&clean) {
        let to = clean.current(&setting);
        if setting.holds_on(&live) && !to.holds_on(&live) {
            tracing::warn!(vf = %pci, "no record: clearing {setting} to {to}");
            if let Err(e) = nl.set_vf(pf, index, &to) {
                errors.push(netlink_error(&e).context(format!("reset VF {pci}")));
            }
        }
    }
    join_errors(errors)
}

/// The pod still has the VF as its interface (the kernel says so): move it to the host under
/// `dev<ifindex>`, the name the kernel gives a device it returns from a dying namespace (the
/// original name is unknown without a record).
fn bring_home_unrecorded(p: &SriovPlugin, req: &Request, pci: &PciAddress) -> Result<(), CniError> {
    let Some(path) = req.netns.as_deref() else {
        return Ok(());
    };
    let pod = match p.netdevs.netns(path) {
        Ok(pod) => pod,
        Err(OpenError::NetnsGone(_)) => return Ok(()),
        Err(OpenError::Other(e)) => return Err(e),
    };
    let Some(link) = pod.link(&req.ifname).map_err(|e| netlink_error(&e))? else {
        return Ok(());
    };
    if !is_vf(&link, pci) {
        return Ok(());
    }
    let name = format!("dev{}", link.index);
    tracing::warn!(vf = %pci, "no record: moving {} back to the host as {name}", link.name);
    pod.move_link(&link.name, &p.host_netns, &name)
        .map_err(|e| netlink_error(&e).context(format!("move VF {pci} back to the host")))
}

/// GC: release stale leases, and put back every VF this network holds for an attachment that
/// is not in `cni.dev/valid-attachments`.
pub(super) fn gc(p: &SriovPlugin, req: &Request) -> Result<(), CniError> {
    let conf = NetConf::parse(&req.config)?;
    let mut errors = Vec::new();
    if ipam::is_configured(&conf)
        && let Err(e) = ipam::gc(req, &conf)
    {
        errors.push(e.context("IPAM"));
    }
    if let Some(valid) = &conf.valid_attachments {
        let stale = |r: &VfRecord| {
            r.owner.network == conf.name
                && !valid.iter().any(|v| r.owner.is(&v.container_id, &v.ifname))
        };
        for candidate in p.state.scan()?.into_iter().filter(|r| stale(r)) {
            let lock = p.state.lock(&candidate.pci)?;
            let Some(rec) = p.state.load(&lock)?.filter(|r| stale(r)) else {
                continue;
            };
            tracing::info!(vf = %rec.pci, owner = %rec.owner.container_id, "GC: restoring VF");
            match restore(p, &rec) {
                Ok(()) => {
                    if let Err(e) = p.state.release(&lock, &Released::of(&rec)) {
                        errors.push(e.into());
                    }
                }
                Err(e) => errors.push(e.context(format!("GC of VF {}", rec.pci))),
            }
        }
    }
    join_errors(errors)
}
