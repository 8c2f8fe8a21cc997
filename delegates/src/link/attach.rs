//! The shared ADD/DEL/CHECK path of delegates that create one virtual link on a master
//! (macvlan, ipvlan): create it straight in the pod netns, run IPAM, configure it, and undo
//! everything in reverse when a step fails.

use std::path::Path;

use crate::cni::{CniError, CniResult, ErrorCode, Interface, NetConf, Request};
use crate::ipam;
use crate::netlink::{LinkInfo, MacAddr, Netlink, NewLink, NewLinkKind};

use super::iface::{configure_iface, verify_iface};
use super::provider::{NetlinkProvider, OpenError, netlink_error};

/// Where the attachment's addresses come from.
#[derive(Debug, Clone)]
pub enum AddressSource {
    /// No IPAM: an L2-only link, brought up with no address.
    None,
    /// Run the configured IPAM plugin.
    Ipam,
    /// Use the IPs of a chained prevResult (ipvlan without IPAM).
    Prev(CniResult),
}

/// Sysctls for an interface that carries addresses: announce its MAC on address changes.
pub const ADDRESS_SYSCTLS: [(&str, &str); 2] = [
    ("net/ipv4/conf/{if}/arp_notify", "1"),
    ("net/ipv6/conf/{if}/ndisc_notify", "1"),
];

/// A validated link attachment, built by the macvlan or ipvlan config parser.
pub struct LinkPlan {
    /// "macvlan" or "ipvlan", for messages and CHECK.
    pub kind_name: &'static str,
    /// `None`: the interface of the default route in the master's namespace.
    pub master: Option<String>,
    /// The master lives in the container netns.
    pub link_in_container: bool,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// Builds the link kind once the master's index is known.
    pub kind: Box<dyn Fn(u32) -> NewLinkKind>,
    /// `(key template with {if}, value)` written in the pod netns; missing IPv6 keys are skipped.
    pub sysctls: Vec<(&'static str, &'static str)>,
    pub addresses: AddressSource,
}

/// Refuses an ADD whose interface `ifname` already exists in the sandbox `ns` (at `path`).
pub fn ensure_absent(ns: &dyn Netlink, ifname: &str, path: &Path) -> Result<(), CniError> {
    if ns.link(ifname).map_err(|e| netlink_error(&e))?.is_some() {
        return Err(CniError::new(
            ErrorCode::InterfaceExists,
            format!("interface {ifname} already exists in {}", path.display()),
        ));
    }
    Ok(())
}

/// ADD: create, address and bring up `req.ifname` in `req.netns`.
pub fn attach(
    sys: &dyn NetlinkProvider,
    req: &Request,
    conf: &NetConf,
    plan: &LinkPlan,
) -> Result<CniResult, CniError> {
    let path = req
        .netns
        .as_deref()
        .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD"))?;
    let cont = sys.netns(path).map_err(OpenError::into_cni)?;
    let host;
    let parent: &dyn Netlink = if plan.link_in_container {
        cont.as_ref()
    } else {
        host = sys.host()?;
        host.as_ref()
    };
    let master = resolve_master(parent, plan)?;
    if let Some(mtu) = plan.mtu
        && mtu > master.mtu
    {
        return Err(CniError::invalid_config(format!(
            "mtu: {mtu} is larger than master {}'s MTU {}",
            master.name, master.mtu
        )));
    }
    ensure_absent(cont.as_ref(), &req.ifname, path)?;
    let spec = NewLink {
        name: req.ifname.clone(),
        kind: (plan.kind)(master.index),
        mtu: plan.mtu,
        mac: plan.mac,
        target: (!plan.link_in_container).then(|| path.to_path_buf()),
    };
    create_link(
        parent,
        cont.as_ref(),
        path,
        spec,
        &master.name,
        plan.kind_name,
    )?;
    finish(cont.as_ref(), req, conf, plan, path).inspect_err(|_| {
        if let Err(e) = cont.delete_link(&req.ifname) {
            tracing::error!(ifname = %req.ifname, "rollback: cannot delete the new link: {e}");
        }
    })
}

fn resolve_master(parent: &dyn Netlink, plan: &LinkPlan) -> Result<LinkInfo, CniError> {
    let name = match &plan.master {
        Some(m) => m.clone(),
        None => parent
            .default_route_link()
            .map_err(|e| netlink_error(&e))?
            .ok_or_else(|| {
                CniError::invalid_config(
                    "master: not set, and there is no default route to take its interface from",
                )
            })?,
    };
    parent
        .link(&name)
        .map_err(|e| netlink_error(&e))?
        .ok_or_else(|| CniError::invalid_config(format!("master: link {name:?} not found")))
}

/// Create the link under its final name directly in the pod netns. Kernels before 6.10 look
/// the name up in the *creating* namespace too, so a host link called like the pod's interface
/// makes that fail with EEXIST: then create it under a temporary name in the pod netns and
/// rename it there. Either way the link never exists in the host.
fn create_link(
    parent: &dyn Netlink,
    cont: &dyn Netlink,
    path: &Path,
    spec: NewLink,
    master: &str,
    kind: &str,
) -> Result<(), CniError> {
    let failed = |e: &dyn std::fmt::Display| {
        CniError::new(
            ErrorCode::Netlink,
            format!(
                "failed to create {kind} {} on master {master}: {e}",
                spec.name
            ),
        )
    };
    match parent.create_link(&spec) {
        Ok(()) => Ok(()),
        Err(e) if e.is_already_exists() && spec.target.is_some() => {
            let final_name = spec.name.clone();
            let tmp = temp_name();
            let tmp_spec = NewLink {
                name: tmp.clone(),
                ..spec.clone()
            };
            parent.create_link(&tmp_spec).map_err(|e| failed(&e))?;
            cont.move_link(&tmp, path, &final_name).map_err(|e| {
                let _ = cont.delete_link(&tmp);
                failed(&e)
            })
        }
        Err(e) => Err(failed(&e)),
    }
}

fn temp_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("plx{:08x}", nanos ^ std::process::id().rotate_left(16))
}

fn finish(
    cont: &dyn Netlink,
    req: &Request,
    conf: &NetConf,
    plan: &LinkPlan,
    path: &Path,
) -> Result<CniResult, CniError> {
    let ifname = req.ifname.as_str();
    let link = cont
        .link(ifname)
        .map_err(|e| netlink_error(&e))?
        .ok_or_else(|| CniError::internal(format!("{ifname} vanished right after creation")))?;
    let sysctls: Vec<(String, &str)> = plan
        .sysctls
        .iter()
        .map(|(template, value)| (template.replace("{if}", ifname), *value))
        .collect();
    let written = cont.set_sysctls(&sysctls).map_err(|e| netlink_error(&e))?;
    for ((key, _), written) in sysctls.iter().zip(written) {
        if let Err(e) = written {
            // ndisc_notify and friends are absent when IPv6 is disabled
            if !(e.is_sysctl_not_found() && key.starts_with("net/ipv6/")) {
                return Err(netlink_error(&e));
            }
        }
    }
    let mut result = CniResult {
        interfaces: vec![Interface {
            name: ifname.to_string(),
            mac: link.mac.map(|m| m.to_string()).unwrap_or_default(),
            sandbox: path.display().to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    match &plan.addresses {
        AddressSource::None => cont.set_link_up(ifname).map_err(|e| netlink_error(&e))?,
        AddressSource::Prev(prev) => {
            take_addresses(&mut result, prev);
            configure_iface(cont, ifname, 0, &result)?;
        }
        AddressSource::Ipam => {
            let leased = ipam::add(req, conf)?;
            let configured = if leased.ips.is_empty() {
                Err(CniError::new(
                    ErrorCode::Ipam,
                    "IPAM plugin returned no IP configuration",
                ))
            } else {
                take_addresses(&mut result, &leased);
                configure_iface(cont, ifname, 0, &result)
            };
            if let Err(e) = configured {
                if let Err(del) = ipam::del(req, conf) {
                    tracing::error!(ifname, "rollback: IPAM release failed: {del}");
                }
                return Err(e);
            }
        }
    }
    // the reference plugins report the config's dns, not the IPAM plugin's
    result.dns = conf.dns.clone().unwrap_or_default();
    Ok(result)
}

fn take_addresses(result: &mut CniResult, from: &CniResult) {
    result.ips = from
        .ips
        .iter()
        .cloned()
        .map(|mut ip| {
            ip.interface = Some(0);
            ip
        })
        .collect();
    result.routes = from.routes.clone();
}

/// DEL: release IPAM, then delete the link. Missing netns, missing link, repeated DEL: success.
pub fn detach(
    sys: &dyn NetlinkProvider,
    req: &Request,
    conf: &NetConf,
    run_ipam: bool,
) -> Result<(), CniError> {
    let mut errors = Vec::new();
    if run_ipam && let Err(e) = ipam::del(req, conf) {
        errors.push(e.context("IPAM"));
    }
    if let Some(path) = req.netns.as_deref() {
        match sys.netns(path) {
            Ok(cont) => {
                if let Err(e) = cont.delete_link(&req.ifname) {
                    errors.push(netlink_error(&e).context(format!("delete {}", req.ifname)));
                }
            }
            Err(OpenError::NetnsGone(_)) => {}
            Err(OpenError::Other(e)) => errors.push(e),
        }
    }
    join_errors(errors)
}

/// Several DEL failures become one error listing all of them, with the first one's code.
pub fn join_errors(errors: Vec<CniError>) -> Result<(), CniError> {
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let msg = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Err(CniError {
        code: first.code,
        msg,
        details: String::new(),
    })
}

/// What CHECK expects of the live link beyond addresses and routes.
pub struct LinkExpectation<'a> {
    pub kind_name: &'static str,
    pub check_mode: &'a dyn Fn(&LinkInfo) -> Result<(), String>,
    pub mtu: Option<u32>,
}

/// CHECK: the prevResult's interface exists in the pod netns with the right kind, mode, MAC,
/// MTU, addresses and routes. Reports the first mismatch.
pub fn check(
    sys: &dyn NetlinkProvider,
    req: &Request,
    conf: &NetConf,
    expect: &LinkExpectation<'_>,
    run_ipam: bool,
) -> Result<(), CniError> {
    let prev = conf
        .prev_result()?
        .ok_or_else(|| CniError::invalid_config("CHECK: required prevResult missing"))?;
    if run_ipam {
        ipam::check(req, conf)?;
    }
    let path = req
        .netns
        .as_deref()
        .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for CHECK"))?;
    let cont = sys.netns(path).map_err(OpenError::into_cni)?;
    let ifname = req.ifname.as_str();
    let idx = prev.sandbox_interface(ifname).ok_or_else(|| {
        CniError::invalid_config(format!(
            "CHECK: prevResult has no interface {ifname} in a sandbox"
        ))
    })?;
    let mismatch = |what: String| {
        CniError::new(
            ErrorCode::Netlink,
            format!("CHECK: {ifname} in {}: {what}", path.display()),
        )
    };
    let link = cont
        .link(ifname)
        .map_err(|e| netlink_error(&e))?
        .ok_or_else(|| mismatch("link not found".into()))?;
    if link.kind.as_deref() != Some(expect.kind_name) {
        return Err(mismatch(format!(
            "kind is {:?}, expected {}",
            link.kind.as_deref().unwrap_or("none"),
            expect.kind_name
        )));
    }
    (expect.check_mode)(&link).map_err(mismatch)?;
    let want_mac = &prev.interfaces[idx].mac;
    let have_mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    if !want_mac.is_empty() && !want_mac.eq_ignore_ascii_case(&have_mac) {
        return Err(mismatch(format!(
            "MAC is {have_mac}, prevResult says {want_mac}"
        )));
    }
    if let Some(mtu) = expect.mtu
        && link.mtu != mtu
    {
        return Err(mismatch(format!("MTU is {}, config says {mtu}", link.mtu)));
    }
    verify_iface(cont.as_ref(), ifname, idx, &prev)
}

/// STATUS: the master (or, without one, a default route to take it from) is present in the
/// host namespace. With `linkInContainer` the master is per pod, so there is nothing to check.
pub fn status(
    sys: &dyn NetlinkProvider,
    master: Option<&str>,
    link_in_container: bool,
) -> Result<(), CniError> {
    if link_in_container {
        return Ok(());
    }
    let host = sys.host()?;
    let name = match master {
        Some(m) => m.to_string(),
        None => match host.default_route_link().map_err(|e| netlink_error(&e))? {
            Some(n) => n,
            None => {
                return Err(CniError::new(
                    ErrorCode::PluginNotAvailable,
                    "no master configured and no default route to take it from",
                ));
            }
        },
    };
    match host.link(&name).map_err(|e| netlink_error(&e))? {
        Some(_) => Ok(()),
        None => Err(CniError::new(
            ErrorCode::PluginNotAvailable,
            format!("master {name} does not exist"),
        )),
    }
}
