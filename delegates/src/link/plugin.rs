//! One `Plugin` implementation for every single-link delegate; each kind (macvlan, ipvlan)
//! only says how to parse its config, what link to build and how to check its mode.

use std::marker::PhantomData;

use crate::cni::{CniError, CniResult, NetConf, Plugin, Request};
use crate::ipam;
use crate::netlink::{LinkInfo, MacAddr};

use super::attach::{self, AddressSource, LinkExpectation, LinkPlan};
use super::provider::{KernelNetlink, NetlinkProvider};

/// A kind of single-link delegate.
pub trait LinkKind: Sized {
    /// `IFLA_INFO_KIND`, also used in messages.
    const KIND: &'static str;
    /// Parse and validate the network configuration; errors name the field and the value.
    fn parse(req: &Request, conf: &NetConf) -> Result<Self, CniError>;
    fn plan(&self) -> LinkPlan;
    /// CHECK: does the live link's mode match the configuration?
    fn check_mode(&self, link: &LinkInfo) -> Result<(), String>;
}

/// The plugin for link kind `K` over netlink provider `P` (the kernel, or the fake in tests).
pub struct LinkPlugin<K, P = KernelNetlink> {
    pub netlink: P,
    kind: PhantomData<fn() -> K>,
}

impl<K, P> LinkPlugin<K, P> {
    pub fn new(netlink: P) -> Self {
        LinkPlugin {
            netlink,
            kind: PhantomData,
        }
    }
}

impl<K> Default for LinkPlugin<K, KernelNetlink> {
    fn default() -> Self {
        Self::new(KernelNetlink)
    }
}

impl<K: LinkKind, P: NetlinkProvider> Plugin for LinkPlugin<K, P> {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let conf = NetConf::parse(&req.config)?;
        let kind = K::parse(req, &conf)?;
        attach::attach(&self.netlink, req, &conf, &kind.plan())
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        // DEL must work even when the master is gone or the config no longer validates
        attach::detach(&self.netlink, req, &conf, ipam::is_configured(&conf))
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        let kind = K::parse(req, &conf)?;
        let plan = kind.plan();
        let check_mode = |l: &LinkInfo| kind.check_mode(l);
        let expect = LinkExpectation {
            kind_name: K::KIND,
            check_mode: &check_mode,
            mtu: plan.mtu,
        };
        let run_ipam = matches!(plan.addresses, AddressSource::Ipam);
        attach::check(&self.netlink, req, &conf, &expect, run_ipam)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        let plan = K::parse(req, &conf)?.plan();
        attach::status(
            &self.netlink,
            plan.master.as_deref(),
            plan.link_in_container,
        )?;
        if ipam::is_configured(&conf) {
            ipam::status(req, &conf)
        } else {
            Ok(())
        }
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let conf = NetConf::parse(&req.config)?;
        if ipam::is_configured(&conf) {
            ipam::gc(req, &conf)
        } else {
            Ok(())
        }
    }
}

/// The MAC address the reference plugins (macvlan, sriov) give the interface: `mac` from the
/// config, overridden by CNI_ARGS `MAC=`, then by `runtimeConfig.mac` (empty = not set). Refuses
/// CNI_ARGS keys other than `MAC` (and the standard ones); errors name the field and the value.
pub fn requested_mac(
    req: &Request,
    config_mac: &str,
    runtime_config_mac: &str,
) -> Result<Option<MacAddr>, CniError> {
    req.args.check_known(&["MAC"])?;
    let mut mac = (!config_mac.is_empty()).then_some(("mac", config_mac));
    if let Some(m) = req.args.get("MAC").filter(|m| !m.is_empty()) {
        mac = Some(("CNI_ARGS MAC", m));
    }
    if !runtime_config_mac.is_empty() {
        mac = Some(("runtimeConfig.mac", runtime_config_mac));
    }
    mac.map(|(field, value)| {
        MacAddr::parse_unicast(value).map_err(|e| {
            CniError::invalid_config(format!("{field}: invalid MAC address {value:?}: {e}"))
        })
    })
    .transpose()
}

/// `mtu` as the reference plugins read it: 0 = the kernel's choice, negative is an error.
pub fn parse_mtu(raw: i64) -> Result<Option<u32>, CniError> {
    match raw {
        0 => Ok(None),
        m => u32::try_from(m)
            .map(Some)
            .map_err(|_| CniError::invalid_config(format!("mtu: invalid MTU {m}"))),
    }
}
