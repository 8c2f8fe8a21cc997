//! The keys every network configuration shares, read before the plugin's own ones.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::parse_config;
use super::error::CniError;
use super::result::{CniResult, Dns};
use super::version::CniVersion;

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    #[serde(rename = "ifname")]
    pub ifname: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub args: Option<Value>,
    #[serde(default)]
    pub ipam: Option<Value>,
    #[serde(default)]
    pub dns: Option<Dns>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

impl NetConf {
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        parse_config(bytes)
    }

    pub fn version(&self) -> Result<CniVersion, CniError> {
        CniVersion::from_config(self.cni_version.as_deref())
    }

    /// The prevResult in canonical form, whatever layout the previous plugin wrote.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => CniResult::from_json(v)
                .map(Some)
                .map_err(|e| e.context("prevResult")),
        }
    }

    /// A `runtimeConfig` entry, matched case-insensitively (containerd and podman differ).
    pub fn runtime_config_value(&self, key: &str) -> Option<&Value> {
        let rc = self.runtime_config.as_ref()?;
        rc.get(key).or_else(|| {
            rc.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }

    /// The IPAM plugin type, if an `ipam` section with a non-empty `type` is present.
    pub fn ipam_type(&self) -> Option<&str> {
        let ipam = self.ipam.as_ref()?.as_object()?;
        let t = ipam.get("type").or_else(|| {
            ipam.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("type"))
                .map(|(_, v)| v)
        })?;
        t.as_str().filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_header_and_prev_result_of_any_layout() {
        let raw =
            br#"{"cniVersion":"0.4.0","name":"n","type":"macvlan","ipam":{"type":"host-local"},
            "prevResult":{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}},
            "runtimeConfig":{"HostPort":1},
            "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#;
        let c = NetConf::parse(raw).unwrap();
        assert_eq!(c.version().unwrap(), CniVersion::V0_4_0);
        assert_eq!(c.ipam_type(), Some("host-local"));
        assert_eq!(c.prev_result().unwrap().unwrap().ips.len(), 1);
        assert!(c.runtime_config_value("hostPort").is_some());
        assert_eq!(c.valid_attachments.unwrap()[0].ifname, "eth0");
    }

    #[test]
    fn bad_prev_result_names_it() {
        let c = NetConf::parse(br#"{"cniVersion":"1.0.0","prevResult":{"ips":[{"address":"x"}]}}"#)
            .unwrap();
        assert!(c.prev_result().unwrap_err().msg.starts_with("prevResult"));
    }
}
