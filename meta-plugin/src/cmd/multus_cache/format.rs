//! Decoding a Multus cache file (`<cniDir>/<containerID>`) into the delegates its DEL runs.
//!
//! What Multus's ADD writes there (`saveDelegates`, thin plugin v3 and v4): the JSON encoding of
//! its delegate list, `[]*types.DelegateNetConf`, the cluster network first, then
//! `defaultNetworks`, then the pod's selections. Of each delegate's Go fields, DEL uses:
//!
//! - `Bytes` (a `[]byte`, so base64): the exact configuration bytes the delegate got at ADD
//!   (the NAD's config with `deviceID`/`pciBusID` and `args.cni` injected);
//! - `ConfList.plugins`: when not empty the delegate is a conflist, else a single conf;
//!   `ConfList.cniVersion`: when empty, DEL sets the conflist's `cniVersion` from the meta-plugin
//!   config's (see [`CachedDelegate::list_without_version`]);
//! - `Name` (`<ns>/<nad>` for a NAD, else the CNI name), `ifnameRequest`, `macRequest`,
//!   `ipRequest`, `infinibandGUIDRequest`, `deviceID`, `resourceName`.
//!
//! The selection's `portMappings` and `bandwidth` are `json:"-"`: not in the file, so Multus's
//! own DEL from its cache does not have them either.
//!
//! Some Multus versions also wrote `CNINetworkConfigList` (libcni's `NetworkConfigList`, Go field
//! names, `Bytes` base64) for conflists loaded through libcni, while `Bytes` held a lossy
//! re-encoding (plugin keys beyond `type`/`name`/`capabilities`/`ipam.type`/`dns` dropped).
//! Current Multus rebuilds the configuration from it when it reads such a file; so does
//! [`decode`]: the list's own keys from its `Bytes`, `plugins` from each plugin's `Bytes`, then
//! `deviceID`, `pciBusID` and `args.cni` of each plugin taken over from the lossy `Bytes`.
//!
//! Keys match case-insensitively, as Go's `encoding/json` reads them. Anything that cannot give
//! a runnable delegate is an error naming the delegate's position: nothing is run then.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use plexus_crds::json_kind;
use plexus_delegates::cni::config::decode as go_decode;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::plan::Delegate;

/// One delegate of a Multus cache file, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedDelegate {
    /// Multus's delegate name: `<ns>/<nad>` for a NAD network, else the CNI config's `name`.
    pub name: String,
    /// The selection's `interface`.
    pub ifname_request: Option<String>,
    /// The selection's `mac`.
    pub mac_request: Option<String>,
    /// The selection's `ips`.
    pub ip_request: Option<Vec<String>>,
    /// The selection's `infiniband-guid`.
    pub infiniband_guid_request: Option<String>,
    /// The device handed to the delegate (from the NAD's resourceName or the selection).
    pub device_id: Option<String>,
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`.
    pub resource_name: Option<String>,
    /// The configuration from `Bytes` (restored from `CNINetworkConfigList` when present).
    pub delegate: Delegate,
    /// A conflist whose cached `ConfList.cniVersion` is empty: Multus's DEL gives it the
    /// meta-plugin config's `cniVersion`.
    pub list_without_version: bool,
}

/// `types.DelegateNetConf` as Go encodes it (only the fields DEL reads).
#[derive(Debug, Deserialize)]
struct RawDelegate {
    #[serde(default, rename = "ConfList")]
    conf_list: Option<RawConfList>,
    #[serde(default, rename = "CNINetworkConfigList")]
    legacy_list: Option<RawNetworkConfigList>,
    #[serde(default, rename = "Name")]
    name: Option<String>,
    #[serde(default, rename = "ifnameRequest")]
    ifname_request: Option<String>,
    #[serde(default, rename = "macRequest")]
    mac_request: Option<String>,
    #[serde(default, rename = "infinibandGUIDRequest")]
    infiniband_guid_request: Option<String>,
    #[serde(default, rename = "ipRequest")]
    ip_request: Option<Vec<String>>,
    #[serde(default, rename = "deviceID")]
    device_id: Option<String>,
    #[serde(default, rename = "resourceName")]
    resource_name: Option<String>,
    #[serde(default, rename = "Bytes")]
    bytes: Option<String>,
}

/// `types.NetConfList` (CNI library): `cniVersion` and `plugins`.
#[derive(Debug, Default, Deserialize)]
struct RawConfList {
    #[serde(default, rename = "cniVersion")]
    cni_version: Option<String>,
    #[serde(default)]
    plugins: Option<Vec<Value>>,
}

/// libcni's `NetworkConfigList` (no JSON tags: Go field names).
#[derive(Debug, Deserialize)]
struct RawNetworkConfigList {
    #[serde(default, rename = "Plugins")]
    plugins: Option<Vec<Option<RawNetworkConfig>>>,
    #[serde(default, rename = "Bytes")]
    bytes: Option<String>,
}

/// libcni's `NetworkConfig`/`PluginConfig`.
#[derive(Debug, Deserialize)]
struct RawNetworkConfig {
    #[serde(default, rename = "Bytes")]
    bytes: Option<String>,
}

/// Decodes a cache file's bytes. The error says what is wrong and where (`delegate #i`).
pub fn decode(bytes: &[u8]) -> Result<Vec<CachedDelegate>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let items = match value {
        // Go decodes `null` into an empty delegate list.
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(format!(
                "expected a JSON list of delegates, found {}",
                json_kind(&other)
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| decode_delegate(item).map_err(|e| format!("delegate #{i}: {e}")))
        .collect()
}

fn decode_delegate(item: Value) -> Result<CachedDelegate, String> {
    if !item.is_object() {
        return Err(format!("expected an object, found {}", json_kind(&item)));
    }
    let raw: RawDelegate = go_decode(item).map_err(|e| e.to_string())?;
    let mut bytes = match raw.bytes.as_deref() {
        Some(b) => base64_json(b, "Bytes")?,
        None => None,
    };
    if let Some(legacy) = raw.legacy_list.as_ref().filter(|l| !l.is_empty()) {
        let lossless = legacy.rebuild()?;
        bytes = Some(match bytes {
            Some(housekeeping) => merge_housekeeping(lossless, &housekeeping)?,
            None => lossless,
        });
    }
    let config = bytes.ok_or("\"Bytes\" is empty: the delegate's configuration is missing")?;
    let conf_list = raw.conf_list.unwrap_or_default();
    let is_list = conf_list.plugins.as_ref().is_some_and(|p| !p.is_empty());
    let delegate = if is_list {
        check_conflist(&config)?;
        Delegate::ConfList(config)
    } else {
        check_type("configuration", &config)?;
        Delegate::Conf(config)
    };
    let name = non_empty(raw.name).unwrap_or_else(|| delegate.name().to_owned());
    Ok(CachedDelegate {
        name,
        ifname_request: non_empty(raw.ifname_request),
        mac_request: non_empty(raw.mac_request),
        ip_request: raw.ip_request,
        infiniband_guid_request: non_empty(raw.infiniband_guid_request),
        device_id: non_empty(raw.device_id),
        resource_name: non_empty(raw.resource_name),
        delegate,
        list_without_version: is_list
            && conf_list
                .cni_version
                .as_deref()
                .unwrap_or_default()
                .is_empty(),
    })
}

impl RawNetworkConfigList {
    /// Whether the legacy field carries a configuration (Multus wrote it empty for confs).
    fn is_empty(&self) -> bool {
        self.bytes.as_deref().unwrap_or_default().is_empty()
            && self.plugins.as_ref().is_none_or(Vec::is_empty)
    }

    /// The conflist as loaded: the list's keys from its `Bytes`, `plugins` from each plugin's
    /// `Bytes` (libcni may append plugins without updating the list's `Bytes`).
    fn rebuild(&self) -> Result<Map<String, Value>, String> {
        let mut list = self
            .bytes
            .as_deref()
            .map(|b| base64_json(b, "CNINetworkConfigList.Bytes"))
            .transpose()?
            .flatten()
            .ok_or("\"CNINetworkConfigList.Bytes\" is empty")?;
        let mut plugins = Vec::new();
        for (i, plugin) in self.plugins.iter().flatten().enumerate() {
            let field = format!("CNINetworkConfigList.Plugins[{i}].Bytes");
            let conf = plugin
                .as_ref()
                .and_then(|p| p.bytes.as_deref())
                .map(|b| base64_json(b, &field))
                .transpose()?
                .flatten()
                .ok_or_else(|| format!("{field:?} is empty"))?;
            plugins.push(Value::Object(conf));
        }
        list.insert("plugins".to_owned(), Value::Array(plugins));
        Ok(list)
    }
}

/// Takes over what Multus injected into the (lossy) `Bytes` after loading the conflist: each
/// plugin's `deviceID`, `pciBusID` and `args.cni` keys.
fn merge_housekeeping(
    mut lossless: Map<String, Value>,
    housekeeping: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let extra = plugin_objects(housekeeping, "Bytes")?;
    let Some(Value::Array(plugins)) = lossless.get_mut("plugins") else {
        return Err("the restored conflist has no \"plugins\"".to_owned());
    };
    if plugins.len() != extra.len() {
        return Err(format!(
            "\"CNINetworkConfigList\" has {} plugins but \"Bytes\" has {}",
            plugins.len(),
            extra.len()
        ));
    }
    for (plugin, extra) in plugins.iter_mut().zip(extra) {
        let Value::Object(plugin) = plugin else {
            continue;
        };
        for key in ["deviceID", "pciBusID"] {
            if let Some(v) = extra.get(key) {
                plugin.insert(key.to_owned(), v.clone());
            }
        }
        if let Some(extra_args) = extra.get("args") {
            merge_args(plugin, extra_args)?;
        }
    }
    Ok(lossless)
}

/// `args.cni` of `extra_args` merged over the plugin's (an `args` object is created when the
/// plugin had none, as Multus does).
fn merge_args(plugin: &mut Map<String, Value>, extra_args: &Value) -> Result<(), String> {
    let extra_args = extra_args
        .as_object()
        .ok_or("\"Bytes\": a plugin's \"args\" is not an object")?;
    let args = plugin
        .entry("args")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(args) = args else {
        return Err("a plugin's \"args\" is not an object".to_owned());
    };
    let Some(extra_cni) = extra_args.get("cni") else {
        return Ok(());
    };
    let extra_cni = extra_cni
        .as_object()
        .ok_or("\"Bytes\": a plugin's \"args.cni\" is not an object")?;
    let cni = args
        .entry("cni")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(cni) = cni else {
        return Err("a plugin's \"args.cni\" is not an object".to_owned());
    };
    for (k, v) in extra_cni {
        cni.insert(k.clone(), v.clone());
    }
    Ok(())
}

/// A base64 `[]byte` field holding a JSON object; `None` for an empty one.
fn base64_json(b64: &str, field: &str) -> Result<Option<Map<String, Value>>, String> {
    let raw = STANDARD
        .decode(b64)
        .map_err(|e| format!("{field:?} is not base64: {e}"))?;
    if raw.is_empty() {
        return Ok(None);
    }
    match serde_json::from_slice(&raw) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(other) => Err(format!(
            "{field:?} holds {}, not a network configuration object",
            json_kind(&other)
        )),
        Err(e) => Err(format!("{field:?} holds no valid JSON: {e}")),
    }
}

/// The conflist checks libcni makes before running it: a `name`, and `plugins` with a `type`
/// each.
fn check_conflist(list: &Map<String, Value>) -> Result<(), String> {
    if !list.get("name").is_some_and(Value::is_string) {
        return Err("the conflist in \"Bytes\" has no \"name\"".to_owned());
    }
    let plugins = plugin_objects(list, "Bytes")?;
    if plugins.is_empty() {
        return Err("the conflist in \"Bytes\" has no plugins".to_owned());
    }
    for (i, p) in plugins.iter().enumerate() {
        check_type(&format!("plugin #{i} of the conflist"), p)?;
    }
    Ok(())
}

fn plugin_objects<'a>(
    list: &'a Map<String, Value>,
    field: &str,
) -> Result<Vec<&'a Map<String, Value>>, String> {
    let Some(Value::Array(plugins)) = list.get("plugins") else {
        return Err(format!("{field:?} holds no \"plugins\" list"));
    };
    plugins
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.as_object()
                .ok_or_else(|| format!("{field:?}: plugin #{i} is not an object"))
        })
        .collect()
}

fn check_type(what: &str, conf: &Map<String, Value>) -> Result<(), String> {
    match conf.get("type").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok(()),
        _ => Err(format!("the {what} in \"Bytes\" has no \"type\"")),
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}
