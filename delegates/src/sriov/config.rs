//! sriov-cni's network configuration, parsed and validated before anything is touched.
//!
//! Keys (matched case-insensitively, as Go does): `deviceID` (the VF's PCI address; else
//! `pciBusID`, else `runtimeConfig.deviceID`, the three places the meta-plugin injects it),
//! `vlan` 0-4094, `vlanQoS` 0-7, `vlanProto` 802.1q|802.1ad (any case), `mac` (overridden by
//! CNI_ARGS `MAC=`, then by `runtimeConfig.mac`), `min_tx_rate`, `max_tx_rate` (Mbps, 0 =
//! unlimited), `spoofchk` on|off, `trust` on|off, `link_state` auto|enable|disable, `mtu`,
//! `ipam`, `logLevel`, `logFile`. Every error names the field and the value.

use serde::Deserialize;

use super::sysfs::PciAddress;
use crate::cni::config::parse_config;
use crate::cni::{CniError, ErrorCode, NetConf, Request};
use crate::link::plugin::requested_mac;
use crate::netlink::{
    MacAddr, VF_QOS_MAX, VF_VLAN_MAX, VfConfig, VfLinkState, VfSetting, VlanProto,
};

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(rename = "deviceID", default)]
    device_id: String,
    #[serde(rename = "pciBusID", default)]
    pci_bus_id: String,
    #[serde(default)]
    vlan: Option<i64>,
    #[serde(rename = "vlanQoS", default)]
    vlan_qos: Option<i64>,
    #[serde(rename = "vlanProto", default)]
    vlan_proto: Option<String>,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    min_tx_rate: Option<i64>,
    #[serde(default)]
    max_tx_rate: Option<i64>,
    #[serde(default)]
    spoofchk: String,
    #[serde(default)]
    trust: String,
    #[serde(default)]
    link_state: String,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    vlan_trunk: String,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: RawRuntimeConfig,
}

#[derive(Debug, Default, Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    mac: String,
    #[serde(rename = "deviceID", default)]
    device_id: String,
}

/// A validated sriov configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SriovConfig {
    /// The VF's PCI address.
    pub device_id: PciAddress,
    /// `Some` when `vlan` is set; QoS and protocol default to 0 and 802.1Q.
    pub vlan: Option<(u16, u8, VlanProto)>,
    pub mac: Option<MacAddr>,
    /// `Some((min, max))` when either rate is set (the other is then 0).
    pub rate: Option<(u32, u32)>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
    pub mtu: Option<u32>,
    pub has_ipam: bool,
}

fn invalid(msg: String) -> CniError {
    CniError::invalid_config(msg)
}

impl SriovConfig {
    /// Parse and validate `req`'s configuration.
    pub fn parse(req: &Request, conf: &NetConf) -> Result<SriovConfig, CniError> {
        let raw: RawConfig = parse_config(&req.config)?;
        if !raw.vlan_trunk.is_empty() {
            return Err(CniError::new(
                ErrorCode::UnsupportedField,
                format!(
                    "vlan_trunk: {:?}: VLAN trunks on VFs are not supported by plexus-sriov",
                    raw.vlan_trunk
                ),
            ));
        }
        let device_id = device_id(&raw)?;
        let vlan = vlan(&raw)?;
        // sriov-cni's precedence is the reference plugins': config, CNI_ARGS MAC=, runtimeConfig
        let mac = requested_mac(req, &raw.mac, &raw.runtime_config.mac)?;
        let min = rate("min_tx_rate", raw.min_tx_rate)?;
        let max = rate("max_tx_rate", raw.max_tx_rate)?;
        let rate = match (min, max) {
            (None, None) => None,
            (min, max) => {
                let (min, max) = (min.unwrap_or(0), max.unwrap_or(0));
                if max != 0 && min > max {
                    return Err(invalid(format!(
                        "min_tx_rate: {min} Mbps is above max_tx_rate {max} Mbps"
                    )));
                }
                Some((min, max))
            }
        };
        let link_state = match raw.link_state.as_str() {
            "" => None,
            s => Some(s.parse::<VfLinkState>().map_err(|_| {
                invalid(format!(
                    "link_state: invalid value {s:?} (auto, enable or disable)"
                ))
            })?),
        };
        let mtu = match raw.mtu {
            None | Some(0) => None,
            Some(m) => Some(
                u32::try_from(m)
                    .ok()
                    .filter(|m| *m >= 68)
                    .ok_or_else(|| invalid(format!("mtu: invalid MTU {m} (68 or more)")))?,
            ),
        };
        Ok(SriovConfig {
            device_id,
            vlan,
            mac,
            rate,
            spoofchk: on_off("spoofchk", &raw.spoofchk)?,
            trust: on_off("trust", &raw.trust)?,
            link_state,
            mtu,
            has_ipam: conf.ipam_type().is_some(),
        })
    }

    /// The PF-side settings this configuration asks for, in the order they are applied (VLAN,
    /// MAC, rates, spoofchk, trust, link state). Like sriov-cni, a VF is always left without a
    /// port VLAN when `vlan` is unset, so a VLAN the VF still carries is cleared.
    pub fn vf_settings(&self, current: &VfConfig) -> Vec<VfSetting> {
        let mut out = Vec::new();
        match self.vlan {
            Some((vlan, qos, proto)) => out.push(VfSetting::Vlan { vlan, qos, proto }),
            None if current.vlan != 0 || current.qos != 0 => out.push(VfSetting::Vlan {
                vlan: 0,
                qos: 0,
                proto: VlanProto::Dot1Q,
            }),
            None => {}
        }
        if let Some(m) = self.mac {
            out.push(VfSetting::Mac(m));
        }
        if let Some((min, max)) = self.rate {
            out.push(VfSetting::Rate { min, max });
        }
        if let Some(on) = self.spoofchk {
            out.push(VfSetting::SpoofCheck(on));
        }
        if let Some(on) = self.trust {
            out.push(VfSetting::Trust(on));
        }
        if let Some(s) = self.link_state {
            out.push(VfSetting::LinkState(s));
        }
        out
    }
}

/// The VF's PCI address from `deviceID`, else `pciBusID`, else `runtimeConfig.deviceID`.
fn device_id(raw: &RawConfig) -> Result<PciAddress, CniError> {
    let candidates = [
        ("deviceID", raw.device_id.as_str()),
        ("pciBusID", raw.pci_bus_id.as_str()),
        (
            "runtimeConfig.deviceID",
            raw.runtime_config.device_id.as_str(),
        ),
    ];
    let mut chosen: Option<(&str, PciAddress)> = None;
    for (field, value) in candidates.into_iter().filter(|(_, v)| !v.is_empty()) {
        let pci = value
            .parse::<PciAddress>()
            .map_err(|e| invalid(format!("{field}: {e}")))?;
        match chosen {
            None => chosen = Some((field, pci)),
            Some((first, p)) if p != pci => {
                tracing::warn!("{field} {pci} differs from {first} {p}; using {first}");
            }
            Some(_) => {}
        }
    }
    chosen.map(|(_, p)| p).ok_or_else(|| {
        invalid(
            "deviceID: required: the VF's PCI address (the meta-plugin injects it from the \
             pod's device plugin allocation)"
                .to_string(),
        )
    })
}

/// `vlan`, `vlanQoS`, `vlanProto` with sriov-cni's rules.
fn vlan(raw: &RawConfig) -> Result<Option<(u16, u8, VlanProto)>, CniError> {
    let Some(vlan) = raw.vlan else {
        if let Some(q) = raw.vlan_qos {
            return Err(invalid(format!("vlanQoS: {q} is set but vlan is not")));
        }
        if let Some(p) = &raw.vlan_proto {
            return Err(invalid(format!("vlanProto: {p:?} is set but vlan is not")));
        }
        return Ok(None);
    };
    let vlan = u16::try_from(vlan)
        .ok()
        .filter(|v| *v <= VF_VLAN_MAX)
        .ok_or_else(|| invalid(format!("vlan: invalid VLAN ID {vlan} (0-{VF_VLAN_MAX})")))?;
    let qos = match raw.vlan_qos {
        None => 0,
        Some(q) => u8::try_from(q)
            .ok()
            .filter(|q| *q <= VF_QOS_MAX)
            .ok_or_else(|| invalid(format!("vlanQoS: invalid QoS {q} (0-{VF_QOS_MAX})")))?,
    };
    if qos != 0 && vlan == 0 {
        return Err(invalid(format!(
            "vlanQoS: {qos} needs a non-zero vlan (vlan is 0)"
        )));
    }
    let proto = match &raw.vlan_proto {
        None => VlanProto::Dot1Q,
        Some(p) => p.parse::<VlanProto>().map_err(|_| {
            invalid(format!(
                "vlanProto: invalid VLAN protocol {p:?} (802.1q or 802.1ad)"
            ))
        })?,
    };
    if proto == VlanProto::Dot1Ad && vlan == 0 {
        return Err(invalid(
            "vlanProto: 802.1ad needs a non-zero vlan (vlan is 0)".to_string(),
        ));
    }
    Ok(Some((vlan, qos, proto)))
}

fn rate(field: &str, raw: Option<i64>) -> Result<Option<u32>, CniError> {
    raw.map(|r| {
        u32::try_from(r)
            .map_err(|_| invalid(format!("{field}: invalid rate {r} (Mbps, 0 or more)")))
    })
    .transpose()
}

fn on_off(field: &str, raw: &str) -> Result<Option<bool>, CniError> {
    match raw {
        "" => Ok(None),
        "on" => Ok(Some(true)),
        "off" => Ok(Some(false)),
        other => Err(invalid(format!(
            "{field}: invalid value {other:?} (on or off)"
        ))),
    }
}

/// Only the keys that name the VF, so a configuration with other bad values still yields it.
#[derive(Debug, Default, Deserialize)]
struct RawDevice {
    #[serde(rename = "deviceID", default)]
    device_id: String,
    #[serde(rename = "pciBusID", default)]
    pci_bus_id: String,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: RawRuntimeDevice,
}

#[derive(Debug, Default, Deserialize)]
struct RawRuntimeDevice {
    #[serde(rename = "deviceID", default)]
    device_id: String,
}

/// The VF's PCI address of a configuration that may not validate (DEL must work anyway):
/// `None` when none is given or it does not parse.
pub fn lenient_device_id(config: &[u8]) -> Option<PciAddress> {
    let raw: RawDevice = parse_config(config).ok()?;
    let full = RawConfig {
        device_id: raw.device_id,
        pci_bus_id: raw.pci_bus_id,
        runtime_config: RawRuntimeConfig {
            mac: String::new(),
            device_id: raw.runtime_config.device_id,
        },
        ..RawConfig::default()
    };
    device_id(&full).ok()
}
