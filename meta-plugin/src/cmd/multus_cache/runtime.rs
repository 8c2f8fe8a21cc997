//! The runtime side of each delegate DEL as Multus builds it (`types.CreateCNIRuntimeConf`):
//! `CNI_ARGS` and the capability args libcni injects as `runtimeConfig`.
//!
//! - `CNI_ARGS`: `IgnoreUnknown=true`, `K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
//!   `K8S_POD_INFRA_CONTAINER_ID`, `K8S_POD_UID` (values from the runtime's `CNI_ARGS`), then
//!   every pair of the runtime's `CNI_ARGS` in order: one whose key is among those five with an
//!   empty value fills it, any other is appended (so the runtime's own K8S_* pairs and its
//!   `IgnoreUnknown` appear a second time, as with Multus).
//! - Capability args: Multus's own `runtimeConfig` keys (`portMappings`, `bandwidth`, `ips`,
//!   `mac`, `infinibandGUID`, `deviceID`, `CNIDeviceInfoFile`) from the meta-plugin config the
//!   runtime sent; for every delegate but the first (the cluster network), the cached
//!   selection's `ips`, `mac`, `infiniband-guid` and device ID replace them. With a device ID
//!   the delegate also gets `CNIDeviceInfoFile`, its device-info file
//!   `<deviceInfoDir>/cni/<name>-<containerID>_<ifname>`. Only non-empty values are passed.
//!   `portMappings` and `bandwidth` entries are re-encoded with Multus's key spelling
//!   (`hostPort`, `ingressRate`, ...), as Multus decodes and re-encodes them.

use plexus_delegates::cni::CniArgs;
use plexus_delegates::cni::config::decode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::format::CachedDelegate;

/// The keys Multus reads from its config's `runtimeConfig` (`types.RuntimeConfig`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MultusRuntimeConfig {
    #[serde(default, rename = "portMappings")]
    port_mappings: Option<Vec<PortMapEntry>>,
    #[serde(default)]
    bandwidth: Option<BandwidthEntry>,
    #[serde(default)]
    ips: Option<Vec<String>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default, rename = "infinibandGUID")]
    infiniband_guid: Option<String>,
    #[serde(default, rename = "deviceID")]
    device_id: Option<String>,
    #[serde(default, rename = "CNIDeviceInfoFile")]
    device_info_file: Option<String>,
}

/// Multus's `PortMapEntry`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct PortMapEntry {
    #[serde(default, rename = "hostPort")]
    host_port: i64,
    #[serde(default, rename = "containerPort")]
    container_port: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    protocol: String,
    #[serde(default, rename = "hostIP", skip_serializing_if = "String::is_empty")]
    host_ip: String,
}

/// Multus's `BandwidthEntry`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct BandwidthEntry {
    #[serde(default, rename = "ingressRate")]
    ingress_rate: i64,
    #[serde(default, rename = "ingressBurst")]
    ingress_burst: i64,
    #[serde(default, rename = "egressRate")]
    egress_rate: i64,
    #[serde(default, rename = "egressBurst")]
    egress_burst: i64,
}

impl MultusRuntimeConfig {
    /// Reads the meta-plugin config's `runtimeConfig` as Multus does (keys case-insensitive,
    /// the others ignored). An error names the key.
    pub fn from_runtime_config(rc: &Map<String, Value>) -> Result<Self, String> {
        decode(Value::Object(rc.clone())).map_err(|e| format!("runtimeConfig: {e}"))
    }

    /// The capability args of delegate `index` (0 is the cluster network) and its device-info
    /// file, if any. `device_info_file(name)` gives the file of a delegate with a device ID.
    pub fn capability_args(
        &self,
        index: usize,
        d: &CachedDelegate,
        device_info_file: impl FnOnce(&str) -> String,
    ) -> (Map<String, Value>, Option<String>) {
        let mut rc = self.clone();
        if index > 0 {
            if let Some(ips) = &d.ip_request {
                rc.ips = Some(ips.clone());
            }
            if let Some(mac) = &d.mac_request {
                rc.mac = Some(mac.clone());
            }
            if let Some(guid) = &d.infiniband_guid_request {
                rc.infiniband_guid = Some(guid.clone());
            }
            if let Some(id) = &d.device_id {
                rc.device_id = Some(id.clone());
            }
        }
        if non_empty(&rc.device_id).is_some() {
            rc.device_info_file = Some(device_info_file(&d.name));
        }
        let mut args = Map::new();
        if let Some(p) = rc.port_mappings.as_ref().filter(|p| !p.is_empty()) {
            args.insert("portMappings".into(), to_value(p));
        }
        if let Some(b) = &rc.bandwidth {
            args.insert("bandwidth".into(), to_value(b));
        }
        if let Some(ips) = rc.ips.as_ref().filter(|i| !i.is_empty()) {
            args.insert("ips".into(), to_value(ips));
        }
        for (key, v) in [
            ("mac", &rc.mac),
            ("infinibandGUID", &rc.infiniband_guid),
            ("deviceID", &rc.device_id),
            ("CNIDeviceInfoFile", &rc.device_info_file),
        ] {
            if let Some(v) = non_empty(v) {
                args.insert(key.into(), Value::String(v.to_owned()));
            }
        }
        let file = non_empty(&rc.device_info_file).map(str::to_owned);
        (args, file)
    }
}

/// `CNI_ARGS` of every delegate DEL, from the runtime's.
pub fn cni_args(runtime: &CniArgs) -> Vec<(String, String)> {
    // Go's types.LoadArgs: the last pair of a key wins.
    let value = |key: &str| {
        runtime
            .pairs()
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut args: Vec<(String, String)> = vec![("IgnoreUnknown".into(), "true".into())];
    for key in [
        "K8S_POD_NAMESPACE",
        "K8S_POD_NAME",
        "K8S_POD_INFRA_CONTAINER_ID",
        "K8S_POD_UID",
    ] {
        args.push((key.into(), value(key)));
    }
    for (k, v) in runtime.pairs() {
        match args
            .iter_mut()
            .find(|(ak, av)| ak == k && av.is_empty() && !v.is_empty())
        {
            Some(slot) => slot.1 = v.clone(),
            None => args.push((k.clone(), v.clone())),
        }
    }
    args
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Plain structs, strings and lists of them always encode.
    serde_json::to_value(v).unwrap_or(Value::Null)
}
