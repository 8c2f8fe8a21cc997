//! The macvlan delegate: accepts the reference macvlan plugin's configuration.
//!
//! `master` (empty: the default route's interface), `mode` (bridge|private|vepa|passthru|source,
//! default bridge), `mtu` (0..=master MTU), `mac` (overridden by CNI_ARGS `MAC=`, then by
//! `runtimeConfig.mac`), `linkInContainer`, `bcqueuelen`, `ipam` (absent: L2 only).

use serde::Deserialize;

use crate::cni::config::parse_config;
use crate::cni::{CniError, NetConf, Request};
use crate::link::plugin::{LinkKind, LinkPlugin, parse_mtu, requested_mac};
use crate::link::{ADDRESS_SYSCTLS, AddressSource, KernelNetlink, LinkPlan};
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
        let mtu = parse_mtu(raw.mtu)?;
        let mac = requested_mac(req, &raw.mac, &raw.runtime_config.mac)?;
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
            // arp_notify and ndisc_notify announce the new MAC at once, so neighbours do not
            // keep a stale entry for a reused IP; like the reference, only when there is one
            sysctls: if self.has_ipam {
                ADDRESS_SYSCTLS.to_vec()
            } else {
                Vec::new()
            },
            addresses: if self.has_ipam {
                AddressSource::Ipam
            } else {
                AddressSource::None
            },
        }
    }
}

/// The macvlan plugin, over any netlink provider (the kernel, or the fake in unit tests).
pub type MacvlanPlugin<P = KernelNetlink> = LinkPlugin<Macvlan, P>;

impl LinkKind for Macvlan {
    const KIND: &'static str = "macvlan";

    fn parse(req: &Request, conf: &NetConf) -> Result<Self, CniError> {
        Macvlan::parse(req, conf)
    }

    fn plan(&self) -> LinkPlan {
        Macvlan::plan(self)
    }

    fn check_mode(&self, link: &LinkInfo) -> Result<(), String> {
        match link.macvlan_mode {
            Some(m) if m == self.mode => Ok(()),
            other => Err(format!(
                "macvlan mode is {}, config says {}",
                other.map(|m| m.as_str()).unwrap_or("unknown"),
                self.mode.as_str()
            )),
        }
    }
}
