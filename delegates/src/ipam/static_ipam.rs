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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::cni::{CniError, Command, Request};
    use crate::ipam;

    fn conf(v: &Value) -> NetConf {
        NetConf::parse(&serde_json::to_vec(v).unwrap()).unwrap()
    }

    fn net(ipam: Value) -> Value {
        json!({"cniVersion": "1.0.0", "name": "s", "type": "macvlan", "ipam": ipam})
    }

    fn addrs(cfg: &StaticConfig) -> Vec<(String, Option<String>)> {
        cfg.addresses
            .iter()
            .map(|a| (a.address.to_string(), a.gateway.map(|g| g.to_string())))
            .collect()
    }

    fn s(a: &str, g: Option<&str>) -> (String, Option<String>) {
        (a.to_string(), g.map(str::to_string))
    }

    #[test]
    fn parses_addresses_routes_and_dns() {
        let c = net(json!({"type": "static",
            "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}, {"address": "fd10::5/64"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.10.0.53"], "domain": "x", "search": ["y"], "options": ["ndots:2"]}}));
        let req = Request {
            command: Command::Add,
            container_id: "c".into(),
            netns: None,
            ifname: "net1".into(),
            args: CniArgs::default(),
            path: vec![],
            config: serde_json::to_vec(&c).unwrap(),
        };
        let r = ipam::add(&req, &conf(&c)).unwrap();
        let got: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(got, ["10.10.0.5/24", "fd10::5/64"]);
        assert_eq!(r.ips[0].gateway, Some("10.10.0.1".parse().unwrap()));
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.dns.nameservers, ["10.10.0.53"]);
        assert_eq!(r.dns.options, ["ndots:2"]);
        ipam::del(&req, &conf(&c)).unwrap();
        ipam::gc(&req, &conf(&c)).unwrap();
        ipam::check(&req, &conf(&c)).unwrap();
        ipam::status(&req, &conf(&c)).unwrap();
    }

    #[test]
    fn cni_args_ip_and_gateway_add_to_config_and_overrides_replace() {
        let mut c = net(json!({"type": "static", "addresses": [{"address": "10.10.0.5/24"}]}));
        let args =
            CniArgs::parse("IgnoreUnknown=1;IP=10.20.0.5/16, fd20::5/64;GATEWAY=10.20.0.1,fd20::1")
                .unwrap();
        let cfg = StaticConfig::load(&conf(&c), &args).unwrap();
        assert_eq!(
            addrs(&cfg),
            [
                s("10.10.0.5/24", None),
                s("10.20.0.5/16", Some("10.20.0.1")),
                s("fd20::5/64", Some("fd20::1"))
            ]
        );
        c["args"] = json!({"cni": {"ips": ["10.30.0.5/24"]}});
        assert_eq!(
            addrs(&StaticConfig::load(&conf(&c), &args).unwrap()),
            [s("10.30.0.5/24", None)]
        );
        c["runtimeConfig"] = json!({"ips": ["10.40.0.5/24", "fd40::5/64"]});
        assert_eq!(
            addrs(&StaticConfig::load(&conf(&c), &args).unwrap()),
            [s("10.40.0.5/24", None), s("fd40::5/64", None)]
        );
    }

    #[test]
    fn invalid_values_name_the_field() {
        let bad = [
            (
                net(json!({"type": "static", "addresses": [{"address": "10.0.0.5"}]})),
                "",
                "ipam.addresses[0].address: invalid CIDR \"10.0.0.5\"",
            ),
            (
                net(json!({"type": "static", "addresses": [{"gateway": "10.0.0.1"}]})),
                "",
                "ipam.addresses[0].address is required",
            ),
            (
                net(
                    json!({"type": "static", "addresses": [{"address": "10.0.0.5/24", "gateway": "g"}]}),
                ),
                "",
                "ipam.addresses[0].gateway: invalid IP address \"g\"",
            ),
            (
                net(json!({"type": "static"})),
                "IP=10.0.0.5",
                "CNI_ARGS IP: invalid CIDR \"10.0.0.5\"",
            ),
            (
                net(json!({"type": "static"})),
                "IP=10.0.0.5/24;GATEWAY=x",
                "CNI_ARGS GATEWAY: invalid gateway address \"x\"",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "s", "runtimeConfig": {"ips": ["1.2.3.4"]}, "ipam": {"type": "static"}}),
                "",
                "runtimeConfig.ips: invalid CIDR \"1.2.3.4\"",
            ),
            (
                json!({"cniVersion": "0.2.0", "name": "s", "ipam": {"type": "static", "addresses": [{"address": "10.0.0.5/24"}, {"address": "10.0.1.5/24"}]}}),
                "",
                "does not support more than 1 address per family",
            ),
        ];
        for (c, args, want) in bad {
            let e = CniError::from(
                StaticConfig::load(&conf(&c), &CniArgs::parse(args).unwrap()).unwrap_err(),
            );
            assert!(e.msg.contains(want), "{c}: {e}");
        }
    }

    #[test]
    fn check_compares_gateways_with_prev_result() {
        let mut c = net(
            json!({"type": "static", "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}]}),
        );
        c["prevResult"] = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}]});
        check(&conf(&c), &CniArgs::default(), "net1").unwrap();
        c["prevResult"]["ips"][0]["gateway"] = json!("10.10.0.254");
        let e = check(&conf(&c), &CniArgs::default(), "net1").unwrap_err();
        assert!(
            e.to_string()
                .contains("Failed to match addr 10.10.0.5 on interface net1"),
            "{e}"
        );
    }
}
