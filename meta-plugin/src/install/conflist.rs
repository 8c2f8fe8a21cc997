//! `00-plexus.conflist`: the config that makes the runtime call Plexus, delegating `eth0` to the
//! cluster's default network.
//!
//! The default network is named by its node path in `clusterNetwork` (COMPAT §5: a file is one of
//! the forms it takes), not copied inline into `delegates[]` as Multus's thin entrypoint does: the
//! plugin reads the file on every call, so when the cluster's CNI rewrites its own config (Calico
//! does, on MTU or IPAM changes) pods get the new content at once, not one poll later. The file
//! is still rewritten when the default network's `cniVersion` or capabilities change (they are
//! copied: the runtime calls Plexus with this `cniVersion` and passes runtime args only for
//! declared capabilities), when another file becomes the default, or when flags change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::InstallError;
use super::default_network::{DefaultNetwork, capabilities};
use crate::config::PlexusConfig;

/// The plugin keys the installer's flags set. `None` leaves a key out (the plugin's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSettings {
    /// The conflist's `name`.
    pub network_name: String,
    /// The plugin `type`: the meta-plugin binary's name in the CNI bin dir.
    pub plugin_type: String,
    /// `cniVersion`; `None` takes the default network's.
    pub cni_version: Option<String>,
    /// `cniDir`: the plugin's journal and state.
    pub cni_dir: PathBuf,
    /// `confDir`.
    pub conf_dir: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_to_stderr: Option<bool>,
    pub namespace_isolation: Option<bool>,
    /// `overlapClusterNetwork`.
    pub overlap_cluster_network: Option<bool>,
    /// `globalNamespaces`, Multus's comma-separated form.
    pub global_namespaces: Option<String>,
    pub multus_namespace: Option<String>,
    pub readiness_indicator_file: Option<PathBuf>,
}

/// Node paths the conflist refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRefs<'a> {
    /// The default network's config file (`clusterNetwork`).
    pub cluster_network: &'a Path,
    /// The kubeconfig the installer writes.
    pub kubeconfig: &'a Path,
    /// The CNI bin dir (`binDir`: where executed delegates are found).
    pub bin_dir: &'a Path,
}

fn path_str(p: &Path) -> Value {
    Value::String(p.display().to_string())
}

impl PluginSettings {
    /// The plugin object (the single entry of `plugins`).
    fn plugin(&self, refs: &HostRefs<'_>, caps: &BTreeMap<String, bool>) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("type".into(), json!(self.plugin_type));
        if !caps.is_empty() {
            p.insert("capabilities".into(), json!(caps));
        }
        p.insert("clusterNetwork".into(), path_str(refs.cluster_network));
        p.insert("kubeconfig".into(), path_str(refs.kubeconfig));
        p.insert("binDir".into(), path_str(refs.bin_dir));
        p.insert("cniDir".into(), path_str(&self.cni_dir));
        if let Some(d) = &self.conf_dir {
            p.insert("confDir".into(), path_str(d));
        }
        if let Some(ns) = &self.multus_namespace {
            p.insert("multusNamespace".into(), json!(ns));
        }
        if let Some(b) = self.namespace_isolation {
            p.insert("namespaceIsolation".into(), json!(b));
        }
        if let Some(g) = &self.global_namespaces {
            p.insert("globalNamespaces".into(), json!(g));
        }
        if let Some(b) = self.overlap_cluster_network {
            p.insert("overlapClusterNetwork".into(), json!(b));
        }
        if let Some(f) = &self.readiness_indicator_file {
            p.insert("readinessindicatorfile".into(), path_str(f));
        }
        if let Some(f) = &self.log_file {
            p.insert("logFile".into(), path_str(f));
        }
        if let Some(l) = &self.log_level {
            p.insert("logLevel".into(), json!(l));
        }
        if let Some(b) = self.log_to_stderr {
            p.insert("logToStderr".into(), json!(b));
        }
        p
    }

    /// Checks that the flags give a config the plugin accepts, before anything is written: the
    /// plugin object is parsed exactly as the runtime hands it over (with `name` and
    /// `cniVersion` added).
    pub fn validate(&self, refs: &HostRefs<'_>) -> Result<(), InstallError> {
        let version = self.cni_version.as_deref().unwrap_or("1.0.0");
        self.check(&self.plugin(refs, &BTreeMap::new()), version)
    }

    fn check(&self, plugin: &Map<String, Value>, version: &str) -> Result<(), InstallError> {
        let mut as_called = plugin.clone();
        as_called.insert("name".into(), json!(self.network_name));
        as_called.insert("cniVersion".into(), json!(version));
        let bytes = serde_json::to_vec(&as_called).unwrap_or_default();
        PlexusConfig::parse(&bytes)?;
        Ok(())
    }

    /// The bytes of `00-plexus.conflist` delegating `eth0` to `default`, whose node path is
    /// `refs.cluster_network`.
    pub fn render(
        &self,
        default: &DefaultNetwork,
        refs: &HostRefs<'_>,
    ) -> Result<Vec<u8>, InstallError> {
        let version = match (&self.cni_version, default.config.cni_version()) {
            (Some(v), _) => v.clone(),
            (None, Some(v)) if !v.trim().is_empty() => v.to_owned(),
            (None, _) => {
                return Err(InstallError::DefaultNetwork {
                    path: refs.cluster_network.to_path_buf(),
                    reason: "it has no cniVersion, so 00-plexus.conflist cannot take it; set --cni-version".into(),
                });
            }
        };
        let plugin = self.plugin(refs, &capabilities(&default.config));
        self.check(&plugin, &version)?;
        let conflist = json!({
            "cniVersion": version,
            "name": self.network_name,
            "plugins": [plugin],
        });
        let mut bytes = serde_json::to_vec_pretty(&conflist).unwrap_or_default();
        bytes.push(b'\n');
        Ok(bytes)
    }
}
