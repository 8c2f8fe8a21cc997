//! PCI addresses (`domain:bus:device.function`, e.g. `0000:03:02.1`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PCI address as sysfs names devices: `dddd:bb:dd.f` (hex, lower case when displayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    /// 0..=0x1f
    pub device: u8,
    /// 0..=7
    pub function: u8,
}

/// A string that is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid PCI address {value:?}: {reason} (expected domain:bus:device.function, e.g. 0000:03:02.1)"
)]
pub struct PciAddressError {
    pub value: String,
    pub reason: &'static str,
}

impl PciAddress {
    pub const fn new(domain: u32, bus: u8, device: u8, function: u8) -> Self {
        PciAddress {
            domain,
            bus,
            device,
            function,
        }
    }

    /// The 16-bit routing ID (bus, device, function) used to number VFs.
    pub fn routing_id(&self) -> u16 {
        (u16::from(self.bus) << 8) | (u16::from(self.device) << 3) | u16::from(self.function)
    }

    /// The address with the same domain and the given routing ID.
    pub fn with_routing_id(&self, rid: u16) -> Self {
        PciAddress {
            domain: self.domain,
            bus: (rid >> 8) as u8,
            device: ((rid >> 3) & 0x1f) as u8,
            function: (rid & 0x7) as u8,
        }
    }
}

fn hex_field(s: &str, max_len: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl FromStr for PciAddress {
    type Err = PciAddressError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let err = |reason| PciAddressError {
            value: value.to_string(),
            reason,
        };
        let (domain, rest) = value.split_once(':').ok_or_else(|| err("no ':'"))?;
        let (bus, rest) = rest
            .split_once(':')
            .ok_or_else(|| err("no domain (need two ':')"))?;
        let (device, function) = rest.split_once('.').ok_or_else(|| err("no '.'"))?;
        let domain = hex_field(domain, 8).ok_or_else(|| err("bad domain"))?;
        let bus = hex_field(bus, 2).ok_or_else(|| err("bad bus"))?;
        let device = hex_field(device, 2)
            .filter(|d| *d <= 0x1f)
            .ok_or_else(|| err("bad device (00-1f)"))?;
        let function = hex_field(function, 1)
            .filter(|f| *f <= 7)
            .ok_or_else(|| err("bad function (0-7)"))?;
        Ok(PciAddress {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
