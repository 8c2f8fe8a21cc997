//! The pod selection annotations (COMPAT §3): `k8s.v1.cni.cncf.io/networks` and
//! `v1.multus-cni.io/default-network`.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::nad::json_kind;
use crate::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};

/// One network selected by a pod, validated.
///
/// Empty strings in the JSON form count as absent (as in Multus, whose Go structs cannot tell them
/// apart); the legacy `interfaceRequest` key fills `interface` when `interface` is absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkSelection {
    /// The NAD's namespace; `None` means the pod's namespace (or `multusNamespace` for the
    /// default-network annotation): the caller decides.
    pub namespace: Option<String>,
    /// The NAD's name (a DNS-1123 label).
    pub name: String,
    /// The requested interface name in the pod.
    pub interface: Option<String>,
    /// Requested IPs or CIDRs, as written (validated) → `runtimeConfig.ips` and CNI_ARGS `IP=`.
    pub ips: Vec<String>,
    /// Requested MAC, as written (validated) → `runtimeConfig.mac` and CNI_ARGS `MAC=`.
    pub mac: Option<String>,
    /// Gateways whose default route this attachment should own.
    pub default_route: Vec<IpAddr>,
    /// `portMappings`, verbatim (a list of objects).
    pub port_mappings: Option<Value>,
    /// `bandwidth`, verbatim (an object).
    pub bandwidth: Option<Value>,
    /// `cni-args`, merged into the delegate's `args.cni` (the annotation wins).
    pub cni_args: Option<Map<String, Value>>,
    /// Requested InfiniBand GUID, as written (validated).
    pub infiniband_guid: Option<String>,
    /// Requested `deviceID` (a PCI address for SR-IOV).
    pub device_id: Option<String>,
    /// IPAMClaim name (multi-network spec v1.3); never together with `ips`.
    pub ipam_claim_reference: Option<String>,
}

/// A selection annotation that cannot be used. Every message names the annotation, the entry index
/// (0-based), the field and the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("annotation {annotation}: invalid JSON ({message}): {value:?}")]
    Json {
        annotation: &'static str,
        message: String,
        value: String,
    },
    #[error(
        "annotation {annotation}: must be a JSON list of network selections, got {found}: {value:?}"
    )]
    NotAList {
        annotation: &'static str,
        found: &'static str,
        value: String,
    },
    #[error("annotation {annotation}: entry {index} must be an object, got {found}: {value}")]
    EntryNotObject {
        annotation: &'static str,
        index: usize,
        found: &'static str,
        value: String,
    },
    #[error("annotation {annotation}: entry {index}: field \"{field}\" = {value}: {reason}")]
    Invalid {
        annotation: &'static str,
        index: usize,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("annotation {annotation}: must select exactly one network, got {count}: {value:?}")]
    DefaultNetworkCount {
        annotation: &'static str,
        count: usize,
        value: String,
    },
}

/// Parses the `k8s.v1.cni.cncf.io/networks` annotation.
///
/// A value containing `[`, `{` or `"` is a JSON list of selection objects (a bare object is an
/// error); otherwise a comma-separated list of `[<namespace>/]<name>[@<ifname>]`, whitespace trimmed.
/// An empty (or all-whitespace) value selects nothing.
pub fn parse_networks_annotation(value: &str) -> Result<Vec<NetworkSelection>, SelectionError> {
    parse_with(value, NETWORKS_ANNOTATION)
}

/// Parses the `v1.multus-cni.io/default-network` annotation: `[<ns>/]<name>` (the JSON form is
/// accepted too, as Multus parses both with the same code). Exactly one network must be selected.
pub fn parse_default_network_annotation(value: &str) -> Result<NetworkSelection, SelectionError> {
    let mut selections = parse_with(value, DEFAULT_NETWORK_ANNOTATION)?;
    if selections.len() != 1 {
        return Err(SelectionError::DefaultNetworkCount {
            annotation: DEFAULT_NETWORK_ANNOTATION,
            count: selections.len(),
            value: value.to_owned(),
        });
    }
    Ok(selections.remove(0))
}

fn parse_with(
    value: &str,
    annotation: &'static str,
) -> Result<Vec<NetworkSelection>, SelectionError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    if value.contains(['[', '{', '"']) {
        parse_json(value, annotation)
    } else {
        value
            .split(',')
            .enumerate()
            .map(|(index, item)| parse_text_item(item, index, annotation))
            .collect()
    }
}

fn parse_text_item(
    item: &str,
    index: usize,
    annotation: &'static str,
) -> Result<NetworkSelection, SelectionError> {
    let invalid = |field, value: &str, reason: &str| SelectionError::Invalid {
        annotation,
        index,
        field,
        value: format!("{value:?}"),
        reason: reason.to_owned(),
    };
    let item = item.trim();
    if item.is_empty() {
        return Err(invalid(
            "name",
            item,
            "empty item in the comma-separated list",
        ));
    }
    let (namespace, rest) = match item.split_once('/') {
        Some((_, rest)) if rest.contains('/') => {
            return Err(invalid(
                "name",
                item,
                "expected [<namespace>/]<name>[@<ifname>], found more than one '/'",
            ));
        }
        Some((ns, rest)) => (Some(ns.trim()), rest),
        None => (None, item),
    };
    let (name, interface) = match rest.split_once('@') {
        Some((_, ifname)) if ifname.contains('@') => {
            return Err(invalid(
                "interface",
                item,
                "expected [<namespace>/]<name>[@<ifname>], found more than one '@'",
            ));
        }
        Some((name, ifname)) => (name.trim(), Some(ifname.trim())),
        None => (rest.trim(), None),
    };
    if let Some(ns) = namespace {
        check_dns1123_label(ns).map_err(|reason| invalid("namespace", ns, reason))?;
    }
    check_dns1123_label(name).map_err(|reason| invalid("name", name, reason))?;
    if let Some(ifname) = interface {
        check_ifname(ifname).map_err(|reason| invalid("interface", ifname, reason))?;
    }
    Ok(NetworkSelection {
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
        interface: interface.map(str::to_owned),
        ..NetworkSelection::default()
    })
}

fn parse_json(
    value: &str,
    annotation: &'static str,
) -> Result<Vec<NetworkSelection>, SelectionError> {
    let parsed: Value = serde_json::from_str(value).map_err(|err| SelectionError::Json {
        annotation,
        message: err.to_string(),
        value: value.to_owned(),
    })?;
    let Value::Array(entries) = parsed else {
        return Err(SelectionError::NotAList {
            annotation,
            found: json_kind(&parsed),
            value: value.to_owned(),
        });
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| match entry {
            Value::Object(obj) => parse_json_entry(obj, index, annotation),
            other => Err(SelectionError::EntryNotObject {
                annotation,
                index,
                found: json_kind(other),
                value: other.to_string(),
            }),
        })
        .collect()
}

/// The JSON keys, matched ASCII case-insensitively like Go's `encoding/json`.
const KEYS: [&str; 13] = [
    "name",
    "namespace",
    "ips",
    "mac",
    "interface",
    "interfaceRequest",
    "portMappings",
    "bandwidth",
    "cni-args",
    "default-route",
    "infiniband-guid",
    "deviceID",
    "ipam-claim-reference",
];

fn parse_json_entry(
    obj: &Map<String, Value>,
    index: usize,
    annotation: &'static str,
) -> Result<NetworkSelection, SelectionError> {
    let invalid = |field: &'static str, value: &Value, reason: &str| SelectionError::Invalid {
        annotation,
        index,
        field,
        value: value.to_string(),
        reason: reason.to_owned(),
    };
    // A non-empty string, `None` for null/"" (Go zero value), an error for any other type.
    let opt_string =
        |field: &'static str, value: &Value| -> Result<Option<String>, SelectionError> {
            match value {
                Value::Null => Ok(None),
                Value::String(s) if s.is_empty() => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                other => Err(invalid(field, other, "must be a string")),
            }
        };
    let string_list = |field: &'static str, value: &Value| -> Result<Vec<String>, SelectionError> {
        match value {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(invalid(field, other, "must be a list of strings")),
                })
                .collect(),
            other => Err(invalid(field, other, "must be a list of strings")),
        }
    };

    let mut sel = NetworkSelection::default();
    let mut name: Option<String> = None;
    let mut legacy_interface: Option<String> = None;
    for (key, value) in obj {
        let Some(field) = KEYS.iter().copied().find(|k| k.eq_ignore_ascii_case(key)) else {
            continue; // unknown keys are ignored, as in Multus
        };
        match field {
            "name" => name = opt_string("name", value)?,
            "namespace" => sel.namespace = opt_string("namespace", value)?,
            "ips" => sel.ips = string_list("ips", value)?,
            "mac" => sel.mac = opt_string("mac", value)?,
            "interface" => sel.interface = opt_string("interface", value)?,
            "interfaceRequest" => legacy_interface = opt_string("interfaceRequest", value)?,
            "portMappings" => match value {
                Value::Null => sel.port_mappings = None,
                Value::Array(items) => {
                    for item in items {
                        check_typed_object(
                            item,
                            &["hostPort", "containerPort"],
                            &["protocol", "hostIP"],
                        )
                        .map_err(|reason| invalid("portMappings", item, reason))?;
                    }
                    sel.port_mappings = Some(value.clone());
                }
                other => return Err(invalid("portMappings", other, "must be a list of objects")),
            },
            "bandwidth" => match value {
                Value::Null => sel.bandwidth = None,
                Value::Object(_) => {
                    check_typed_object(
                        value,
                        &["ingressRate", "ingressBurst", "egressRate", "egressBurst"],
                        &[],
                    )
                    .map_err(|reason| invalid("bandwidth", value, reason))?;
                    sel.bandwidth = Some(value.clone());
                }
                other => return Err(invalid("bandwidth", other, "must be an object")),
            },
            "cni-args" => match value {
                Value::Null => sel.cni_args = None,
                Value::Object(args) => sel.cni_args = Some(args.clone()),
                other => return Err(invalid("cni-args", other, "must be an object")),
            },
            "default-route" => {
                sel.default_route = string_list("default-route", value)?
                    .iter()
                    .map(|gw| {
                        gw.parse::<IpAddr>().map_err(|_| {
                            invalid(
                                "default-route",
                                &Value::String(gw.clone()),
                                "not a valid IP address",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "infiniband-guid" => sel.infiniband_guid = opt_string("infiniband-guid", value)?,
            "deviceID" => sel.device_id = opt_string("deviceID", value)?,
            "ipam-claim-reference" => {
                sel.ipam_claim_reference = opt_string("ipam-claim-reference", value)?
            }
            _ => {}
        }
    }

    sel.name = name.ok_or_else(|| SelectionError::Invalid {
        annotation,
        index,
        field: "name",
        value: obj
            .get("name")
            .map_or_else(|| "(missing)".to_owned(), Value::to_string),
        reason: "a network selection needs a non-empty \"name\"".to_owned(),
    })?;
    if sel.interface.is_none() {
        sel.interface = legacy_interface;
    }

    let invalid_str = |field: &'static str, value: &str, reason: &str| {
        invalid(field, &Value::String(value.to_owned()), reason)
    };
    check_dns1123_label(&sel.name).map_err(|r| invalid_str("name", &sel.name, r))?;
    if let Some(ns) = &sel.namespace {
        check_dns1123_label(ns).map_err(|r| invalid_str("namespace", ns, r))?;
    }
    if let Some(ifname) = &sel.interface {
        check_ifname(ifname).map_err(|r| invalid_str("interface", ifname, r))?;
    }
    for ip in &sel.ips {
        check_ip_or_cidr(ip).map_err(|r| invalid_str("ips", ip, r))?;
    }
    if let Some(mac) = &sel.mac {
        parse_hardware_addr(mac)
            .ok_or("not a valid MAC address")
            .map_err(|r| invalid_str("mac", mac, r))?;
    }
    if let Some(guid) = &sel.infiniband_guid {
        parse_hardware_addr(guid)
            .ok_or("not a valid InfiniBand GUID")
            .map_err(|r| invalid_str("infiniband-guid", guid, r))?;
    }
    if let Some(claim) = &sel.ipam_claim_reference
        && !sel.ips.is_empty()
    {
        return Err(invalid_str(
            "ipam-claim-reference",
            claim,
            "cannot be used together with \"ips\"",
        ));
    }
    Ok(sel)
}

/// Checks an object whose listed keys (any case), when present and not null, are integers or strings.
fn check_typed_object(
    value: &Value,
    int_keys: &[&str],
    string_keys: &[&str],
) -> Result<(), &'static str> {
    let Value::Object(obj) = value else {
        return Err("must be an object");
    };
    for (key, v) in obj {
        if v.is_null() {
            continue;
        }
        if int_keys.iter().any(|k| k.eq_ignore_ascii_case(key)) && !(v.is_i64() || v.is_u64()) {
            return Err("has a non-integer value where an integer is expected");
        }
        if string_keys.iter().any(|k| k.eq_ignore_ascii_case(key)) && !v.is_string() {
            return Err("has a non-string value where a string is expected");
        }
    }
    Ok(())
}

/// Checks a DNS-1123 label: at most 63 characters of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn check_dns1123_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > 63 {
        return Err("must be at most 63 characters (DNS-1123 label)");
    }
    let ok_inner = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    if !ok_inner
        || !bytes.first().is_some_and(|&b| alnum(b))
        || !bytes.last().is_some_and(|&b| alnum(b))
    {
        return Err(
            "must be a DNS-1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character",
        );
    }
    Ok(())
}

/// Checks a Linux interface name: 1–15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn check_ifname(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("interface name must not be empty");
    }
    if s.len() > 15 {
        return Err("interface name must be at most 15 bytes");
    }
    if s == "." || s == ".." {
        return Err("interface name must not be '.' or '..'");
    }
    if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err("interface name must not contain '/', ':' or whitespace");
    }
    Ok(())
}

/// Checks an IP address or a CIDR (`<ip>/<prefix>`, the address may have host bits set).
pub fn check_ip_or_cidr(s: &str) -> Result<(), &'static str> {
    match s.split_once('/') {
        None => s
            .parse::<IpAddr>()
            .map(|_| ())
            .map_err(|_| "not a valid IP address"),
        Some((ip, prefix)) => {
            let ip: IpAddr = ip.parse().map_err(|_| "not a valid CIDR (bad address)")?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let valid_digits = !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_digit())
                && (prefix == "0" || !prefix.starts_with('0'));
            match prefix.parse::<u8>() {
                Ok(len) if valid_digits && len <= max => Ok(()),
                _ => Err("not a valid CIDR (bad prefix length)"),
            }
        }
    }
}

/// Parses a hardware address the way Go's `net.ParseMAC` does (Multus validates `mac` and
/// `infiniband-guid` with it): 6, 8 or 20 bytes written as `xx:xx:..`, `xx-xx-..` or `xxxx.xxxx...`.
pub fn parse_hardware_addr(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() < 14 {
        return None;
    }
    let hex = |pair: &[u8]| -> Option<u8> {
        let text = std::str::from_utf8(pair).ok()?;
        if pair.iter().all(u8::is_ascii_hexdigit) {
            u8::from_str_radix(text, 16).ok()
        } else {
            None
        }
    };
    let valid_len = |n: usize| matches!(n, 6 | 8 | 20);
    let mut out = Vec::new();
    if b[2] == b':' || b[2] == b'-' {
        if !(b.len() + 1).is_multiple_of(3) {
            return None;
        }
        let n = (b.len() + 1) / 3;
        if !valid_len(n) {
            return None;
        }
        let sep = b[2];
        for i in 0..n {
            let x = i * 3;
            out.push(hex(&b[x..x + 2])?);
            if i + 1 < n && b[x + 2] != sep {
                return None;
            }
        }
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) {
            return None;
        }
        let n = 2 * (b.len() + 1) / 5;
        if !valid_len(n) {
            return None;
        }
        for i in 0..n / 2 {
            let x = i * 5;
            out.push(hex(&b[x..x + 2])?);
            out.push(hex(&b[x + 2..x + 4])?);
            if i + 1 < n / 2 && b[x + 4] != b'.' {
                return None;
            }
        }
    } else {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_addresses_like_go() {
        assert_eq!(
            parse_hardware_addr("02:23:45:67:89:0a"),
            Some(vec![2, 0x23, 0x45, 0x67, 0x89, 0x0a])
        );
        assert!(parse_hardware_addr("02-23-45-67-89-0A").is_some());
        assert!(parse_hardware_addr("0223.4567.890a").is_some());
        assert!(parse_hardware_addr("c2:cc:cc:cc:cc:cc:cc:cc").is_some()); // GUID, EUI-64
        assert!(
            parse_hardware_addr("00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01")
                .is_some()
        );
        assert!(parse_hardware_addr("02:23:45:67:89").is_none());
        assert!(parse_hardware_addr("02:23:45:67:89:0g").is_none());
        assert!(parse_hardware_addr("02:23-45:67:89:0a").is_none());
        assert!(parse_hardware_addr("02:23:45:67:89:0a:").is_none());
        assert!(parse_hardware_addr("zz").is_none());
    }

    #[test]
    fn ip_or_cidr() {
        for ok in [
            "10.1.2.3",
            "10.1.2.3/24",
            "fd00::1",
            "fd00::1/64",
            "0.0.0.0/0",
        ] {
            assert!(check_ip_or_cidr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.1.2",
            "10.1.2.3/33",
            "fd00::1/129",
            "10.1.2.3/",
            "10.1.2.3/08",
            "x/8",
        ] {
            assert!(check_ip_or_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_and_ifnames() {
        assert!(check_dns1123_label("a-b-1").is_ok());
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(check_dns1123_label(bad).is_err(), "{bad}");
        }
        assert!(check_ifname("net-mv").is_ok());
        assert!(check_ifname("123456789012345").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a\tb",
            "a:b",
            "1234567890123456",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
