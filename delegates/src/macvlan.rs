//! The macvlan delegate: accepts the reference macvlan plugin's configuration.
//!
//! `master` (empty: the default route's interface), `mode` (bridge|private|vepa|passthru|source,
//! default bridge), `mtu` (0..=master MTU), `mac` (overridden by CNI_ARGS `MAC=`, then by
//! `runtimeConfig.mac`), `linkInContainer`, `bcqueuelen`, `ipam` (absent: L2 only).

use serde::Deserialize;

use crate::cni::config::parse_config;
use crate::cni::{CniError, CniResult, NetConf, Plugin, Request};
use crate::link::{
    AddressSource, KernelNetlink, LinkExpectation, LinkPlan, NetlinkProvider, attach, check, detach,
};
use crate::netlink::{LinkInfo, MacAddr, MacvlanMode, NewLinkKind};

#[derive(Debug, Default, Deserialize)]
struct MacvlanConf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    mac: String,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
    #[serde(default)]
    bcqueuelen: Option<u32>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: RuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    mac: String,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macvlan {
    pub master: Option<String>,
    pub mode: MacvlanMode,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub link_in_container: bool,
    pub bc_queue_len: Option<u32>,
    pub has_ipam: bool,
}

impl Macvlan {
    /// Parse and validate; every error names the field and the value.
    pub fn parse(req: &Request, conf: &NetConf) -> Result<Macvlan, CniError> {
        let raw: MacvlanConf = parse_config(&req.config)?;
        let mode = if raw.mode.is_empty() {
            MacvlanMode::Bridge
        } else {
            raw.mode.parse().map_err(|_| {
                CniError::invalid_config(format!(
                    "mode: unknown macvlan mode {:?} (bridge, private, vepa, passthru, source)",
                    raw.mode
                ))
            })?
        };
        let mtu = match raw.mtu {
            0 => None,
            m if m < 0 || m > i64::from(u32::MAX) => {
                return Err(CniError::invalid_config(format!("mtu: invalid MTU {m}")));
            }
            m => Some(m as u32),
        };
        // precedence as in the reference plugin: config, then CNI_ARGS MAC=, then runtimeConfig
        req.args.check_known(&["MAC"])?;
        let mut mac = (!raw.mac.is_empty()).then_some(("mac", raw.mac.as_str()));
        if let Some(m) = req.args.get("MAC").filter(|m| !m.is_empty()) {
            mac = Some(("CNI_ARGS MAC", m));
        }
        if !raw.runtime_config.mac.is_empty() {
            mac = Some(("runtimeConfig.mac", raw.runtime_config.mac.as_str()));
        }
        let mac = mac
            .map(|(field, value)| parse_mac(field, value))
            .transpose()?;
        Ok(Macvlan {
            master: (!raw.master.is_empty()).then_some(raw.master),
            mode,
            mtu,
            mac,
            link_in_container: raw.link_in_container,
            bc_queue_len: raw.bcqueuelen,
            has_ipam: conf.ipam_type().is_some(),
        })
    }

    fn plan(&self) -> LinkPlan {
        let (mode, bc_queue_len) = (self.mode, self.bc_queue_len);
        LinkPlan {
            kind_name: "macvlan",
            master: self.master.clone(),
            link_in_container: self.link_in_container,
            mtu: self.mtu,
            mac: self.mac,
            kind: Box::new(move |parent_index| NewLinkKind::Macvlan {
                parent_index,
                mode,
                bc_queue_len,
            }),
            // proxy_arp as the reference plugin sets it; arp_notify and ndisc_notify announce the
            // new MAC at once so neighbours do not keep a stale entry for a reused IP
            sysctls: vec![
                ("net/ipv4/conf/{if}/proxy_arp", "1"),
                ("net/ipv4/conf/{if}/arp_notify", "1"),
                ("net/ipv6/conf/{if}/ndisc_notify", "1"),
            ],
            addresses: if self.has_ipam {
                AddressSource::Ipam
            } else {
                AddressSource::None
            },
        }
    }
}

pub(crate) fn parse_mac(field: &str, value: &str) -> Result<MacAddr, CniError> {
    MacAddr::parse_unicast(value).map_err(|e| {
        CniError::invalid_config(format!("{field}: invalid MAC address {value:?}: {e}"))
    })
}

/// The macvlan plugin, over any netlink provider (the kernel, or the fake in unit tests).
pub struct MacvlanPlugin<P: NetlinkProvider = KernelNetlink> {
    pub netlink: P,
}

impl Default for MacvlanPlugin<KernelNetlink> {
    fn default() -> Self {
        MacvlanPlugin {
            netlink: KernelNetlink,
        }
    }
}

impl<P: NetlinkProvider> Plugin for MacvlanPlugin<P> {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = NetConf::parse(&req.config)?;
        let mv = Macvlan::parse(req, &conf)?;
        attach(&self.netlink, req, &conf, &mv.plan())
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        // DEL must work even when the master is gone or the config no longer validates
        detach(&self.netlink, req, &conf, conf.ipam_type().is_some())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        let mv = Macvlan::parse(req, &conf)?;
        let mode = mv.mode;
        let check_mode = move |l: &LinkInfo| match l.macvlan_mode {
            Some(m) if m == mode => Ok(()),
            other => Err(format!(
                "macvlan mode is {}, config says {}",
                other.map(|m| m.as_str()).unwrap_or("unknown"),
                mode.as_str()
            )),
        };
        let expect = LinkExpectation {
            kind_name: "macvlan",
            check_mode: &check_mode,
            mtu: mv.mtu,
        };
        check(&self.netlink, req, &conf, &expect, mv.has_ipam)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        let mv = Macvlan::parse(req, &conf)?;
        crate::link::attach::status(&self.netlink, mv.master.as_deref(), mv.link_in_container)?;
        if mv.has_ipam {
            crate::ipam::status(req, &conf)
        } else {
            Ok(())
        }
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        if conf.ipam_type().is_some() {
            crate::ipam::gc(req, &conf)
        } else {
            Ok(())
        }
    }
}
