//! SR-IOV VF settings as the PF's driver holds them (`IFLA_VFINFO_LIST` of the PF): what
//! [`Netlink::vfs`](super::Netlink::vfs) reads back and
//! [`Netlink::set_vf`](super::Netlink::set_vf) writes, one setting per request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{MacAddr, ParseError};

/// Highest VLAN ID a VF can be put on (4095 is reserved by 802.1Q).
pub const VF_VLAN_MAX: u16 = 4094;
/// Highest 802.1p priority.
pub const VF_QOS_MAX: u8 = 7;

/// The VLAN protocol of a VF's port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum VlanProto {
    /// `802.1Q` (ethertype 0x8100), the kernel's default.
    #[default]
    #[serde(rename = "802.1Q")]
    Dot1Q,
    /// `802.1ad` (QinQ, ethertype 0x88a8).
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl VlanProto {
    /// The spelling sriov-cni and iproute2 use.
    pub fn as_str(self) -> &'static str {
        match self {
            VlanProto::Dot1Q => "802.1Q",
            VlanProto::Dot1Ad => "802.1ad",
        }
    }
}

impl FromStr for VlanProto {
    type Err = ParseError;
    /// Case-insensitive, as sriov-cni lower-cases the value before comparing.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "802.1q" => Ok(VlanProto::Dot1Q),
            "802.1ad" => Ok(VlanProto::Dot1Ad),
            _ => Err(ParseError {
                what: "VLAN protocol",
                value: s.to_owned(),
                expected: "802.1Q or 802.1ad",
            }),
        }
    }
}

impl fmt::Display for VlanProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the PF reports the VF's link to the VF (`IFLA_VF_LINK_STATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VfLinkState {
    /// Follow the PF's link (the kernel's default).
    #[default]
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

impl VfLinkState {
    /// sriov-cni's spelling (`link_state`).
    pub fn as_str(self) -> &'static str {
        match self {
            VfLinkState::Auto => "auto",
            VfLinkState::Enable => "enable",
            VfLinkState::Disable => "disable",
        }
    }

    /// The kernel's `IFLA_VF_LINK_STATE_*` value.
    pub fn to_raw(self) -> u32 {
        match self {
            VfLinkState::Auto => 0,
            VfLinkState::Enable => 1,
            VfLinkState::Disable => 2,
        }
    }
}

impl FromStr for VfLinkState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "auto" => Ok(VfLinkState::Auto),
            "enable" => Ok(VfLinkState::Enable),
            "disable" => Ok(VfLinkState::Disable),
            _ => Err(ParseError {
                what: "VF link state",
                value: s.to_owned(),
                expected: "auto, enable or disable",
            }),
        }
    }
}

impl fmt::Display for VfLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One VF's settings as read back from its PF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VfConfig {
    /// The VF index (the N of the PF's `virtfn<N>`).
    pub index: u32,
    /// The administrative MAC; all zero means "not set" (the VF picks its own).
    pub mac: MacAddr,
    /// 0 = no port VLAN.
    pub vlan: u16,
    pub qos: u8,
    pub vlan_proto: VlanProto,
    /// Mbps; 0 = no limit.
    pub min_tx_rate: u32,
    /// Mbps; 0 = no limit.
    pub max_tx_rate: u32,
    /// Reported `false` also when the driver does not implement it.
    pub spoofchk: bool,
    /// Reported `false` also when the driver does not implement it.
    pub trust: bool,
    pub link_state: VfLinkState,
}

impl VfConfig {
    /// The settings of a VF nothing has configured: no admin MAC, no VLAN, no rate limits,
    /// spoof checking on, not trusted, link state following the PF.
    pub fn clean(index: u32) -> Self {
        VfConfig {
            index,
            mac: MacAddr([0; 6]),
            vlan: 0,
            qos: 0,
            vlan_proto: VlanProto::Dot1Q,
            min_tx_rate: 0,
            max_tx_rate: 0,
            spoofchk: true,
            trust: false,
            link_state: VfLinkState::Auto,
        }
    }

    /// Apply `setting` to this snapshot (what the PF would report after it).
    pub fn apply(&mut self, setting: &VfSetting) {
        match *setting {
            VfSetting::Mac(m) => self.mac = m,
            VfSetting::Vlan { vlan, qos, proto } => {
                self.vlan = vlan;
                self.qos = qos;
                self.vlan_proto = proto;
            }
            VfSetting::Rate { min, max } => {
                self.min_tx_rate = min;
                self.max_tx_rate = max;
            }
            VfSetting::SpoofCheck(on) => self.spoofchk = on,
            VfSetting::Trust(on) => self.trust = on,
            VfSetting::LinkState(s) => self.link_state = s,
        }
    }

    /// The value this snapshot holds for the field `setting` changes (used to undo it).
    pub fn current(&self, setting: &VfSetting) -> VfSetting {
        match setting {
            VfSetting::Mac(_) => VfSetting::Mac(self.mac),
            VfSetting::Vlan { .. } => VfSetting::Vlan {
                vlan: self.vlan,
                qos: self.qos,
                proto: self.vlan_proto,
            },
            VfSetting::Rate { .. } => VfSetting::Rate {
                min: self.min_tx_rate,
                max: self.max_tx_rate,
            },
            VfSetting::SpoofCheck(_) => VfSetting::SpoofCheck(self.spoofchk),
            VfSetting::Trust(_) => VfSetting::Trust(self.trust),
            VfSetting::LinkState(_) => VfSetting::LinkState(self.link_state),
        }
    }
}

/// One VF setting, sent to the PF as one `IFLA_VF_INFO` with one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "setting", content = "value")]
pub enum VfSetting {
    /// `IFLA_VF_MAC`; all zero clears the administrative MAC.
    Mac(MacAddr),
    /// `IFLA_VF_VLAN_LIST` (VLAN, QoS and protocol in one request).
    Vlan {
        vlan: u16,
        qos: u8,
        proto: VlanProto,
    },
    /// `IFLA_VF_RATE` (Mbps, 0 = unlimited).
    Rate { min: u32, max: u32 },
    /// `IFLA_VF_SPOOFCHK`
    SpoofCheck(bool),
    /// `IFLA_VF_TRUST`
    Trust(bool),
    /// `IFLA_VF_LINK_STATE`
    LinkState(VfLinkState),
}

impl VfSetting {
    /// The field's name as sriov-cni's configuration spells it.
    pub fn field(&self) -> &'static str {
        match self {
            VfSetting::Mac(_) => "mac",
            VfSetting::Vlan { .. } => "vlan",
            VfSetting::Rate { .. } => "min_tx_rate/max_tx_rate",
            VfSetting::SpoofCheck(_) => "spoofchk",
            VfSetting::Trust(_) => "trust",
            VfSetting::LinkState(_) => "link_state",
        }
    }

    /// Whether `vf` already holds this setting.
    pub fn holds_on(&self, vf: &VfConfig) -> bool {
        vf.current(self) == *self
    }

    /// Kernel-side validity (what every driver refuses): VLAN 0..=4094, QoS 0..=7, a QoS or
    /// 802.1ad only with a VLAN, no multicast MAC.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            VfSetting::Mac(m) if m.is_multicast() => Err(format!("MAC {m} is a multicast address")),
            VfSetting::Vlan { vlan, .. } if vlan > VF_VLAN_MAX => {
                Err(format!("VLAN {vlan} is out of range 0-{VF_VLAN_MAX}"))
            }
            VfSetting::Vlan { qos, .. } if qos > VF_QOS_MAX => {
                Err(format!("QoS {qos} is out of range 0-{VF_QOS_MAX}"))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for VfSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VfSetting::Mac(m) => write!(f, "mac {m}"),
            VfSetting::Vlan { vlan, qos, proto } => {
                write!(f, "vlan {vlan} qos {qos} proto {proto}")
            }
            VfSetting::Rate { min, max } => {
                write!(f, "min_tx_rate {min} max_tx_rate {max}")
            }
            VfSetting::SpoofCheck(on) => write!(f, "spoofchk {}", on_off(*on)),
            VfSetting::Trust(on) => write!(f, "trust {}", on_off(*on)),
            VfSetting::LinkState(s) => write!(f, "link_state {s}"),
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_and_link_state_parse_like_sriov_cni() {
        assert_eq!("802.1Q".parse(), Ok(VlanProto::Dot1Q));
        assert_eq!("802.1q".parse(), Ok(VlanProto::Dot1Q));
        assert_eq!("802.1AD".parse(), Ok(VlanProto::Dot1Ad));
        let e = "802.1x".parse::<VlanProto>().expect_err("bad");
        assert!(e.to_string().contains("\"802.1x\""), "{e}");
        assert_eq!("disable".parse(), Ok(VfLinkState::Disable));
        assert!("Auto".parse::<VfLinkState>().is_err());
        assert_eq!(VfLinkState::Enable.to_raw(), 1);
    }

    #[test]
    fn apply_current_and_undo() {
        let mut vf = VfConfig::clean(3);
        let set = VfSetting::Vlan {
            vlan: 100,
            qos: 2,
            proto: VlanProto::Dot1Ad,
        };
        let undo = vf.current(&set);
        assert!(!set.holds_on(&vf));
        vf.apply(&set);
        assert!(set.holds_on(&vf));
        assert_eq!(
            (vf.vlan, vf.qos, vf.vlan_proto),
            (100, 2, VlanProto::Dot1Ad)
        );
        vf.apply(&undo);
        assert_eq!(vf, VfConfig::clean(3));
        assert!(
            VfSetting::Vlan {
                vlan: 4095,
                qos: 0,
                proto: VlanProto::Dot1Q
            }
            .validate()
            .is_err()
        );
        let j = serde_json::to_string(&VfSetting::Rate { min: 1, max: 2 }).expect("ser");
        assert_eq!(j, r#"{"setting":"rate","value":{"min":1,"max":2}}"#);
        let back: VfSetting = serde_json::from_str(&j).expect("de");
        assert_eq!(back, VfSetting::Rate { min: 1, max: 2 });
    }
}
