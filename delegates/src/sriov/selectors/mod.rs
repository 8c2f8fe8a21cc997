//! VF selection of the SR-IOV network device plugin config (`/etc/pcidp/config.json`), as pure
//! functions over the [`Sysfs`](super::sysfs::Sysfs) model.
//!
//! Config: `resourceList[]` of `resourceName`, `resourcePrefix` (default `intel.com`),
//! `deviceType` (only `netDevice`, the default), `excludeTopology`, and `selectors`: one object,
//! or a list of objects where the first selector matching a device is the one that selected it.
//! Keys match case-insensitively, as Go's `encoding/json` does.
//!
//! Within one selector every non-empty criterion must hold (AND), and within a criterion's list any
//! item may match (OR): `vendors`, `devices` (hex, `8086` or `0x8086`), `drivers`,
//! `pciAddresses`, `pfNames` / `rootDevices` (PF netdev name / PF PCI address, optionally with VF
//! index ranges `ens1f0#0,2-7`), `linkTypes` (`ether`, `infiniband`; of the VF netdev, else of the
//! PF), `isRdma` (the VF has an RDMA device). `needVhostNet` selects nothing; it is carried for the
//! allocation. A missing or empty `selectors` matches every VF.
//!
//! Differences from upstream, on purpose: pools hold SR-IOV VFs only (not PFs or non-SR-IOV
//! NICs); a device is in at most one pool, the first resource in `resourceList` order that
//! selects it; `pfNames` match exactly (case-insensitively), regular expressions are refused at
//! startup instead of matched; several `pfNames`/`rootDevices` items for the same PF are a union
//! (upstream only looks at the first); selectors this implementation does not support
//! (`ddpProfiles`, `vdpaType`, `pKeys`, `acpiIndexes`, `auxTypes`, `nicNames`) are startup errors
//! rather than ignored, since ignoring a filter would put more devices in the pool. A bad range,
//! vendor or address is a startup error naming the resource, the selector and the value.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::RangeInclusive;

use serde::Deserialize;
use serde_json::Value;

use super::sysfs::{PciAddress, Sysfs, SysfsError, Vf};
use crate::cni::config::{from_value, parse_config};
use crate::cni::error::CniError;

/// The default `resourcePrefix` (the upstream `--resource-prefix` default).
pub const DEFAULT_PREFIX: &str = "intel.com";

/// Selector keys of upstream that this implementation refuses rather than ignores.
const UNSUPPORTED_SELECTORS: &[&str] = &[
    "ddpProfiles",
    "vdpaType",
    "pKeys",
    "acpiIndexes",
    "auxTypes",
    "nicNames",
];

/// A device plugin config that is wrong; every variant names the resource and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("device plugin config: {0}")]
    Decode(CniError),
    #[error("device plugin config: resourceList[{index}]: empty resourceName")]
    EmptyName { index: usize },
    #[error(
        "device plugin config: resource {resource:?}: invalid resourceName: only letters, digits and '_' are allowed"
    )]
    BadName { resource: String },
    #[error("device plugin config: resource {resource:?}: invalid resourcePrefix {prefix:?}")]
    BadPrefix { resource: String, prefix: String },
    #[error(
        "device plugin config: resource {resource:?}: duplicate resource {full:?} (resourceList[{first}] and [{second}])"
    )]
    Duplicate {
        resource: String,
        full: String,
        first: usize,
        second: usize,
    },
    #[error(
        "device plugin config: resource {resource:?}: deviceType {value:?} is not supported (only \"netDevice\")"
    )]
    UnsupportedDeviceType { resource: String, value: String },
    #[error(
        "device plugin config: resource {resource:?}: selectors must be an object or a list of objects, got {value}"
    )]
    BadSelectors { resource: String, value: String },
    #[error(
        "device plugin config: resource {resource:?}: selectors[{selector}].{key}: invalid value {value:?}: {reason}"
    )]
    BadSelector {
        resource: String,
        selector: usize,
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// The parsed and validated config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DpConfig {
    pub resources: Vec<ResourceConfig>,
}

/// One `resourceList` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceConfig {
    pub name: String,
    pub prefix: String,
    pub exclude_topology: bool,
    /// At least one; the first matching a device selected it.
    pub selectors: Vec<Selector>,
}

impl ResourceConfig {
    /// `<prefix>/<name>`, the kubelet resource name.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.prefix, self.name)
    }
}

/// One selector object. Empty lists do not filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub vendors: Vec<u16>,
    pub devices: Vec<u16>,
    pub drivers: Vec<String>,
    pub pci_addresses: Vec<PciAddress>,
    pub pf_names: Vec<PfMatch<String>>,
    pub root_devices: Vec<PfMatch<PciAddress>>,
    pub link_types: Vec<String>,
    pub is_rdma: bool,
    pub need_vhost_net: bool,
}

/// A `pfNames`/`rootDevices` item: a PF and optionally which VF indices of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfMatch<T> {
    pub pf: T,
    /// `None`: every VF of the PF.
    pub vfs: Option<VfRanges>,
}

impl<T> PfMatch<T> {
    fn covers(&self, index: u32) -> bool {
        self.vfs.as_ref().is_none_or(|r| r.contains(index))
    }
}

/// VF index ranges `0,2-7` (both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfRanges(pub Vec<RangeInclusive<u32>>);

impl VfRanges {
    pub fn contains(&self, index: u32) -> bool {
        self.0.iter().any(|r| r.contains(&index))
    }

    /// Parse `0,2-7`. Indices beyond the PF's `sriov_totalvfs` are accepted (they match nothing).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("no VF index after '#'".into());
        }
        let num = |t: &str| -> Result<u32, String> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{t:?} is not a VF index (a number >= 0)"));
            }
            t.parse()
                .map_err(|_| format!("VF index {t:?} is too large"))
        };
        let mut out = Vec::new();
        for entry in s.split(',') {
            let range = match entry.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(format!("range {entry:?} ends before it starts"));
                    }
                    a..=b
                }
                None => {
                    let n = num(entry)?;
                    n..=n
                }
            };
            out.push(range);
        }
        Ok(VfRanges(out))
    }
}

impl fmt::Display for VfRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    resource_list: Vec<RawResource>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResource {
    #[serde(default)]
    resource_name: String,
    #[serde(default)]
    resource_prefix: Option<String>,
    #[serde(default)]
    device_type: Option<String>,
    #[serde(default)]
    exclude_topology: bool,
    #[serde(default)]
    selectors: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSelector {
    #[serde(default)]
    vendors: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    drivers: Vec<String>,
    #[serde(default)]
    pci_addresses: Vec<String>,
    #[serde(default)]
    pf_names: Vec<String>,
    #[serde(default)]
    root_devices: Vec<String>,
    #[serde(default)]
    link_types: Vec<String>,
    #[serde(default)]
    is_rdma: bool,
    #[serde(default)]
    need_vhost_net: bool,
    #[serde(default)]
    ddp_profiles: Option<Value>,
    #[serde(default)]
    vdpa_type: Option<Value>,
    #[serde(default)]
    p_keys: Option<Value>,
    #[serde(default)]
    acpi_indexes: Option<Value>,
    #[serde(default)]
    aux_types: Option<Value>,
    #[serde(default)]
    nic_names: Option<Value>,
}

impl DpConfig {
    /// Parse and validate the config file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_config(bytes).map_err(ConfigError::Decode)?;
        Self::validate(raw)
    }

    /// Parse and validate a config already read as JSON.
    pub fn from_json(value: Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value).map_err(ConfigError::Decode)?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut resources = Vec::new();
        for (index, r) in raw.resource_list.into_iter().enumerate() {
            let res = parse_resource(index, r)?;
            let full = res.full_name();
            if let Some(first) = seen.insert(full.clone(), index) {
                return Err(ConfigError::Duplicate {
                    resource: res.name,
                    full,
                    first,
                    second: index,
                });
            }
            resources.push(res);
        }
        Ok(DpConfig { resources })
    }
}

fn parse_resource(index: usize, r: RawResource) -> Result<ResourceConfig, ConfigError> {
    let name = r.resource_name;
    if name.is_empty() {
        return Err(ConfigError::EmptyName { index });
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ConfigError::BadName { resource: name });
    }
    let prefix = match r.resource_prefix.as_deref() {
        None | Some("") => DEFAULT_PREFIX.to_string(),
        Some(p) => {
            let ok = p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err(ConfigError::BadPrefix {
                    resource: name,
                    prefix: p.to_string(),
                });
            }
            p.to_string()
        }
    };
    match r.device_type.as_deref() {
        None | Some("") | Some("netDevice") => {}
        Some(other) => {
            return Err(ConfigError::UnsupportedDeviceType {
                resource: name,
                value: other.to_string(),
            });
        }
    }
    let raw_selectors = match r.selectors {
        None | Some(Value::Null) => vec![Value::Object(Default::default())],
        Some(v @ Value::Object(_)) => vec![v],
        Some(Value::Array(list)) if list.is_empty() => vec![Value::Object(Default::default())],
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(ConfigError::BadSelectors {
                resource: name,
                value: other.to_string(),
            });
        }
    };
    let mut selectors = Vec::new();
    for (i, v) in raw_selectors.into_iter().enumerate() {
        if !v.is_object() {
            return Err(ConfigError::BadSelectors {
                resource: name,
                value: v.to_string(),
            });
        }
        let raw: RawSelector = from_value(v).map_err(|e| {
            ConfigError::Decode(e.context(format!("resource {name:?}: selectors[{i}]")))
        })?;
        selectors.push(parse_selector(&name, i, raw)?);
    }
    Ok(ResourceConfig {
        name,
        prefix,
        exclude_topology: r.exclude_topology,
        selectors,
    })
}

fn parse_selector(
    resource: &str,
    selector: usize,
    raw: RawSelector,
) -> Result<Selector, ConfigError> {
    let bad = |key: &'static str, value: &str, reason: String| ConfigError::BadSelector {
        resource: resource.to_string(),
        selector,
        key,
        value: value.to_string(),
        reason,
    };
    let unsupported = [
        &raw.ddp_profiles,
        &raw.vdpa_type,
        &raw.p_keys,
        &raw.acpi_indexes,
        &raw.aux_types,
        &raw.nic_names,
    ];
    for (key, v) in UNSUPPORTED_SELECTORS.iter().zip(unsupported) {
        let set = match v {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            let value = v.as_ref().map(Value::to_string).unwrap_or_default();
            return Err(bad(key, &value, "this selector is not supported".into()));
        }
    }
    let hex = |key: &'static str, list: &[String]| -> Result<Vec<u16>, ConfigError> {
        list.iter()
            .map(|s| {
                let h = s
                    .strip_prefix("0x")
                    .or_else(|| s.strip_prefix("0X"))
                    .unwrap_or(s);
                let ok = !h.is_empty() && h.len() <= 4 && h.bytes().all(|b| b.is_ascii_hexdigit());
                ok.then(|| u16::from_str_radix(h, 16).ok())
                    .flatten()
                    .ok_or_else(|| bad(key, s, "expected a 16-bit hex ID like 8086".into()))
            })
            .collect()
    };
    let vendors = hex("vendors", &raw.vendors)?;
    let devices = hex("devices", &raw.devices)?;
    for d in &raw.drivers {
        if d.is_empty() {
            return Err(bad("drivers", d, "empty driver name".into()));
        }
    }
    let pci_addresses = raw
        .pci_addresses
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e: super::sysfs::PciAddressError| bad("pciAddresses", s, e.reason.into()))
        })
        .collect::<Result<Vec<PciAddress>, _>>()?;
    let mut pf_names = Vec::new();
    for item in &raw.pf_names {
        let (pf, vfs) = split_pf(item).map_err(|r| bad("pfNames", item, r))?;
        if pf.contains([
            '^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\',
        ]) {
            return Err(bad(
                "pfNames",
                item,
                "regular expressions are not supported; name the PF".into(),
            ));
        }
        pf_names.push(PfMatch {
            pf: pf.to_string(),
            vfs,
        });
    }
    let mut root_devices = Vec::new();
    for item in &raw.root_devices {
        let (pf, vfs) = split_pf(item).map_err(|r| bad("rootDevices", item, r))?;
        let pf = pf.parse().map_err(|e: super::sysfs::PciAddressError| {
            bad("rootDevices", item, e.reason.into())
        })?;
        root_devices.push(PfMatch { pf, vfs });
    }
    for t in &raw.link_types {
        if t.is_empty() {
            return Err(bad("linkTypes", t, "empty link type".into()));
        }
    }
    Ok(Selector {
        vendors,
        devices,
        drivers: raw.drivers,
        pci_addresses,
        pf_names,
        root_devices,
        link_types: raw.link_types,
        is_rdma: raw.is_rdma,
        need_vhost_net: raw.need_vhost_net,
    })
}

/// `pf` or `pf#ranges`.
fn split_pf(item: &str) -> Result<(&str, Option<VfRanges>), String> {
    let (pf, ranges) = match item.split_once('#') {
        None => (item, None),
        Some((_, r)) if r.contains('#') => return Err("more than one '#'".into()),
        Some((pf, r)) => (pf, Some(VfRanges::parse(r)?)),
    };
    if pf.is_empty() {
        return Err("no PF before '#'".into());
    }
    Ok((pf, ranges))
}

/// The result of applying a config to the host's VFs.
#[derive(Debug, Default)]
pub struct Selection {
    /// `<prefix>/<name>` → its VFs, in discovery order (PF address, VF index). Every configured
    /// resource has an entry, possibly empty.
    pub pools: BTreeMap<String, Vec<Vf>>,
    /// For each pooled VF, the index of the selector (in its resource) that matched it first.
    pub selector_of: BTreeMap<PciAddress, usize>,
    /// Broken devices (they are in no pool).
    pub errors: Vec<SysfsError>,
}

/// Discover every VF under `sysfs` and sort them into pools. Each device lands in at most one
/// pool: the first resource (in `resourceList` order) with a selector matching it.
pub fn select(sysfs: &Sysfs, config: &DpConfig) -> Result<Selection, SysfsError> {
    let discovery = sysfs.discover()?;
    let mut selection = select_vfs(sysfs, &discovery.vfs, config);
    let mut errors = discovery.errors;
    errors.append(&mut selection.errors);
    selection.errors = errors;
    Ok(selection)
}

/// [`select`] over VFs already discovered (`sysfs` is read only for `linkTypes` and `isRdma`).
pub fn select_vfs(sysfs: &Sysfs, vfs: &[Vf], config: &DpConfig) -> Selection {
    let mut sel = Selection::default();
    for r in &config.resources {
        sel.pools.insert(r.full_name(), Vec::new());
    }
    let mut broken: BTreeSet<PciAddress> = BTreeSet::new();
    for vf in vfs {
        'resources: for r in &config.resources {
            for (i, s) in r.selectors.iter().enumerate() {
                match matches(sysfs, s, vf) {
                    Ok(true) => {
                        sel.pools.entry(r.full_name()).or_default().push(vf.clone());
                        sel.selector_of.insert(vf.pci, i);
                        break 'resources;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        if broken.insert(vf.pci) {
                            sel.errors.push(e);
                        }
                        break 'resources;
                    }
                }
            }
        }
    }
    sel
}

/// Whether selector `s` matches `vf`. Reads sysfs only for `linkTypes` and `isRdma`.
pub fn matches(sysfs: &Sysfs, s: &Selector, vf: &Vf) -> Result<bool, SysfsError> {
    if !s.vendors.is_empty() && !s.vendors.contains(&vf.vendor) {
        return Ok(false);
    }
    if !s.devices.is_empty() && !s.devices.contains(&vf.device) {
        return Ok(false);
    }
    if !s.drivers.is_empty()
        && !vf
            .driver
            .as_ref()
            .is_some_and(|d| s.drivers.iter().any(|x| x == d))
    {
        return Ok(false);
    }
    if !s.pci_addresses.is_empty() && !s.pci_addresses.contains(&vf.pci) {
        return Ok(false);
    }
    if !s.pf_names.is_empty() {
        let Some(pf_name) = &vf.pf_name else {
            return Ok(false);
        };
        let hit = s
            .pf_names
            .iter()
            .any(|m| m.pf.eq_ignore_ascii_case(pf_name) && m.covers(vf.index));
        if !hit {
            return Ok(false);
        }
    }
    if !s.root_devices.is_empty()
        && !s
            .root_devices
            .iter()
            .any(|m| m.pf == vf.pf_pci && m.covers(vf.index))
    {
        return Ok(false);
    }
    if !s.link_types.is_empty() {
        let Some(t) = sysfs.link_type(vf)? else {
            return Ok(false);
        };
        if !s.link_types.contains(&t) {
            return Ok(false);
        }
    }
    if s.is_rdma && !sysfs.has_rdma(&vf.pci)? {
        return Ok(false);
    }
    Ok(true)
}
