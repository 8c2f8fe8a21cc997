//! The ipvlan delegate: accepts the reference ipvlan plugin's configuration.
//!
//! `master` (empty: the single interface of a chained prevResult, else the default route's
//! interface), `mode` (l2|l3|l3s, default l2), `flags` (bridge|private|vepa, a Plexus
//! extension; default bridge, the kernel's), `mtu`, `linkInContainer`, `ipam` (required unless
//! the prevResult carries IPs).

use serde::Deserialize;

use crate::cni::config::parse_config;
use crate::cni::{CniError, NetConf, Request};
use crate::link::plugin::{LinkKind, LinkPlugin, parse_mtu};
use crate::link::{ADDRESS_SYSCTLS, AddressSource, KernelNetlink, LinkPlan};
use crate::netlink::{IpvlanFlags, IpvlanMode, LinkInfo, NewLinkKind};

#[derive(Debug, Default, Deserialize)]
struct IpvlanConf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    flags: String,
    #[serde(default)]
    mtu: i64,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Ipvlan {
    pub master: Option<String>,
    pub mode: IpvlanMode,
    pub flags: IpvlanFlags,
    pub mtu: Option<u32>,
    pub link_in_container: bool,
    pub addresses: AddressSource,
}

impl Ipvlan {
    pub fn parse(req: &Request, conf: &NetConf) -> Result<Ipvlan, CniError> {
        let raw: IpvlanConf = parse_config(&req.config)?;
        let mode = if raw.mode.is_empty() {
            IpvlanMode::L2
        } else {
            raw.mode.parse().map_err(|_| {
                CniError::invalid_config(format!(
                    "mode: unknown ipvlan mode {:?} (l2, l3, l3s)",
                    raw.mode
                ))
            })?
        };
        let flags = if raw.flags.is_empty() {
            IpvlanFlags::Bridge
        } else {
            raw.flags.parse().map_err(|_| {
                CniError::invalid_config(format!(
                    "flags: unknown ipvlan flags {:?} (bridge, private, vepa)",
                    raw.flags
                ))
            })?
        };
        let mtu = parse_mtu(raw.mtu)?;
        let prev = conf.prev_result()?;
        let master = if !raw.master.is_empty() {
            Some(raw.master)
        } else {
            match &prev {
                None => None,
                Some(p) if p.interfaces.len() == 1 && !p.interfaces[0].name.is_empty() => {
                    Some(p.interfaces[0].name.clone())
                }
                Some(_) => {
                    return Err(CniError::invalid_config(
                        "master: not set, and the chained prevResult does not have exactly one named interface",
                    ));
                }
            }
        };
        let addresses = match (conf.ipam_type(), prev) {
            (Some(_), _) => AddressSource::Ipam,
            (None, Some(p)) if !p.ips.is_empty() => AddressSource::Prev(p),
            (None, _) => {
                return Err(CniError::invalid_config(
                    "ipam: required unless a chained prevResult carries IP addresses",
                ));
            }
        };
        Ok(Ipvlan {
            master,
            mode,
            flags,
            mtu,
            link_in_container: raw.link_in_container,
            addresses,
        })
    }

    fn plan(&self) -> LinkPlan {
        let (mode, flags) = (self.mode, self.flags);
        LinkPlan {
            kind_name: "ipvlan",
            master: self.master.clone(),
            link_in_container: self.link_in_container,
            mtu: self.mtu,
            mac: None,
            kind: Box::new(move |parent_index| NewLinkKind::Ipvlan {
                parent_index,
                mode,
                flags,
            }),
            sysctls: ADDRESS_SYSCTLS.to_vec(),
            addresses: self.addresses.clone(),
        }
    }
}

/// The ipvlan plugin, over any netlink provider.
pub type IpvlanPlugin<P = KernelNetlink> = LinkPlugin<Ipvlan, P>;

impl LinkKind for Ipvlan {
    const KIND: &'static str = "ipvlan";

    fn parse(req: &Request, conf: &NetConf) -> Result<Self, CniError> {
        Ipvlan::parse(req, conf)
    }

    fn plan(&self) -> LinkPlan {
        Ipvlan::plan(self)
    }

    fn check_mode(&self, link: &LinkInfo) -> Result<(), String> {
        match link.ipvlan_mode {
            Some(m) if m == self.mode => Ok(()),
            other => Err(format!(
                "ipvlan mode is {}, config says {}",
                other.map(|m| m.as_str()).unwrap_or("unknown"),
                self.mode.as_str()
            )),
        }
    }
}
