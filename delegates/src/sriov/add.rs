//! ADD: validate everything, lock the VF, record its state durably, then apply the settings
//! through the PF, move the netdev into the pod under its final name in one request, run IPAM
//! and wait briefly for carrier. A failure undoes exactly what was done, in reverse.

use std::path::Path;
use std::time::{Duration, Instant};

use super::config::SriovConfig;
use super::plugin::SriovPlugin;
use super::record::{Changes, NetdevState, Original, Owner, RECORD_VERSION, VfRecord};
use super::released::Released;
use super::restore::{pf_name, restore};
use super::store::VfLock;
use super::sysfs::{PciAddress, Vf};
use crate::cni::{CniError, CniResult, ErrorCode, Interface, NetConf, Request};
use crate::ipam;
use crate::link::attach::ensure_absent;
use crate::link::iface::configure_iface;
use crate::link::{ADDRESS_SYSCTLS, OpenError, provider::netlink_error};
use crate::netlink::{Netlink, VfConfig};

/// How often to look at the carrier while waiting for it.
const CARRIER_POLL: Duration = Duration::from_millis(20);

pub(super) fn add(p: &SriovPlugin, req: &Request) -> Result<CniResult, CniError> {
    let conf = NetConf::parse(&req.config)?;
    let cfg = SriovConfig::parse(req, &conf)?;
    let path = req
        .netns
        .as_deref()
        .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD"))?;
    let pod = p.netdevs.netns(path).map_err(OpenError::into_cni)?;
    let lock = p.state.lock(&find_vf(p, &cfg.device_id)?.pci)?;
    if let Some(held) = p.state.load(&lock)? {
        take_over(p, &lock, &held)?;
    }
    // read after a take-over: the VF's netdev may just have come back under another name
    let vf = find_vf(p, &cfg.device_id)?;
    let pf = vf.pf_name.clone().ok_or_else(|| {
        CniError::invalid_config(format!(
            "deviceID: VF {}: its PF {} has no netdev in the host network namespace",
            vf.pci, vf.pf_pci
        ))
    })?;
    let userspace = vf.is_userspace_driver();
    let netdev = if userspace {
        None
    } else {
        Some(vf.netdev.clone().ok_or_else(|| no_netdev(&vf))?)
    };
    if userspace && cfg.mtu.is_some() {
        tracing::warn!(
            vf = %vf.pci,
            "mtu ignored: VF is on userspace driver {}",
            vf.driver.as_deref().unwrap_or("")
        );
    }
    if !userspace {
        ensure_absent(pod.as_ref(), &req.ifname, path)?;
    }
    let pf_nl = p.pfs.host()?;
    let live = read_vf(pf_nl.as_ref(), &pf, &vf)?;
    let host = p.netdevs.host()?;
    let netdev = match netdev {
        None => None,
        Some(name) => {
            let l = host
                .link(&name)
                .map_err(|e| netlink_error(&e))?
                .ok_or_else(|| no_netdev(&vf))?;
            Some(NetdevState {
                name,
                mtu: l.mtu,
                mac: l.mac,
                up: l.up,
            })
        }
    };
    let record = VfRecord {
        version: RECORD_VERSION,
        pci: vf.pci,
        pf_pci: vf.pf_pci,
        pf_name: pf,
        vf_index: vf.index,
        driver: vf.driver.clone(),
        userspace,
        owner: Owner {
            container_id: req.container_id.clone(),
            netns: path.to_path_buf(),
            ifname: req.ifname.clone(),
            network: conf.name.clone(),
        },
        changes: Changes {
            vf: cfg.vf_settings(&live),
            mtu: cfg.mtu.filter(|_| !userspace),
            mac: cfg.mac.filter(|_| !userspace),
            moved: !userspace,
        },
        original: Original { vf: live, netdev },
    };
    // durable before the first change: a crash from here on leaves what DEL needs
    p.state.save(&lock, &record)?;
    tracing::info!(
        vf = %vf.pci, pf = %record.pf_name, index = vf.index, userspace, "attaching VF"
    );
    let mut progress = Progress {
        done: VfRecord {
            changes: Changes::default(),
            ..record.clone()
        },
        leased: false,
    };
    let env = Env {
        p,
        req,
        conf: &conf,
        cfg: &cfg,
        path,
        pod: pod.as_ref(),
        host: host.as_ref(),
        pf_nl: pf_nl.as_ref(),
    };
    match env.attach(&record, &mut progress) {
        Ok(result) => Ok(result),
        Err(cause) => Err(rollback(p, req, &conf, &lock, &progress, cause)),
    }
}

/// The VF at `pci` in sysfs; a missing or malformed one is a configuration error naming it.
pub(super) fn find_vf(p: &SriovPlugin, pci: &PciAddress) -> Result<Vf, CniError> {
    p.sysfs
        .vf(pci)
        .map_err(|e| CniError::invalid_config(format!("deviceID: {pci}: {e}")))
}

fn no_netdev(vf: &Vf) -> CniError {
    let why = match vf.driver.as_deref() {
        None => "it is bound to no driver".to_string(),
        Some(d) => format!(
            "its driver {d} is not a userspace one, so it should have one (in use by another \
             pod?)"
        ),
    };
    CniError::invalid_config(format!(
        "deviceID: VF {} has no netdev in the host network namespace: {why}",
        vf.pci
    ))
}

/// The VF's settings as its PF reports them.
pub(super) fn read_vf(pf_nl: &dyn Netlink, pf: &str, vf: &Vf) -> Result<VfConfig, CniError> {
    pf_nl
        .vfs(pf)
        .map_err(|e| netlink_error(&e))?
        .into_iter()
        .find(|c| c.index == vf.index)
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::Netlink,
                format!(
                    "PF {pf} reports no VF {} (the VF {} of sysfs)",
                    vf.index, vf.pci
                ),
            )
        })
}

/// A record already holds the VF: refuse while its owner's netns lives; otherwise the owner is
/// gone without a DEL, so put the VF back as that record says and take it.
fn take_over(p: &SriovPlugin, lock: &VfLock, held: &VfRecord) -> Result<(), CniError> {
    let owner = &held.owner;
    match p.netdevs.netns(&owner.netns) {
        Err(OpenError::NetnsGone(_)) => {}
        Ok(_) | Err(OpenError::Other(_)) => {
            return Err(CniError::new(
                ErrorCode::TryAgainLater,
                format!(
                    "deviceID: VF {} is in use by container {} (netns {}, interface {}); its \
                     DEL releases it",
                    held.pci,
                    owner.container_id,
                    owner.netns.display(),
                    owner.ifname
                ),
            ));
        }
    }
    tracing::warn!(
        vf = %held.pci, stale_owner = %owner.container_id,
        "VF held by a container whose netns is gone: restoring it from that record first"
    );
    restore(p, held)
        .map_err(|e| e.context(format!("reclaim VF {} from a stale record", held.pci)))?;
    // remembered, should the vanished owner's DEL still come (the new record replaces it)
    p.state.release(lock, &Released::of(held))?;
    Ok(())
}

/// What has been done so far, for the rollback.
struct Progress {
    /// The record with only the changes already made.
    done: VfRecord,
    leased: bool,
}

struct Env<'a> {
    p: &'a SriovPlugin,
    req: &'a Request,
    conf: &'a NetConf,
    cfg: &'a SriovConfig,
    path: &'a Path,
    pod: &'a dyn Netlink,
    host: &'a dyn Netlink,
    pf_nl: &'a dyn Netlink,
}

impl Env<'_> {
    fn attach(&self, rec: &VfRecord, progress: &mut Progress) -> Result<CniResult, CniError> {
        for setting in &rec.changes.vf {
            self.pf_nl
                .set_vf(&rec.pf_name, rec.vf_index, setting)
                .map_err(|e| {
                    CniError::new(
                        ErrorCode::Netlink,
                        format!(
                            "cannot set {} of VF {} (PF {} VF {}) to {setting}: {e}",
                            setting.field(),
                            rec.pci,
                            rec.pf_name,
                            rec.vf_index
                        ),
                    )
                })?;
            progress.done.changes.vf.push(*setting);
        }
        let mut iface = Interface {
            name: self.req.ifname.clone(),
            sandbox: self.path.display().to_string(),
            pci_id: rec.pci.to_string(),
            ..Default::default()
        };
        match &rec.original.netdev {
            None => {
                // nothing to configure: report the MAC the VF will use, if the PF pins one
                let admin = Some(rec.original.vf.mac).filter(|m| !m.is_zero());
                iface.mac = self
                    .cfg
                    .mac
                    .or(admin)
                    .map(|m| m.to_string())
                    .unwrap_or_default();
            }
            Some(netdev) => {
                self.move_netdev(rec, netdev, progress)?;
            }
        }
        let mut result = CniResult {
            interfaces: vec![iface],
            ..Default::default()
        };
        if self.cfg.has_ipam {
            let leased = ipam::add(self.req, self.conf)?;
            progress.leased = true;
            if leased.ips.is_empty() {
                return Err(CniError::new(
                    ErrorCode::Ipam,
                    "IPAM plugin returned no IP configuration",
                ));
            }
            result.ips = leased
                .ips
                .into_iter()
                .map(|mut ip| {
                    ip.interface = Some(0);
                    ip
                })
                .collect();
            result.routes = leased.routes;
        }
        if rec.original.netdev.is_some() {
            self.configure_in_pod(&mut result)?;
        }
        result.dns = self.conf.dns.clone().unwrap_or_default();
        Ok(result)
    }

    /// Host side: down (drivers refuse a MAC change while up), MAC, MTU, then into the pod
    /// under its final name in one request.
    fn move_netdev(
        &self,
        rec: &VfRecord,
        netdev: &NetdevState,
        progress: &mut Progress,
    ) -> Result<(), CniError> {
        let name = netdev.name.as_str();
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            CniError::new(
                ErrorCode::Netlink,
                format!("cannot {what} of VF netdev {name} ({}): {e}", rec.pci),
            )
        };
        self.host
            .set_link_down(name)
            .map_err(|e| failed("bring down", &e))?;
        if let Some(mac) = rec.changes.mac {
            self.host
                .set_link_mac(name, mac)
                .map_err(|e| failed(&format!("set MAC {mac}"), &e))?;
            progress.done.changes.mac = Some(mac);
        }
        if let Some(mtu) = rec.changes.mtu {
            self.host
                .set_link_mtu(name, mtu)
                .map_err(|e| failed(&format!("set MTU {mtu}"), &e))?;
            progress.done.changes.mtu = Some(mtu);
        }
        self.host
            .move_link(name, self.path, &self.req.ifname)
            .map_err(|e| {
                failed(
                    &format!("move into {} as {}", self.path.display(), self.req.ifname),
                    &e,
                )
            })?;
        progress.done.changes.moved = true;
        Ok(())
    }

    /// Pod side: address sysctls and IPAM's addresses and routes (or just up), then a short
    /// wait for carrier; the MAC and MTU read back go into the result.
    fn configure_in_pod(&self, result: &mut CniResult) -> Result<(), CniError> {
        let ifname = self.req.ifname.as_str();
        if self.cfg.has_ipam {
            for (template, value) in ADDRESS_SYSCTLS {
                let key = template.replace("{if}", ifname);
                if let Err(e) = self.pod.set_sysctl(&key, value)
                    && !(e.is_sysctl_not_found() && key.starts_with("net/ipv6/"))
                {
                    return Err(netlink_error(&e));
                }
            }
            configure_iface(self.pod, ifname, 0, result)?;
        } else {
            self.pod
                .set_link_up(ifname)
                .map_err(|e| netlink_error(&e))?;
        }
        let carrier = wait_for_carrier(self.pod, ifname, self.p.carrier_wait);
        tracing::debug!(ifname, carrier, "VF is up in the pod");
        let link = self
            .pod
            .link(ifname)
            .map_err(|e| netlink_error(&e))?
            .ok_or_else(|| CniError::internal(format!("{ifname} vanished from the pod")))?;
        if let Some(iface) = result.interfaces.first_mut() {
            iface.mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
            iface.mtu = self.cfg.mtu.map(|_| link.mtu);
        }
        Ok(())
    }
}

/// Whether `ifname` reported carrier within `wait` (a VF may need a moment after coming up).
fn wait_for_carrier(nl: &dyn Netlink, ifname: &str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if matches!(nl.link(ifname), Ok(Some(l)) if l.oper_up) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(CARRIER_POLL);
    }
}

/// Undo a failed ADD: the lease, then the VF (see [`restore`]). When everything is back the
/// record gives way to this attachment's tombstone (so the runtime's DEL of the failed ADD
/// leaves the VF alone); otherwise it is kept holding just what is still changed, for DEL to
/// finish.
fn rollback(
    p: &SriovPlugin,
    req: &Request,
    conf: &NetConf,
    lock: &VfLock,
    progress: &Progress,
    cause: CniError,
) -> CniError {
    let mut errors = Vec::new();
    if progress.leased
        && let Err(e) = ipam::del(req, conf)
    {
        errors.push(e.context("release IPAM"));
    }
    if let Err(e) = restore(p, &progress.done) {
        errors.push(e);
    }
    let kept = if errors.is_empty() {
        match p.state.release(lock, &Released::of(&progress.done)) {
            Ok(()) => return cause,
            Err(e) => {
                errors.push(e.into());
                false
            }
        }
    } else {
        p.state.save(lock, &progress.done).is_ok()
    };
    let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
    tracing::error!(
        vf = %progress.done.pci, pf = %pf_name(p, &progress.done),
        "rollback incomplete: {}", msgs.join("; ")
    );
    let mut cause = cause;
    cause.msg = format!(
        "{}; rollback incomplete ({}){}",
        cause.msg,
        msgs.join("; "),
        if kept {
            ": the VF record is kept for DEL"
        } else {
            ""
        }
    );
    cause
}
