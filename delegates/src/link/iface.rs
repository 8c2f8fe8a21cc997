//! Putting an IPAM result on an interface inside the container, and checking it is still there.
//!
//! Mirrors the reference plugins' `ipam.ConfigureIface`: addresses first, then link up, then
//! routes; a route without a gateway takes the first gateway of its family from the IP configs.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::cni::{CniError, CniResult, ErrorCode};
use crate::netlink::{Netlink, RT_SCOPE_UNIVERSE, RouteSpec};

use super::provider::netlink_error;

/// How long to wait for IPv6 duplicate address detection before adding routes via a v6 gateway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Configure `ifname` (inside the netns `nl` is bound to) with the IPs and routes of `result`
/// that belong to interface index `if_index` (or carry no index).
pub fn configure_iface(
    nl: &dyn Netlink,
    ifname: &str,
    if_index: usize,
    result: &CniResult,
) -> Result<(), CniError> {
    let mine = |idx: Option<usize>| idx.is_none_or(|i| i == if_index);
    let mut v4_gw = None;
    let mut v6_gw = None;
    let mut has_v6 = false;
    for ip in result.ips.iter().filter(|ip| mine(ip.interface)) {
        if ip.address.addr().is_ipv6() && !has_v6 {
            has_v6 = true;
            // an interface may come up with IPv6 disabled; adding a v6 address needs it on
            let key = format!("net/ipv6/conf/{ifname}/disable_ipv6");
            if let Err(e) = nl.set_sysctl(&key, "0")
                && !e.is_sysctl_not_found()
            {
                return Err(netlink_error(&e));
            }
        }
        nl.add_address(ifname, ip.address).map_err(|e| {
            CniError::new(
                ErrorCode::Netlink,
                format!("failed to add IP address {} to {ifname}: {e}", ip.address),
            )
        })?;
        match ip.gateway {
            Some(gw @ IpAddr::V4(_)) if v4_gw.is_none() => v4_gw = Some(gw),
            Some(gw @ IpAddr::V6(_)) if v6_gw.is_none() => v6_gw = Some(gw),
            _ => {}
        }
    }
    nl.set_link_up(ifname).map_err(|e| netlink_error(&e))?;
    if v6_gw.is_some() {
        settle_addresses(nl, ifname)?;
    }
    for route in &result.routes {
        let gw = route.gw.or(if route.dst.addr().is_ipv4() {
            v4_gw
        } else {
            v6_gw
        });
        let spec = RouteSpec {
            dst: route.dst,
            gw,
            oif: Some(ifname.to_string()),
            mtu: route.mtu,
            priority: route.priority,
            table: route.table,
            // the reference plugins add routes with universe scope unless told otherwise
            scope: Some(route.scope.unwrap_or(RT_SCOPE_UNIVERSE)),
        };
        nl.add_route(&spec).map_err(|e| {
            CniError::new(
                ErrorCode::Netlink,
                format!("failed to add {}: {e}", spec.describe()),
            )
        })?;
    }
    Ok(())
}

/// Wait until no address of `ifname` is tentative (IPv6 DAD finished), as the reference does.
fn settle_addresses(nl: &dyn Netlink, ifname: &str) -> Result<(), CniError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let addrs = nl.addresses(ifname).map_err(|e| netlink_error(&e))?;
        if !addrs.iter().any(|a| a.tentative) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CniError::new(
                ErrorCode::Netlink,
                format!("IPv6 addresses on {ifname} still tentative after {SETTLE_TIMEOUT:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CHECK: every IP of `result` for `if_index` is on `ifname`, every route exists.
pub fn verify_iface(
    nl: &dyn Netlink,
    ifname: &str,
    if_index: usize,
    result: &CniResult,
) -> Result<(), CniError> {
    let live = nl.addresses(ifname).map_err(|e| netlink_error(&e))?;
    for ip in result
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none_or(|i| i == if_index))
    {
        if !live.iter().any(|a| a.addr == ip.address) {
            return Err(CniError::new(
                ErrorCode::Netlink,
                format!("CHECK: address {} missing on {ifname}", ip.address),
            ));
        }
    }
    let routes = nl.routes(ifname).map_err(|e| netlink_error(&e))?;
    for route in &result.routes {
        let found = routes
            .iter()
            .any(|r| r.dst == route.dst && (route.gw.is_none() || r.gw == route.gw));
        if !found {
            let gw = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(CniError::new(
                ErrorCode::Netlink,
                format!("CHECK: route {}{gw} missing on {ifname}", route.dst),
            ));
        }
    }
    Ok(())
}
