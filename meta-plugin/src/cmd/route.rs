//! Default-route choices after every attachment succeeded: an attachment with `default_route`
//! gets the default route of that family through its gateway; every other attachment loses its
//! default route of that family. Done through netlink inside the sandbox netns.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use plexus_delegates::cni::{CniError, CniResult, ErrorCode};
use plexus_delegates::link::{KernelNetlink, NetlinkProvider};
use plexus_delegates::netlink::{Netlink, RouteSpec};

use crate::plan::Attachment;

fn is_default(dst: &IpNet, v4: bool) -> bool {
    dst.prefix_len() == 0 && dst.addr().is_ipv4() == v4
}

/// The gateways network-status reports for `att` (after [`apply`]): its `default_route`
/// gateways; nothing of a family another attachment took; else the gateways of the default
/// routes in its result (a route without `gw` uses the same-family IP's gateway, as the
/// reference IPAM does when configuring the interface).
pub fn status_gateways(att: &Attachment, result: &CniResult, all: &[&Attachment]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for v4 in [true, false] {
        let own: Vec<IpAddr> = att
            .default_route
            .iter()
            .copied()
            .filter(|g| g.is_ipv4() == v4)
            .collect();
        if !own.is_empty() {
            out.extend(own);
            continue;
        }
        let taken = all
            .iter()
            .any(|a| a.ifname != att.ifname && a.default_route.iter().any(|g| g.is_ipv4() == v4));
        if taken {
            continue;
        }
        for r in result.routes.iter().filter(|r| is_default(&r.dst, v4)) {
            let gw = r.gw.or_else(|| {
                result
                    .ips
                    .iter()
                    .find(|ip| ip.address.addr().is_ipv4() == v4)
                    .and_then(|ip| ip.gateway)
            });
            if let Some(gw) = gw.filter(|g| !out.contains(g)) {
                out.push(gw);
            }
        }
    }
    out
}

/// Applies the plan's default-route choices inside `netns`. No-op when no attachment asks.
pub fn apply(netns: &Path, attachments: &[&Attachment]) -> Result<(), CniError> {
    if attachments.iter().all(|a| a.default_route.is_empty()) {
        return Ok(());
    }
    let nl = KernelNetlink.netns(netns).map_err(|e| e.into_cni())?;
    apply_with(nl.as_ref(), attachments)
}

/// [`apply`] over any netlink handle bound to the sandbox.
pub fn apply_with(nl: &dyn Netlink, attachments: &[&Attachment]) -> Result<(), CniError> {
    let err = |e: plexus_delegates::netlink::NetlinkError| {
        CniError::new(ErrorCode::Netlink, format!("default-route: {e}"))
    };
    for v4 in [true, false] {
        let Some(owner) = attachments
            .iter()
            .find(|a| a.default_route.iter().any(|g| g.is_ipv4() == v4))
        else {
            continue;
        };
        for a in attachments {
            for r in nl.routes(&a.ifname).map_err(err)? {
                if !is_default(&r.dst, v4) || r.effective_table() != 254 {
                    continue;
                }
                let keep = a.ifname == owner.ifname
                    && r.gw.is_some_and(|g| owner.default_route.contains(&g));
                if !keep {
                    match nl.delete_route(&r) {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(err(e)),
                    }
                }
            }
        }
        let dst: IpNet = if v4 {
            IpNet::V4(ipnet::Ipv4Net::default())
        } else {
            IpNet::V6(ipnet::Ipv6Net::default())
        };
        for gw in owner.default_route.iter().filter(|g| g.is_ipv4() == v4) {
            let route = RouteSpec::new(dst).via(*gw).dev(owner.ifname.clone());
            match nl.add_route(&route) {
                Ok(()) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(err(e)),
            }
            tracing::info!(ifname = %owner.ifname, network = %owner.network, gateway = %gw, "default route set");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use plexus_delegates::cni::CniResult;
    use plexus_delegates::netlink::{FakeNetlink, FakeWorld};
    use serde_json::{Map, json};

    use super::*;
    use crate::plan::Delegate;

    fn att(ifname: &str, gw: &[&str]) -> Attachment {
        Attachment {
            network: format!("ns/{ifname}"),
            ifname: ifname.into(),
            is_cluster: ifname == "eth0",
            delegate: Delegate::Conf(Map::new()),
            runtime_config: Map::new(),
            cni_args: vec![],
            args_cni: None,
            default_route: gw.iter().map(|g| g.parse().unwrap()).collect(),
            resource_name: None,
        }
    }

    #[test]
    fn selected_attachment_gets_the_default_route_others_lose_theirs() {
        let ns = Path::new("/run/netns/pod");
        let world = FakeWorld::shared();
        {
            let mut w = world.lock().unwrap();
            w.add_netns(ns);
            for l in ["eth0", "net1", "net2"] {
                w.add_link(Some(ns), l);
                w.update_link(Some(ns), l, |l| l.up = true);
            }
            w.seed_address(Some(ns), "eth0", "10.0.0.5/24".parse().unwrap());
            w.seed_address(Some(ns), "net1", "10.1.0.5/24".parse().unwrap());
            w.seed_route(
                Some(ns),
                RouteSpec::new("0.0.0.0/0".parse().unwrap())
                    .via("10.0.0.1".parse().unwrap())
                    .dev("eth0"),
            );
            w.seed_route(
                Some(ns),
                RouteSpec::new("10.0.0.0/24".parse().unwrap()).dev("eth0"),
            );
            w.seed_route(
                Some(ns),
                RouteSpec::new("::/0".parse().unwrap())
                    .via("fd00::1".parse().unwrap())
                    .dev("eth0"),
            );
        }
        let nl = FakeNetlink::bind(&world, Some(ns));
        let (a, b, c) = (
            att("eth0", &[]),
            att("net1", &["10.1.0.1"]),
            att("net2", &[]),
        );
        apply_with(&nl, &[&a, &b, &c]).unwrap();
        let routes = world.lock().unwrap().routes_in(Some(ns));
        let mut defaults: Vec<String> = routes
            .iter()
            .filter(|r| r.dst.prefix_len() == 0)
            .map(RouteSpec::describe)
            .collect();
        defaults.sort();
        // IPv4 default moved to net1; IPv6 untouched (nobody asked); subnet route kept
        assert_eq!(
            defaults,
            vec![
                "route 0.0.0.0/0 via 10.1.0.1 dev net1 table 254",
                "route ::/0 via fd00::1 dev eth0"
            ]
        );
        assert!(routes.iter().any(|r| r.dst.to_string() == "10.0.0.0/24"));
        // idempotent
        apply_with(&nl, &[&a, &b, &c]).unwrap();
    }

    #[test]
    fn status_gateways_follow_the_choice() {
        let r = CniResult::from_json(&json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        }))
        .unwrap();
        let (a, b) = (att("eth0", &[]), att("net1", &["10.1.0.1"]));
        assert_eq!(
            status_gateways(&a, &r, &[&a]),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert!(status_gateways(&a, &r, &[&a, &b]).is_empty());
        assert_eq!(
            status_gateways(&b, &r, &[&a, &b]),
            vec!["10.1.0.1".parse::<IpAddr>().unwrap()]
        );
    }
}
