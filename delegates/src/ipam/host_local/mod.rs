//! host-local IPAM, in-process and sharing its on-disk state with the reference
//! `host-local` binary (containernetworking-plugins 1.1.x), so both may serve one network.

pub mod allocator;
pub mod config;
pub mod dns;
pub mod store;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::cni::{CniArgs, CniResult, NetConf, Request};
use crate::ipam::error::IpamError;

use self::allocator::{allocate, exhausted};
use self::config::HostLocalConfig;
use self::store::Store;

/// ADD: one address from every range set (requested ones honoured), routes, DNS. On any
/// failure, every lease this call created is released again.
pub fn add(req: &Request, conf: &NetConf) -> Result<CniResult, IpamError> {
    add_with_args(conf, &req.args, &req.container_id, &req.ifname)
}

pub fn add_with_args(
    conf: &NetConf,
    args: &CniArgs,
    container_id: &str,
    ifname: &str,
) -> Result<CniResult, IpamError> {
    let cfg = HostLocalConfig::load(conf, args)?;
    let mut result = CniResult::default();
    if let Some(path) = &cfg.resolv_conf {
        result.dns = dns::read_resolv_conf(path)?;
    }
    let store = Store::open(&cfg.data_dir, &cfg.name)?;
    let locked = store.lock()?;

    let mut requested: Vec<IpAddr> = cfg.requested.clone();
    let mut reserved: Vec<IpAddr> = Vec::new();
    let rollback = |reserved: &[IpAddr]| {
        for ip in reserved {
            if let Err(e) = locked.release(*ip) {
                tracing::warn!(%ip, container = container_id, ifname, "rollback of lease failed: {e}");
            }
        }
    };
    for (idx, set) in cfg.ranges.iter().enumerate() {
        let wanted = requested
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|i| requested.remove(i));
        match allocate(&locked, set, idx, container_id, ifname, wanted) {
            Ok(ip) => {
                reserved.push(ip.address.addr());
                result.ips.push(ip);
            }
            Err(e) => {
                rollback(&reserved);
                return Err(e.context(format!("failed to allocate for range {idx}")));
            }
        }
    }
    if !requested.is_empty() {
        rollback(&reserved);
        let list: Vec<String> = requested.iter().map(IpAddr::to_string).collect();
        return Err(IpamError::Alloc(format!(
            "failed to allocate all requested IPs: {}",
            list.join(" ")
        )));
    }
    result.routes = cfg.routes;
    Ok(result)
}

/// DEL: release every address of (container, ifname). Nothing to release is success.
pub fn del(req: &Request, conf: &NetConf) -> Result<(), IpamError> {
    let cfg = HostLocalConfig::load(conf, &req.args)?;
    let Some(store) = Store::existing(&cfg.data_dir, &cfg.name) else {
        return Ok(());
    };
    let locked = store.lock()?;
    locked.release_by_id(&req.container_id, &req.ifname)?;
    Ok(())
}

/// CHECK: (container, ifname) still holds at least one address.
pub fn check(req: &Request, conf: &NetConf) -> Result<(), IpamError> {
    let cfg = HostLocalConfig::load(conf, &req.args)?;
    let held = match Store::existing(&cfg.data_dir, &cfg.name) {
        Some(store) => store.lock()?.get_by_id(&req.container_id, &req.ifname)?,
        None => Vec::new(),
    };
    if held.is_empty() {
        return Err(IpamError::Alloc(format!(
            "host-local: Failed to find address added by container {} (ifname {})",
            req.container_id, req.ifname
        )));
    }
    Ok(())
}

/// GC: release every lease whose attachment is not in `cni.dev/valid-attachments`.
pub fn gc(req: &Request, conf: &NetConf) -> Result<(), IpamError> {
    let cfg = HostLocalConfig::load(conf, &req.args)?;
    let valid = conf
        .valid_attachments
        .as_deref()
        .ok_or_else(|| IpamError::Config("cni.dev/valid-attachments is required for GC".into()))?;
    let Some(store) = Store::existing(&cfg.data_dir, &cfg.name) else {
        return Ok(());
    };
    let released = store.lock()?.gc(valid)?;
    if !released.is_empty() {
        tracing::info!(network = %cfg.name, count = released.len(), "GC released stale leases");
    }
    Ok(())
}

/// Why STATUS says the plugin cannot serve ADD.
#[derive(Debug)]
pub enum Unavailable {
    /// The data directory cannot be created, locked or read (STATUS code 50).
    DataDir(IpamError),
    /// Some range set has no free address left (STATUS code 51).
    Exhausted(IpamError),
}

/// STATUS: the data directory is usable and every range set still has a free address.
pub fn status(conf: &NetConf) -> Result<Result<(), Unavailable>, IpamError> {
    let cfg = HostLocalConfig::load(conf, &CniArgs::default())?;
    let store = match Store::open(&cfg.data_dir, &cfg.name) {
        Ok(s) => s,
        Err(e) => return Ok(Err(Unavailable::DataDir(e))),
    };
    let leases = match store.lock().and_then(|l| l.leases()) {
        Ok(l) => l,
        Err(e) => return Ok(Err(Unavailable::DataDir(e))),
    };
    for set in &cfg.ranges {
        let capacity = set
            .0
            .iter()
            .fold(0u128, |n, r| n.saturating_add(r.capacity()));
        let used = leases
            .iter()
            .filter(|l| set.range_for(l.ip).is_some_and(|r| r.is_candidate(l.ip)))
            .count() as u128;
        if used >= capacity {
            return Ok(Err(Unavailable::Exhausted(exhausted(set))));
        }
    }
    Ok(Ok(()))
}
