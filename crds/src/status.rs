//! The `k8s.v1.cni.cncf.io/network-status` annotation (COMPAT §4).
//!
//! The writer reproduces the bytes of Multus (network-attachment-definition-client's
//! `SetNetworkStatus`): each entry is Go's `json.MarshalIndent(entry, "", "    ")`, entries are
//! joined by `,` and wrapped in `[` `]`. Field order and omission rules follow the Go struct tags
//! (`omitempty` everywhere but `name` and `dns`), and strings are escaped as Go escapes them (`<`,
//! `>`, `&`, U+2028 and U+2029 as `\uXXXX`).

use std::io;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::ser::{Formatter, PrettyFormatter};

use crate::NETWORK_STATUS_ANNOTATION;

/// The device-info spec version Plexus writes.
pub const DEVICE_INFO_VERSION: &str = "1.1.0";

/// One entry of the network-status annotation: one interface in the pod sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// `<ns>/<nad>` for NAD networks; the CNI `name` for a file-based cluster network.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The interface name in the pod.
    #[serde(
        default,
        skip_serializing_if = "is_none_or_empty",
        deserialize_with = "empty_as_none"
    )]
    pub interface: Option<String>,
    /// Bare addresses (no prefix length).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub ips: Vec<String>,
    /// The interface's MAC address.
    #[serde(
        default,
        skip_serializing_if = "is_none_or_empty",
        deserialize_with = "empty_as_none"
    )]
    pub mac: Option<String>,
    /// The interface's MTU; omitted when unknown (`None` or 0).
    #[serde(
        default,
        skip_serializing_if = "is_none_or_zero",
        deserialize_with = "zero_as_none"
    )]
    pub mtu: Option<u32>,
    /// `true` only on the cluster network.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_as_default"
    )]
    pub default: bool,
    /// DNS settings from the CNI result; always written (`{}` at least).
    #[serde(default, deserialize_with = "null_as_default")]
    pub dns: Dns,
    /// Device information (SR-IOV and other device-backed networks).
    #[serde(
        rename = "device-info",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_info: Option<DeviceInfo>,
    /// Default-route gateways of this attachment.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub gateway: Vec<String>,
}

/// DNS settings (CNI result `dns`), every field omitted when empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub nameservers: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub domain: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub search: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub options: Vec<String>,
}

/// Device information per the NPWG device-info spec (`type` is `pci`, `vdpa`, `vhost-user` or
/// `memif`; the matching section carries the details).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub device_type: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaDevice>,
    #[serde(
        rename = "vhost-user",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vhost_user: Option<VhostUserDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memif: Option<MemifDevice>,
}

impl DeviceInfo {
    /// `{"type": "pci", "version": "1.1.0", "pci": {"pci-address": <address>}}`.
    pub fn pci(pci_address: impl Into<String>) -> Self {
        Self {
            device_type: "pci".to_owned(),
            version: DEVICE_INFO_VERSION.to_owned(),
            pci: Some(PciDevice {
                pci_address: pci_address.into(),
                ..PciDevice::default()
            }),
            ..Self::default()
        }
    }
}

/// The `pci` section of [`DeviceInfo`]. Fields in the order of the NPWG client's Go struct
/// (every one optional, omitted when empty).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PciDevice {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub pci_address: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub vhost_net: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub rdma_device: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub pf_pci_address: String,
    /// The VF representor netdev on the host (switchdev mode); device-info spec 1.1.0.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub representor_device: String,
}

/// The `vdpa` section of [`DeviceInfo`], in the Go struct's field order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VdpaDevice {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub parent_device: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub driver: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub path: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub pci_address: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub pf_pci_address: String,
    /// The VF representor netdev on the host (switchdev mode); device-info spec 1.1.0.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub representor_device: String,
}

/// The `vhost-user` section of [`DeviceInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VhostUserDevice {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub mode: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub path: String,
}

/// The `memif` section of [`DeviceInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemifDevice {
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub role: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub path: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub mode: String,
}

/// A network-status annotation that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("annotation {annotation}: cannot serialize entry {index} (name {name:?}): {source}")]
    Serialize {
        annotation: &'static str,
        index: usize,
        name: String,
        source: serde_json::Error,
    },
    #[error("annotation {annotation}: not a JSON list of network statuses ({source}): {value:?}")]
    Parse {
        annotation: &'static str,
        value: String,
        source: serde_json::Error,
    },
}

/// Writes the network-status annotation value, byte for byte as Multus does (see the module doc).
/// An empty slice gives `[]`.
pub fn write_network_status(statuses: &[NetworkStatus]) -> Result<String, StatusError> {
    let mut out = Vec::with_capacity(256 * statuses.len().max(1));
    out.push(b'[');
    for (index, status) in statuses.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoIndentFormatter::new());
        status
            .serialize(&mut ser)
            .map_err(|source| StatusError::Serialize {
                annotation: NETWORK_STATUS_ANNOTATION,
                index,
                name: status.name.clone(),
                source,
            })?;
    }
    out.push(b']');
    // Only UTF-8 strings and ASCII punctuation were written.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Parses a network-status annotation value (any JSON layout).
pub fn parse_network_status(value: &str) -> Result<Vec<NetworkStatus>, StatusError> {
    serde_json::from_str(value).map_err(|source| StatusError::Parse {
        annotation: NETWORK_STATUS_ANNOTATION,
        value: value.to_owned(),
        source,
    })
}

/// `PrettyFormatter` with a 4-space indent that also escapes strings like Go's `encoding/json`
/// (HTML-safe: `<`, `>`, `&`, and the JavaScript line terminators U+2028/U+2029).
struct GoIndentFormatter(PrettyFormatter<'static>);

impl GoIndentFormatter {
    fn new() -> Self {
        Self(PrettyFormatter::with_indent(b"    "))
    }
}

impl Formatter for GoIndentFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

fn is_none_or_empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

fn is_none_or_zero(v: &Option<u32>) -> bool {
    v.is_none_or(|v| v == 0)
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Go leaves a field at its zero value for `null`.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn zero_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.filter(|&v| v != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list() {
        assert_eq!(write_network_status(&[]).unwrap(), "[]");
        assert!(parse_network_status("[]").unwrap().is_empty());
    }

    #[test]
    fn minimal_entry_keeps_name_and_dns() {
        let s = NetworkStatus {
            name: "x".into(),
            interface: Some(String::new()),
            mtu: Some(0),
            ..NetworkStatus::default()
        };
        assert_eq!(
            write_network_status(&[s]).unwrap(),
            "[{\n    \"name\": \"x\",\n    \"dns\": {}\n}]"
        );
    }

    #[test]
    fn go_html_escaping() {
        let s = NetworkStatus {
            name: "a<b>&c\u{2028}".into(),
            ..NetworkStatus::default()
        };
        let out = write_network_status(std::slice::from_ref(&s)).unwrap();
        assert!(
            out.contains(r#""name": "a\u003cb\u003e\u0026c\u2028""#),
            "{out}"
        );
        assert_eq!(parse_network_status(&out).unwrap(), vec![s]);
    }

    #[test]
    fn dns_fields_and_nulls() {
        let parsed = parse_network_status(
            r#"[{"name":"n","ips":null,"dns":{"nameservers":["10.0.0.10"],"domain":"cluster.local","search":["a","b"]},"mtu":0,"interface":""}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0].dns.nameservers, ["10.0.0.10"]);
        assert_eq!(parsed[0].mtu, None);
        assert_eq!(parsed[0].interface, None);
        let out = write_network_status(&parsed).unwrap();
        assert_eq!(
            out,
            "[{\n    \"name\": \"n\",\n    \"dns\": {\n        \"nameservers\": [\n            \"10.0.0.10\"\n        ],\n        \"domain\": \"cluster.local\",\n        \"search\": [\n            \"a\",\n            \"b\"\n        ]\n    }\n}]"
        );
    }

    #[test]
    fn not_a_list_is_an_error_naming_the_value() {
        let err = parse_network_status(r#"{"name":"x"}"#).unwrap_err();
        assert!(err.to_string().contains(NETWORK_STATUS_ANNOTATION), "{err}");
        assert!(err.to_string().contains(r#"{\"name\":\"x\"}"#), "{err}");
    }
}
