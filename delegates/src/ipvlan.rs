//! The ipvlan delegate: accepts the reference ipvlan plugin's configuration.
//!
//! `master` (empty: the single interface of a chained prevResult, else the default route's
//! interface), `mode` (l2|l3|l3s, default l2), `flags` (bridge|private|vepa, a Plexus
//! extension; default bridge, the kernel's), `mtu`, `linkInContainer`, `ipam` (required unless
//! the prevResult carries IPs).

use serde::Deserialize;

use crate::cni::config::parse_config;
use crate::cni::{CniError, CniResult, NetConf, Plugin, Request};
use crate::link::{
    AddressSource, KernelNetlink, LinkExpectation, LinkPlan, NetlinkProvider, attach, check, detach,
};
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
        let mtu = match raw.mtu {
            0 => None,
            m if m < 0 || m > i64::from(u32::MAX) => {
                return Err(CniError::invalid_config(format!("mtu: invalid MTU {m}")));
            }
            m => Some(m as u32),
        };
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
            sysctls: vec![
                ("net/ipv4/conf/{if}/arp_notify", "1"),
                ("net/ipv6/conf/{if}/ndisc_notify", "1"),
            ],
            addresses: self.addresses.clone(),
        }
    }
}

/// The ipvlan plugin, over any netlink provider.
pub struct IpvlanPlugin<P: NetlinkProvider = KernelNetlink> {
    pub netlink: P,
}

impl Default for IpvlanPlugin<KernelNetlink> {
    fn default() -> Self {
        IpvlanPlugin {
            netlink: KernelNetlink,
        }
    }
}

impl<P: NetlinkProvider> Plugin for IpvlanPlugin<P> {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = NetConf::parse(&req.config)?;
        let iv = Ipvlan::parse(req, &conf)?;
        attach(&self.netlink, req, &conf, &iv.plan())
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        detach(&self.netlink, req, &conf, conf.ipam_type().is_some())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        let iv = Ipvlan::parse(req, &conf)?;
        let mode = iv.mode;
        let check_mode = move |l: &LinkInfo| match l.ipvlan_mode {
            Some(m) if m == mode => Ok(()),
            other => Err(format!(
                "ipvlan mode is {}, config says {}",
                other.map(|m| m.as_str()).unwrap_or("unknown"),
                mode.as_str()
            )),
        };
        let expect = LinkExpectation {
            kind_name: "ipvlan",
            check_mode: &check_mode,
            mtu: iv.mtu,
        };
        let run_ipam = matches!(iv.addresses, AddressSource::Ipam);
        check(&self.netlink, req, &conf, &expect, run_ipam)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        let iv = Ipvlan::parse(req, &conf)?;
        crate::link::attach::status(&self.netlink, iv.master.as_deref(), iv.link_in_container)?;
        if conf.ipam_type().is_some() {
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
