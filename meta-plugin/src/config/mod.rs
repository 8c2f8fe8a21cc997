//! The meta-plugin's own network configuration: what the container runtime hands `plexus` on stdin
//! (COMPAT §5).
//!
//! The keys are Multus's (`pkg/types/types.go`), so an existing `00-multus.conf` needs only its
//! `type` changed; they are matched case-insensitively as Go's `encoding/json` does, through
//! [`plexus_delegates::cni::config::parse_config`]. Defaults are Multus's. Plexus adds its own
//! keys: `events` (post Kubernetes Events, default `true`), `nadDir` (local mode's NAD
//! manifests), `podResourcesSocket` and `deviceInfoDir` (the device-plugin hand-off; Multus
//! hard-codes both paths), `multusCacheDir` (where DEL finds the cache files of sandboxes
//! Multus created before the node switched, see `cmd::multus_cache`).
//!
//! - [`PlexusConfig::parse`]: stdin bytes → a validated [`PlexusConfig`].
//! - [`network`]: `clusterNetwork`/`defaultNetworks` references and their resolution to a CNI
//!   config (NAD, CNI network name, file, directory, or inline `delegates[]`).
//! - [`policy`]: the namespace-isolation and system-namespace rules, pure.
//! - [`readiness`]: waiting for the `readinessindicatorfile`.

pub mod network;
pub mod policy;
pub mod readiness;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use plexus_crds::NadConfig;
use plexus_crds::selection::check_dns1123_label;
use plexus_delegates::cni::config::parse_config;
use plexus_delegates::cni::{CniError, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use network::{ClusterNetwork, ClusterNetworkSpec, NetworkRef, SearchDirs};
pub use policy::NamespacePolicy;
pub use readiness::wait_for_readiness;

/// Default `confDir`: where NAD-less network configs (and empty-spec NADs' files) live.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
/// Default `cniDir`: Plexus's journal and state.
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multus";
/// Default `nadDir`: NetworkAttachmentDefinition manifests for local mode (no API server).
pub const DEFAULT_NAD_DIR: &str = "/etc/cni/plexus/nads";
/// Default `binDir`: where executed delegate plugins are looked up.
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
/// The runtime's CNI config directory, searched for a `clusterNetwork` given as a network name.
pub const DEFAULT_NET_DIR: &str = "/etc/cni/net.d";
/// Default `multusNamespace`: where `clusterNetwork`/`defaultNetworks` NADs are looked up.
pub const DEFAULT_MULTUS_NAMESPACE: &str = "kube-system";
/// Default `systemNamespaces`.
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "kube-system";
/// Default `globalNamespaces` (Multus: `defaultNonIsolatedNamespace`).
pub const DEFAULT_GLOBAL_NAMESPACE: &str = "default";
/// How long an ADD waits for the readiness indicator file (Multus polls for 45 s).
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(45);
/// How often the readiness indicator file is polled.
pub const DEFAULT_READINESS_POLL: Duration = Duration::from_millis(250);

/// Why the configuration (or something it names) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The stdin is not JSON, or a key has the wrong JSON type (CNI code 6).
    #[error(transparent)]
    Decode(CniError),
    /// A key has a value Plexus cannot use (CNI code 7).
    #[error("invalid network configuration: \"{key}\" = {value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    /// Neither `clusterNetwork` nor `delegates` is set (CNI code 7).
    #[error(
        "invalid network configuration: neither \"clusterNetwork\" nor \"delegates\" is set; one of them must name the cluster network"
    )]
    NoClusterNetwork,
    /// A `clusterNetwork`/`defaultNetworks` entry or a NAD did not resolve to a usable CNI config
    /// (CNI code 7).
    #[error("{key} {reference:?}: {reason}")]
    Resolve {
        key: &'static str,
        reference: String,
        reason: String,
    },
    /// A pod selected a network it may not use (CNI code 7).
    #[error(
        "namespace isolation: pod in namespace {pod_namespace:?} may not use network {namespace}/{name} (from {source_name}): only networks of its own namespace or of the global namespaces {global:?} are allowed"
    )]
    NamespaceIsolation {
        pod_namespace: String,
        namespace: String,
        name: String,
        source_name: String,
        global: Vec<String>,
    },
    /// The readiness indicator file did not appear in time (CNI code 11: try again later).
    #[error(
        "readinessindicatorfile {path:?} does not exist after waiting {waited:?}: the cluster network is not ready yet"
    )]
    NotReady { path: PathBuf, waited: Duration },
    /// Kubernetes access failed while resolving a network.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
}

impl ConfigError {
    pub(crate) fn invalid(
        key: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The CNI error code this error is reported with.
    pub fn code(&self) -> u32 {
        match self {
            ConfigError::Decode(e) => e.code,
            ConfigError::NotReady { .. } => ErrorCode::TryAgainLater as u32,
            ConfigError::Kube(e) => e.cni_code() as u32,
            _ => ErrorCode::InvalidConfig as u32,
        }
    }
}

impl From<ConfigError> for CniError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Decode(e) => e,
            other => CniError {
                code: other.code(),
                msg: other.to_string(),
                details: String::new(),
            },
        }
    }
}

/// Logging verbosity, Multus's names (`debug`, `verbose`, `error`, `panic`, any case) plus
/// tracing's (`trace`, `info`, `warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Trace,
    /// Multus `debug`: everything Plexus logs per step.
    Debug,
    /// Multus `verbose`; tracing `info`.
    Verbose,
    Warn,
    /// Multus `error`, the default.
    #[default]
    Error,
    /// Multus `panic`: only failures that abort (tracing has no finer level than ERROR).
    Panic,
}

impl LogLevel {
    /// Parses a `logLevel` value; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "verbose" | "info" => LogLevel::Verbose,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "panic" => LogLevel::Panic,
            _ => return None,
        })
    }

    /// The most verbose tracing level that is emitted.
    pub fn tracing_level(self) -> tracing::Level {
        match self {
            LogLevel::Trace => tracing::Level::TRACE,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Verbose => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error | LogLevel::Panic => tracing::Level::ERROR,
        }
    }
}

/// The validated meta-plugin configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PlexusConfig {
    pub name: String,
    /// `type` (`plexus`, or whatever name the binary was installed under).
    pub plugin_type: String,
    pub cni_version: Option<String>,
    /// `kubeconfig`; `None` when absent or empty (no API server, or in-cluster: see
    /// [`crate::kube::KubeClient::connect`]).
    pub kubeconfig: Option<PathBuf>,
    pub conf_dir: PathBuf,
    /// `cniDir`: the journal and state.
    pub cni_dir: PathBuf,
    /// `multusCacheDir` (Plexus's own key): where Multus kept its per-container cache files
    /// (Multus's `cniDir`), read by a DEL that finds nothing journaled. Default: `cniDir`, since
    /// a Multus config whose `type` was changed keeps Multus's `cniDir` (and both default to
    /// `/var/lib/cni/multus`); set it when Plexus's `cniDir` differs from the one Multus used.
    pub multus_cache_dir: PathBuf,
    pub bin_dir: PathBuf,
    /// `clusterNetwork`, or `delegates[0]`.
    pub cluster_network: ClusterNetworkSpec,
    /// `delegates[1..]`: attached after the cluster network, before `defaultNetworks`, in order
    /// (Multus runs every delegate).
    pub extra_delegates: Vec<NadConfig>,
    /// `defaultNetworks`: attached to every pod outside `systemNamespaces`.
    pub default_networks: Vec<NetworkRef>,
    /// Where `clusterNetwork`/`defaultNetworks` NADs given without a namespace live.
    pub multus_namespace: String,
    /// Namespace isolation, global namespaces and system namespaces.
    pub policy: NamespacePolicy,
    pub readiness_indicator_file: Option<PathBuf>,
    /// `retryDeleteOnError` (Multus, default false): whether the journal record of an attachment
    /// whose delegate DEL failed stays in the container's journal for the runtime's retry (true)
    /// or is moved to the orphan area, retried by GC (false). See `cmd::del`.
    pub retry_delete_on_error: bool,
    /// `overlapClusterNetwork` (Plexus's own key, default true): while the cluster network's
    /// plugin (an executed binary) runs, make the built-in attachments right after it that
    /// cannot interact with it (see `cmd::overlap`). False: strictly one after another, as Multus
    /// does.
    pub overlap_cluster_network: bool,
    /// `capabilities`: the capability args the runtime should pass (`portMappings`, `bandwidth`,
    /// `io.kubernetes.cri.pod-annotations`, ...).
    pub capabilities: BTreeMap<String, bool>,
    /// `runtimeConfig` as the runtime sent it (key case kept: containerd writes `HostPort`).
    pub runtime_config: Map<String, Value>,
    pub log_file: Option<PathBuf>,
    pub log_level: LogLevel,
    /// `logToStderr` (Multus default: true).
    pub log_to_stderr: bool,
    /// `events`: post `AddedInterface`/failure Events to the pod (default true).
    pub events: bool,
    /// `nadDir` (Plexus's own key): the NAD manifests served by [`crate::local::LocalApi`] in
    /// local mode (default `/etc/cni/plexus/nads`).
    pub nad_dir: PathBuf,
    /// `podResourcesSocket` (Plexus's own key): kubelet's PodResources API socket, asked which
    /// devices a pod got when one of its NADs names a `resourceName` (default
    /// [`crate::podresources::DEFAULT_SOCKET`]).
    pub pod_resources_socket: PathBuf,
    /// `deviceInfoDir` (Plexus's own key): the device-info root, with the device plugin's files
    /// under `dp/` and the meta-plugin's under `cni/` (default [`crate::devinfo::DEFAULT_DIR`]).
    pub device_info_dir: PathBuf,
}

/// The stdin keys as Multus names them. Optional scalars are `Option` so that "absent" and
/// "empty" both take the default, as Go's zero values do.
#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    plugin_type: Option<String>,
    #[serde(default, rename = "cniVersion")]
    cni_version: Option<String>,
    #[serde(default)]
    kubeconfig: Option<String>,
    #[serde(default, rename = "confDir")]
    conf_dir: Option<String>,
    #[serde(default, rename = "cniDir")]
    cni_dir: Option<String>,
    #[serde(default, rename = "multusCacheDir")]
    multus_cache_dir: Option<String>,
    #[serde(default, rename = "binDir")]
    bin_dir: Option<String>,
    #[serde(default, rename = "clusterNetwork")]
    cluster_network: Option<String>,
    #[serde(default)]
    delegates: Vec<Value>,
    #[serde(default, rename = "defaultNetworks")]
    default_networks: Vec<String>,
    #[serde(default, rename = "multusNamespace")]
    multus_namespace: Option<String>,
    #[serde(default, rename = "systemNamespaces")]
    system_namespaces: Option<Vec<String>>,
    #[serde(default, rename = "namespaceIsolation")]
    namespace_isolation: Option<bool>,
    /// A comma-separated string in Multus; a list is accepted too.
    #[serde(default, rename = "globalNamespaces")]
    global_namespaces: Option<Value>,
    #[serde(default, rename = "readinessindicatorfile")]
    readiness_indicator_file: Option<String>,
    #[serde(default, rename = "retryDeleteOnError")]
    retry_delete_on_error: Option<bool>,
    #[serde(default, rename = "overlapClusterNetwork")]
    overlap_cluster_network: Option<bool>,
    #[serde(default)]
    capabilities: Option<Map<String, Value>>,
    #[serde(default, rename = "runtimeConfig")]
    runtime_config: Option<Map<String, Value>>,
    #[serde(default, rename = "logFile")]
    log_file: Option<String>,
    #[serde(default, rename = "logLevel")]
    log_level: Option<String>,
    #[serde(default, rename = "logToStderr")]
    log_to_stderr: Option<bool>,
    #[serde(default)]
    events: Option<bool>,
    #[serde(default, rename = "nadDir")]
    nad_dir: Option<String>,
    #[serde(default, rename = "podResourcesSocket")]
    pod_resources_socket: Option<String>,
    #[serde(default, rename = "deviceInfoDir")]
    device_info_dir: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn check_namespace(key: &str, ns: &str) -> Result<(), ConfigError> {
    check_dns1123_label(ns).map_err(|reason| ConfigError::invalid(key, format!("{ns:?}"), reason))
}

impl PlexusConfig {
    /// Decodes and validates the configuration bytes (stdin). Pure: no file is read here; the
    /// cluster network is resolved later with [`network::resolve_cluster_network`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = parse_config(bytes).map_err(ConfigError::Decode)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        let dir = |v: Option<String>, default: &str| {
            PathBuf::from(non_empty(v).unwrap_or_else(|| default.to_owned()))
        };

        let multus_namespace =
            non_empty(raw.multus_namespace).unwrap_or_else(|| DEFAULT_MULTUS_NAMESPACE.to_owned());
        check_namespace("multusNamespace", &multus_namespace)?;

        let system_namespaces = match raw.system_namespaces {
            None => vec![DEFAULT_SYSTEM_NAMESPACE.to_owned()],
            Some(list) => list.into_iter().map(|s| s.trim().to_owned()).collect(),
        };
        for (i, ns) in system_namespaces.iter().enumerate() {
            check_namespace(&format!("systemNamespaces[{i}]"), ns)?;
        }

        let global_namespaces = parse_global_namespaces(raw.global_namespaces)?;

        // The cluster network: `clusterNetwork` wins over `delegates` (Multus ignores delegates
        // when clusterNetwork is set).
        let mut delegates = Vec::with_capacity(raw.delegates.len());
        for (i, d) in raw.delegates.into_iter().enumerate() {
            delegates.push(network::inline_delegate(i, d)?);
        }
        let (cluster_network, extra_delegates) = match non_empty(raw.cluster_network) {
            Some(cn) => {
                if !delegates.is_empty() {
                    tracing::warn!(
                        "both clusterNetwork and delegates are set: delegates are ignored, as Multus does"
                    );
                }
                let r = NetworkRef::parse(&cn).map_err(|reason| {
                    ConfigError::invalid("clusterNetwork", format!("{cn:?}"), reason)
                })?;
                (ClusterNetworkSpec::Ref(r), Vec::new())
            }
            None => {
                let mut it = delegates.into_iter();
                match it.next() {
                    Some(first) => (ClusterNetworkSpec::Inline(first), it.collect()),
                    None => return Err(ConfigError::NoClusterNetwork),
                }
            }
        };

        let mut default_networks = Vec::with_capacity(raw.default_networks.len());
        for (i, n) in raw.default_networks.iter().enumerate() {
            default_networks.push(NetworkRef::parse(n).map_err(|reason| {
                ConfigError::invalid(format!("defaultNetworks[{i}]"), format!("{n:?}"), reason)
            })?);
        }

        let log_level = match non_empty(raw.log_level) {
            None => LogLevel::default(),
            Some(l) => LogLevel::parse(&l).ok_or_else(|| {
                ConfigError::invalid(
                    "logLevel",
                    format!("{l:?}"),
                    "must be one of debug, verbose, error, panic (or trace, info, warn)",
                )
            })?,
        };

        let mut capabilities = BTreeMap::new();
        for (k, v) in raw.capabilities.unwrap_or_default() {
            match v {
                Value::Bool(b) => {
                    capabilities.insert(k, b);
                }
                Value::Null => {}
                other => {
                    return Err(ConfigError::invalid(
                        format!("capabilities.{k}"),
                        other,
                        "must be true or false",
                    ));
                }
            }
        }

        let cni_dir = dir(raw.cni_dir, DEFAULT_CNI_DIR);
        let multus_cache_dir = non_empty(raw.multus_cache_dir)
            .map(PathBuf::from)
            .unwrap_or_else(|| cni_dir.clone());

        Ok(PlexusConfig {
            name: raw.name.unwrap_or_default(),
            plugin_type: raw.plugin_type.unwrap_or_default(),
            cni_version: non_empty(raw.cni_version),
            kubeconfig: non_empty(raw.kubeconfig).map(PathBuf::from),
            conf_dir: dir(raw.conf_dir, DEFAULT_CONF_DIR),
            cni_dir,
            multus_cache_dir,
            bin_dir: dir(raw.bin_dir, DEFAULT_BIN_DIR),
            cluster_network,
            extra_delegates,
            default_networks,
            multus_namespace,
            policy: NamespacePolicy {
                namespace_isolation: raw.namespace_isolation.unwrap_or(false),
                global_namespaces,
                system_namespaces,
            },
            readiness_indicator_file: non_empty(raw.readiness_indicator_file).map(PathBuf::from),
            retry_delete_on_error: raw.retry_delete_on_error.unwrap_or(false),
            overlap_cluster_network: raw.overlap_cluster_network.unwrap_or(true),
            capabilities,
            runtime_config: raw.runtime_config.unwrap_or_default(),
            log_file: non_empty(raw.log_file).map(PathBuf::from),
            log_level,
            log_to_stderr: raw.log_to_stderr.unwrap_or(true),
            events: raw.events.unwrap_or(true),
            nad_dir: dir(raw.nad_dir, DEFAULT_NAD_DIR),
            pod_resources_socket: dir(
                raw.pod_resources_socket,
                crate::podresources::DEFAULT_SOCKET,
            ),
            device_info_dir: dir(raw.device_info_dir, crate::devinfo::DEFAULT_DIR),
        })
    }

    /// The directories searched for file-based networks: `confDir`, then the runtime's
    /// `/etc/cni/net.d` (a parameter, so tests use temp dirs).
    pub fn search_dirs(&self, net_dir: impl Into<PathBuf>) -> SearchDirs {
        SearchDirs {
            conf_dir: self.conf_dir.clone(),
            net_dir: net_dir.into(),
        }
    }
}

/// `globalNamespaces`: Multus's comma-separated string (entries trimmed, empty ones dropped) or a
/// list; absent → `["default"]`.
fn parse_global_namespaces(v: Option<Value>) -> Result<Vec<String>, ConfigError> {
    const KEY: &str = "globalNamespaces";
    let list: Vec<String> = match v {
        None | Some(Value::Null) => return Ok(vec![DEFAULT_GLOBAL_NAMESPACE.to_owned()]),
        // Multus: an empty string keeps the default.
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Ok(vec![DEFAULT_GLOBAL_NAMESPACE.to_owned()]);
        }
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.trim().to_owned()),
                    other => {
                        return Err(ConfigError::invalid(
                            format!("{KEY}[{i}]"),
                            other,
                            "must be a string",
                        ));
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(ConfigError::invalid(
                KEY,
                other,
                "must be a comma-separated string or a list of namespaces",
            ));
        }
    };
    let list: Vec<String> = list.into_iter().filter(|s| !s.is_empty()).collect();
    for ns in &list {
        check_namespace(KEY, ns)?;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PlexusConfig, ConfigError> {
        PlexusConfig::parse(s.as_bytes())
    }

    #[test]
    fn multus_defaults() {
        let c = parse(r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"plexus","clusterNetwork":"cbr0"}"#)
            .unwrap();
        assert_eq!(c.name, "multus-cni-network");
        assert_eq!(c.plugin_type, "plexus");
        assert_eq!(c.cni_version.as_deref(), Some("0.3.1"));
        assert_eq!(c.kubeconfig, None);
        assert_eq!(c.conf_dir, PathBuf::from("/etc/cni/multus/net.d"));
        assert_eq!(c.cni_dir, PathBuf::from("/var/lib/cni/multus"));
        assert_eq!(c.multus_cache_dir, PathBuf::from("/var/lib/cni/multus"));
        assert_eq!(c.bin_dir, PathBuf::from("/opt/cni/bin"));
        assert_eq!(c.multus_namespace, "kube-system");
        assert_eq!(c.policy.system_namespaces, vec!["kube-system"]);
        assert_eq!(c.policy.global_namespaces, vec!["default"]);
        assert!(!c.policy.namespace_isolation);
        assert_eq!(c.readiness_indicator_file, None);
        assert!(!c.retry_delete_on_error);
        assert!(c.overlap_cluster_network);
        assert_eq!(c.log_level, LogLevel::Error);
        assert!(c.log_to_stderr);
        assert!(c.events);
        assert_eq!(
            c.cluster_network,
            ClusterNetworkSpec::Ref(NetworkRef::Name("cbr0".into()))
        );
        assert_eq!(
            c.pod_resources_socket,
            PathBuf::from("/var/lib/kubelet/pod-resources/kubelet.sock")
        );
        assert_eq!(
            c.device_info_dir,
            PathBuf::from("/var/run/k8s.cni.cncf.io/devinfo")
        );
    }

    #[test]
    fn every_key_in_any_case() {
        let c = parse(
            r#"{
              "Name": "n", "TYPE": "plexus", "CNIVersion": "1.0.0",
              "Kubeconfig": "/etc/kubernetes/plexus.kubeconfig",
              "ConfDir": "/c", "CNIDIR": "/s", "BinDir": "/b",
              "ClusterNetwork": "/etc/cni/net.d/10-bridge.conflist",
              "DefaultNetworks": ["sidecar", "other-ns/extra"],
              "MultusNamespace": "plexus-system",
              "SystemNamespaces": ["kube-system", "plexus-system"],
              "NamespaceIsolation": true,
              "GlobalNamespaces": "default, openshift-multus,,sriov",
              "ReadinessIndicatorFile": "/run/flannel/subnet.env",
              "RetryDeleteOnError": true,
              "Capabilities": {"portMappings": true, "io.kubernetes.cri.pod-annotations": true},
              "RuntimeConfig": {"HostPort": 80},
              "LogFile": "/var/log/plexus.log", "LOGLEVEL": "Verbose", "LogToStderr": false,
              "Events": false,
              "PodResourcesSocket": "/k/pr.sock", "DEVICEINFODIR": "/d",
              "MultusCacheDir": "/m"
            }"#,
        )
        .unwrap();
        assert_eq!(
            c.kubeconfig,
            Some(PathBuf::from("/etc/kubernetes/plexus.kubeconfig"))
        );
        assert_eq!(
            (c.conf_dir.to_str(), c.cni_dir.to_str(), c.bin_dir.to_str()),
            (Some("/c"), Some("/s"), Some("/b"))
        );
        assert_eq!(
            c.cluster_network,
            ClusterNetworkSpec::Ref(NetworkRef::Path("/etc/cni/net.d/10-bridge.conflist".into()))
        );
        assert_eq!(
            c.default_networks,
            vec![
                NetworkRef::Name("sidecar".into()),
                NetworkRef::Nad {
                    namespace: "other-ns".into(),
                    name: "extra".into()
                }
            ]
        );
        assert_eq!(c.multus_namespace, "plexus-system");
        assert_eq!(
            c.policy.system_namespaces,
            vec!["kube-system", "plexus-system"]
        );
        assert!(c.policy.namespace_isolation);
        assert_eq!(
            c.policy.global_namespaces,
            vec!["default", "openshift-multus", "sriov"]
        );
        assert_eq!(
            c.readiness_indicator_file,
            Some(PathBuf::from("/run/flannel/subnet.env"))
        );
        assert!(c.retry_delete_on_error);
        assert_eq!(c.capabilities.get("portMappings"), Some(&true));
        assert_eq!(
            c.capabilities.get("io.kubernetes.cri.pod-annotations"),
            Some(&true)
        );
        assert!(c.runtime_config.contains_key("HostPort"));
        assert_eq!(c.log_file, Some(PathBuf::from("/var/log/plexus.log")));
        assert_eq!(c.log_level, LogLevel::Verbose);
        assert_eq!(c.log_level.tracing_level(), tracing::Level::INFO);
        assert!(!c.log_to_stderr);
        assert!(!c.events);
        assert_eq!(c.pod_resources_socket, PathBuf::from("/k/pr.sock"));
        assert_eq!(c.device_info_dir, PathBuf::from("/d"));
        assert_eq!(c.multus_cache_dir, PathBuf::from("/m"));
        // Without the key it follows cniDir (the one Multus's own config named).
        let c = parse(r#"{"clusterNetwork":"x","cniDir":"/s","multusCacheDir":""}"#).unwrap();
        assert_eq!(c.multus_cache_dir, PathBuf::from("/s"));
    }

    #[test]
    fn readiness_indicator_file_lowercase_as_multus_writes_it() {
        let c = parse(r#"{"clusterNetwork":"x","readinessindicatorfile":"/run/ready"}"#).unwrap();
        assert_eq!(
            c.readiness_indicator_file,
            Some(PathBuf::from("/run/ready"))
        );
        let c = parse(r#"{"clusterNetwork":"x","readinessindicatorfile":""}"#).unwrap();
        assert_eq!(c.readiness_indicator_file, None);
    }

    #[test]
    fn global_namespaces_as_list_and_empty() {
        let c = parse(r#"{"clusterNetwork":"x","globalNamespaces":["a","b"]}"#).unwrap();
        assert_eq!(c.policy.global_namespaces, vec!["a", "b"]);
        let c = parse(r#"{"clusterNetwork":"x","globalNamespaces":""}"#).unwrap();
        assert_eq!(c.policy.global_namespaces, vec!["default"]);
        let e = parse(r#"{"clusterNetwork":"x","globalNamespaces":5}"#).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("\"globalNamespaces\" = 5"), "{e}");
        let e = parse(r#"{"clusterNetwork":"x","globalNamespaces":"ok,Bad_NS"}"#).unwrap_err();
        assert!(
            e.to_string().contains("\"globalNamespaces\" = \"Bad_NS\""),
            "{e}"
        );
    }

    #[test]
    fn delegates_first_is_cluster_network_rest_extra() {
        let c = parse(
            r#"{"name":"m","type":"plexus","delegates":[
                {"cniVersion":"0.3.1","name":"cbr0","type":"bridge"},
                {"cniVersion":"0.3.1","name":"chain","plugins":[{"type":"macvlan"}]}]}"#,
        )
        .unwrap();
        match &c.cluster_network {
            ClusterNetworkSpec::Inline(conf) => assert_eq!(conf.name(), Some("cbr0")),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.extra_delegates.len(), 1);
        assert!(c.extra_delegates[0].is_list());
        // clusterNetwork wins over delegates, as in Multus
        let c = parse(r#"{"clusterNetwork":"cbr0","delegates":[{"name":"x","type":"bridge"}]}"#)
            .unwrap();
        assert_eq!(
            c.cluster_network,
            ClusterNetworkSpec::Ref(NetworkRef::Name("cbr0".into()))
        );
        assert!(c.extra_delegates.is_empty());
    }

    #[test]
    fn validation_errors_name_key_and_value() {
        let e = parse(r#"{"name":"m"}"#).unwrap_err();
        assert!(matches!(e, ConfigError::NoClusterNetwork));
        assert_eq!(e.code(), 7);
        let e = parse(r#"{"clusterNetwork":"x","logLevel":"loud"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid network configuration: \"logLevel\" = \"loud\": must be one of debug, verbose, error, panic (or trace, info, warn)"
        );
        let e = parse(r#"{"clusterNetwork":"x","multusNamespace":"Kube_System"}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"multusNamespace\" = \"Kube_System\""),
            "{e}"
        );
        let e = parse(r#"{"clusterNetwork":"x","defaultNetworks":["ok","a/b/c"]}"#).unwrap_err();
        assert!(
            e.to_string().contains("\"defaultNetworks[1]\" = \"a/b/c\""),
            "{e}"
        );
        let e =
            parse(r#"{"clusterNetwork":"x","capabilities":{"portMappings":"yes"}}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"capabilities.portMappings\" = \"yes\""),
            "{e}"
        );
        let e = parse(r#"{"delegates":[{"type":"bridge"}]}"#).unwrap_err();
        assert!(e.to_string().contains("\"delegates[0].name\""), "{e}");
        let e = parse(r#"{"delegates":[{"name":"x"}]}"#).unwrap_err();
        assert!(e.to_string().contains("delegates[0]"), "{e}");
        let cni: CniError = parse(r#"{"clusterNetwork":"x","logLevel":"loud"}"#)
            .unwrap_err()
            .into();
        assert!(cni.is(ErrorCode::InvalidConfig));
    }

    #[test]
    fn type_errors_are_decode_errors_naming_the_key() {
        let e = parse(r#"{"clusterNetwork":"x","NamespaceIsolation":"yes"}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Decode as u32);
        assert!(e.to_string().contains("NamespaceIsolation"), "{e}");
        let e = parse("not json").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Decode as u32);
    }

    #[test]
    fn log_levels_multus_names() {
        for (s, l, t) in [
            ("debug", LogLevel::Debug, tracing::Level::DEBUG),
            ("VERBOSE", LogLevel::Verbose, tracing::Level::INFO),
            ("error", LogLevel::Error, tracing::Level::ERROR),
            ("Panic", LogLevel::Panic, tracing::Level::ERROR),
            ("trace", LogLevel::Trace, tracing::Level::TRACE),
        ] {
            assert_eq!(LogLevel::parse(s), Some(l));
            assert_eq!(l.tracing_level(), t);
        }
        assert_eq!(LogLevel::parse("loud"), None);
    }
}
