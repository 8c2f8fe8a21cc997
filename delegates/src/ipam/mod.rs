//! In-process IPAM for Plexus's delegates.
//!
//! A delegate calls these with its own request and parsed network configuration (the whole
//! config bytes are in `req.config`, as the reference plugins hand their full config to their
//! IPAM plugin). `host-local` and `static` run in-process; any other IPAM type is executed from
//! `CNI_PATH` like a runtime would. A configuration without an `ipam` section yields an error
//! that [`is_missing`] recognises (macvlan treats that as L2-only).

pub mod error;
pub mod host_local;
pub mod static_ipam;
mod util;

use crate::cni::exec::exec_plugin;
use crate::cni::{CniError, CniResult, Command, ErrorCode, NetConf, Request};

pub use error::IpamError;

/// The message of the "no IPAM configured" error; see [`is_missing`].
pub const MISSING_IPAM_MSG: &str = "network configuration has no ipam section with a type";

/// The IPAM types served in-process.
pub const HOST_LOCAL: &str = "host-local";
pub const STATIC: &str = "static";

/// Whether `err` is the "no IPAM configured" error of this module.
pub fn is_missing(err: &CniError) -> bool {
    err.is(ErrorCode::InvalidConfig) && err.msg == MISSING_IPAM_MSG
}

/// Whether `conf` configures any IPAM.
pub fn is_configured(conf: &NetConf) -> bool {
    conf.ipam_type().is_some()
}

enum Kind<'a> {
    HostLocal,
    Static,
    External(&'a str),
}

fn kind(conf: &NetConf) -> Result<Kind<'_>, CniError> {
    match conf.ipam_type() {
        None => Err(IpamError::Missing.into()),
        Some(HOST_LOCAL) => Ok(Kind::HostLocal),
        Some(STATIC) => Ok(Kind::Static),
        Some(other) => Ok(Kind::External(other)),
    }
}

/// Run an external IPAM plugin for `command` with the delegate's full configuration.
fn exec(plugin: &str, req: &Request, command: Command) -> Result<Option<CniResult>, CniError> {
    let mut req = req.clone();
    req.command = command;
    exec_plugin(plugin, &req, &req.config)
}

/// ADD: addresses, routes and DNS for the attachment (no interfaces).
pub fn add(req: &Request, conf: &NetConf) -> Result<CniResult, CniError> {
    match kind(conf)? {
        Kind::HostLocal => Ok(host_local::add(req, conf)?),
        Kind::Static => Ok(static_ipam::add(conf, &req.args)?),
        Kind::External(t) => {
            let mut result = exec(t, req, Command::Add)?.ok_or_else(|| {
                CniError::new(
                    ErrorCode::Delegate,
                    format!("IPAM plugin {t:?} returned no result"),
                )
            })?;
            result.interfaces.clear();
            for ip in &mut result.ips {
                ip.interface = None;
            }
            Ok(result)
        }
    }
}

/// DEL: release what ADD reserved. Idempotent.
pub fn del(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    match kind(conf)? {
        Kind::HostLocal => Ok(host_local::del(req, conf)?),
        Kind::Static => Ok(()),
        Kind::External(t) => exec(t, req, Command::Del).map(drop),
    }
}

/// CHECK: host-local: the lease of (container, ifname) still exists; static: the config is
/// valid (and agrees with a prevResult).
pub fn check(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    match kind(conf)? {
        Kind::HostLocal => Ok(host_local::check(req, conf)?),
        Kind::Static => Ok(static_ipam::check(conf, &req.args, &req.ifname)?),
        Kind::External(t) => exec(t, req, Command::Check).map(drop),
    }
}

/// GC: release every lease whose attachment is not in `cni.dev/valid-attachments`.
pub fn gc(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    match kind(conf)? {
        Kind::HostLocal => Ok(host_local::gc(req, conf)?),
        Kind::Static => Ok(()),
        Kind::External(t) => exec(t, req, Command::Gc).map(drop),
    }
}

/// STATUS: code 50 when the data directory is unusable, 51 when some range set is exhausted.
pub fn status(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    match kind(conf)? {
        Kind::HostLocal => match host_local::status(conf)? {
            Ok(()) => Ok(()),
            Err(host_local::Unavailable::DataDir(e)) => {
                Err(CniError::new(ErrorCode::PluginNotAvailable, e.to_string()))
            }
            Err(host_local::Unavailable::Exhausted(e)) => {
                Err(CniError::new(ErrorCode::IpExhausted, e.to_string()))
            }
        },
        Kind::Static => static_ipam::StaticConfig::load(conf, &req.args)
            .map(drop)
            .map_err(Into::into),
        Kind::External(t) => exec(t, req, Command::Status).map(drop),
    }
}
