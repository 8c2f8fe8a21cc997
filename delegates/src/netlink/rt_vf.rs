//! [`RtNetlink`]'s link attribute changes (down, rename, MTU, MAC) and the PF-side SR-IOV VF
//! operations: `IFLA_VFINFO_LIST` written one setting per `RTM_SETLINK` and read back with a
//! link request carrying `IFLA_EXT_MASK` `RTEXT_FILTER_VF`.

use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState,
    VfInfoMac, VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfLinkState as NlVfLinkState, VfVlan,
    VfVlanInfo, VlanProtocol,
};

use super::RtNetlink;
use crate::netlink::{
    MacAddr, NetlinkError, VfConfig, VfLinkState, VfSetting, VlanProto, validate_ifname,
};

impl RtNetlink {
    /// One `RTM_SETLINK` with `msg`, acknowledged.
    pub(super) fn set_link(
        &self,
        op: &'static str,
        what: impl FnOnce() -> String,
        msg: LinkMessage,
    ) -> Result<(), NetlinkError> {
        self.exec(
            op,
            what,
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map(drop)
    }

    /// A message addressing link `name` by name.
    pub(super) fn named(&self, op: &'static str, name: &str) -> Result<LinkMessage, NetlinkError> {
        self.check_name(op, name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        Ok(msg)
    }

    pub(super) fn link_set_down(&self, name: &str) -> Result<(), NetlinkError> {
        const OP: &str = "set_link_down";
        let mut msg = self.named(OP, name)?;
        msg.header.flags = LinkFlags::empty();
        msg.header.change_mask = LinkFlags::Up;
        self.set_link(OP, || self.link_what(name), msg)
    }

    pub(super) fn link_rename(&self, name: &str, new_name: &str) -> Result<(), NetlinkError> {
        const OP: &str = "rename_link";
        let what = || format!("{} -> {new_name:?}", self.link_what(name));
        validate_ifname(new_name).map_err(|reason| NetlinkError::Invalid {
            op: OP,
            what: what(),
            reason,
        })?;
        // addressed by index: IFLA_IFNAME carries the new name
        let index = self.index_of(OP, name)?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_owned()));
        self.set_link(OP, what, msg)
    }

    pub(super) fn link_set_mtu(&self, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        const OP: &str = "set_link_mtu";
        let mut msg = self.named(OP, name)?;
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(OP, || format!("MTU {mtu} of {}", self.link_what(name)), msg)
    }

    pub(super) fn link_set_mac(&self, name: &str, mac: MacAddr) -> Result<(), NetlinkError> {
        const OP: &str = "set_link_mac";
        let mut msg = self.named(OP, name)?;
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        self.set_link(OP, || format!("MAC {mac} of {}", self.link_what(name)), msg)
    }

    pub(super) fn pf_vfs(&self, pf: &str) -> Result<Vec<VfConfig>, NetlinkError> {
        const OP: &str = "vfs";
        let mut msg = self.named(OP, pf)?;
        // VF stats make the reply large and are not needed
        msg.attributes.push(LinkAttribute::ExtMask(vec![
            LinkExtentMask::Vf,
            LinkExtentMask::SkipStats,
        ]));
        let what = || format!("VFs of {}", self.link_what(pf));
        let msgs = self.exec(OP, what, RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)?;
        let link = msgs
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::Protocol {
                op: OP,
                what: format!("VFs of {}", self.link_what(pf)),
                message: "no link in the reply".into(),
            })?;
        let mut out = Vec::new();
        for attr in link.attributes {
            if let LinkAttribute::VfInfoList(list) = attr {
                out.extend(list.iter().filter_map(parse_vf));
            }
        }
        out.sort_by_key(|v| v.index);
        Ok(out)
    }

    pub(super) fn pf_set_vf(
        &self,
        pf: &str,
        vf: u32,
        setting: &VfSetting,
    ) -> Result<(), NetlinkError> {
        const OP: &str = "set_vf";
        let what = || format!("VF {vf} {setting} on {}", self.link_what(pf));
        setting.validate().map_err(|reason| NetlinkError::Invalid {
            op: OP,
            what: what(),
            reason,
        })?;
        let info = match *setting {
            VfSetting::Mac(m) => VfInfo::Mac(VfInfoMac::new(vf, &m.0)),
            VfSetting::Vlan { vlan, qos, proto } => {
                // the list form, the only one that carries the protocol
                VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                    vf,
                    u32::from(vlan),
                    u32::from(qos),
                    match proto {
                        VlanProto::Dot1Q => VlanProtocol::Ieee8021Q,
                        VlanProto::Dot1Ad => VlanProtocol::Ieee8021Ad,
                    },
                ))])
            }
            VfSetting::Rate { min, max } => VfInfo::Rate(VfInfoRate::new(vf, min, max)),
            VfSetting::SpoofCheck(on) => VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
            VfSetting::Trust(on) => VfInfo::Trust(VfInfoTrust::new(vf, on)),
            VfSetting::LinkState(s) => {
                VfInfo::LinkState(VfInfoLinkState::new(vf, NlVfLinkState::from(s.to_raw())))
            }
        };
        let mut msg = self.named(OP, pf)?;
        msg.attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![info])]));
        self.set_link(OP, what, msg)
    }
}

/// One `IFLA_VF_INFO` as a [`VfConfig`]; `None` without the MAC attribute (every driver with
/// `ndo_get_vf_config` sends it, and it carries the index).
fn parse_vf(info: &LinkVfInfo) -> Option<VfConfig> {
    let index = info.0.iter().find_map(|a| match a {
        VfInfo::Mac(m) => Some(m.vf_id),
        _ => None,
    })?;
    let mut vf = VfConfig::clean(index);
    vf.spoofchk = false;
    for attr in &info.0 {
        match attr {
            VfInfo::Mac(m) => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&m.mac[..6]);
                vf.mac = MacAddr(mac);
            }
            VfInfo::Vlan(v) => {
                vf.vlan = u16::try_from(v.vlan_id).unwrap_or(u16::MAX);
                vf.qos = u8::try_from(v.qos).unwrap_or(u8::MAX);
            }
            VfInfo::VlanList(list) => {
                for item in list {
                    if let VfVlan::Info(i) = item {
                        vf.vlan_proto = match i.protocol {
                            VlanProtocol::Ieee8021Ad => VlanProto::Dot1Ad,
                            _ => VlanProto::Dot1Q,
                        };
                    }
                }
            }
            VfInfo::Rate(r) => {
                vf.min_tx_rate = r.min_tx_rate;
                vf.max_tx_rate = r.max_tx_rate;
            }
            VfInfo::SpoofCheck(s) => vf.spoofchk = s.enabled,
            VfInfo::Trust(t) => vf.trust = t.enabled,
            VfInfo::LinkState(l) => {
                vf.link_state = match u32::from(l.state) {
                    1 => VfLinkState::Enable,
                    2 => VfLinkState::Disable,
                    _ => VfLinkState::Auto,
                }
            }
            _ => {}
        }
    }
    Some(vf)
}
