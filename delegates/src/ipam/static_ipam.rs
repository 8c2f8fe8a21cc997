//! static IPAM: the addresses, routes and DNS of the configuration (or of the request), like
//! the reference `static` plugin. Nothing is stored; DEL and GC have nothing to do.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::cni::config::from_value;
use crate::cni::{CniArgs, CniResult, CniVersion, Dns, IpConfig, NetConf, Route};
use crate::ipam::error::IpamError;
use crate::ipam::util::{args_cni_ips, string_list};

#[derive(Debug, Default, Deserialize)]
struct RawAddress {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawStatic {
    #[serde(default)]
    addresses: Option<Vec<RawAddress>>,
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(default)]
    dns: Option<Dns>,
}

/// The validated static configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    pub addresses: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

/// Go's `net.ParseCIDR`: an address with a prefix, host bits kept.
fn parse_cidr(field: &str, raw: &str) -> Result<IpNet, IpamError> {
    let raw = raw.trim();
    raw.parse()
        .map_err(|_| IpamError::Config(format!("{field}: invalid CIDR {raw:?}")))
}

fn parse_ip(field: &str, raw: &str) -> Result<IpAddr, IpamError> {
    raw.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| IpamError::Config(format!("{field}: invalid IP address {raw:?}")))
}

impl StaticConfig {
    /// Decode and validate. Precedence as the reference: the configured `addresses`, plus
    /// CNI_ARGS `IP=` (CIDRs, comma list) with CNI_ARGS `GATEWAY=` applied to every address
    /// whose network contains it; `args.cni.ips` replaces all of that, and `runtimeConfig.ips`
    /// replaces everything before it.
    pub fn load(conf: &NetConf, env_args: &CniArgs) -> Result<StaticConfig, IpamError> {
        let ipam = conf.ipam.clone().ok_or(IpamError::Missing)?;
        if !ipam.is_object() {
            return Err(IpamError::Config(format!(
                "ipam: expected an object, got {ipam}"
            )));
        }
        let raw: RawStatic =
            from_value(ipam).map_err(|e| IpamError::Config(format!("ipam: {}", e.msg)))?;

        let mut addresses = Vec::new();
        for (i, a) in raw.addresses.unwrap_or_default().iter().enumerate() {
            let field = format!("ipam.addresses[{i}].address");
            let cidr = a
                .address
                .as_deref()
                .ok_or_else(|| IpamError::Config(format!("{field} is required")))?;
            let address = parse_cidr(&field, cidr)?;
            let gateway = match a.gateway.as_deref().filter(|g| !g.trim().is_empty()) {
                Some(g) => Some(parse_ip(&format!("ipam.addresses[{i}].gateway"), g)?),
                None => None,
            };
            addresses.push(IpConfig {
                interface: None,
                address,
                gateway,
            });
        }

        if let Some(raw_ips) = env_args.get("IP").filter(|s| !s.is_empty()) {
            for item in raw_ips.split(',') {
                let address =
                    parse_cidr("CNI_ARGS IP", item).map_err(|e| IpamError::Env(e.to_string()))?;
                addresses.push(IpConfig {
                    interface: None,
                    address,
                    gateway: None,
                });
            }
        }
        if let Some(raw_gws) = env_args.get("GATEWAY").filter(|s| !s.is_empty()) {
            for item in raw_gws.split(',') {
                let gw = parse_ip("CNI_ARGS GATEWAY", item).map_err(|_| {
                    IpamError::Env(format!(
                        "CNI_ARGS GATEWAY: invalid gateway address {item:?}"
                    ))
                })?;
                for a in addresses.iter_mut().filter(|a| a.address.contains(&gw)) {
                    a.gateway = Some(gw);
                }
            }
        }
        let overrides = [
            ("args.cni.ips", args_cni_ips(conf.args.as_ref())?),
            (
                "runtimeConfig.ips",
                string_list(conf.runtime_config_value("ips"), "runtimeConfig.ips")?,
            ),
        ];
        for (field, list) in overrides {
            if list.is_empty() {
                continue;
            }
            addresses = list
                .iter()
                .map(|s| {
                    parse_cidr(field, s).map(|address| IpConfig {
                        interface: None,
                        address,
                        gateway: None,
                    })
                })
                .collect::<Result<_, _>>()?;
        }

        let v4 = addresses
            .iter()
            .filter(|a| a.address.addr().is_ipv4())
            .count();
        let version = conf.version().map_err(|e| IpamError::Config(e.msg))?;
        if (v4 > 1 || addresses.len() - v4 > 1) && version < CniVersion::V0_3_0 {
            return Err(IpamError::Config(format!(
                "CNI version {version} does not support more than 1 address per family"
            )));
        }
        Ok(StaticConfig {
            addresses,
            routes: raw.routes.unwrap_or_default(),
            dns: raw.dns.unwrap_or_default(),
        })
    }
}

pub fn add(conf: &NetConf, env_args: &CniArgs) -> Result<CniResult, IpamError> {
    let cfg = StaticConfig::load(conf, env_args)?;
    Ok(CniResult {
        interfaces: Vec::new(),
        ips: cfg.addresses,
        routes: cfg.routes,
        dns: cfg.dns,
    })
}

/// CHECK: the configuration is valid; with a prevResult, a configured address found there
/// must carry the configured gateway (the reference's rule).
pub fn check(conf: &NetConf, env_args: &CniArgs, ifname: &str) -> Result<(), IpamError> {
    let cfg = StaticConfig::load(conf, env_args)?;
    let Some(prev) = conf.prev_result().map_err(|e| IpamError::Config(e.msg))? else {
        return Ok(());
    };
    for want in &cfg.addresses {
        let Some(got) = prev
            .ips
            .iter()
            .find(|ip| ip.address.addr() == want.address.addr())
        else {
            continue;
        };
        if want.gateway.is_some() && want.gateway != got.gateway {
            return Err(IpamError::Alloc(format!(
                "static: Failed to match addr {} on interface {ifname}",
                got.address.addr()
            )));
        }
    }
    Ok(())
}
