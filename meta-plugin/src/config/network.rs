//! `clusterNetwork`, `defaultNetworks` and `delegates[]`: what they may name and how each resolves
//! to a CNI config.
//!
//! Multus (`getNetDelegate`) treats a reference without `/` as a NAD name in `multusNamespace`,
//! falling back to a config file in `confDir` whose `name` matches; a reference with `/` as a file
//! or a directory (whose first `.conf`/`.conflist`/`.json` in sorted order is used). Plexus keeps
//! that and adds `namespace/name` for a NAD in another namespace: a relative reference of exactly
//! two DNS-1123 labels is a NAD, anything else with a `/` a path. A name is also looked up in the
//! runtime's `/etc/cni/net.d`, where the cluster's own CNI writes its config.

use std::io;
use std::path::{Path, PathBuf};

use plexus_crds::selection::check_dns1123_label;
use plexus_crds::{NadConfig, NadResolution, NetworkAttachmentDefinition, select_conf_file};
use serde_json::Value;

use super::ConfigError;
use crate::kube::{KubeApi, KubeError};

/// A network named by `clusterNetwork` or a `defaultNetworks` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkRef {
    /// A bare name: the NAD of that name in `multusNamespace`, else the config file (in `confDir`,
    /// then the runtime's net dir) whose CNI `name` matches.
    Name(String),
    /// `namespace/name`: a NAD.
    Nad { namespace: String, name: String },
    /// A config file (`.conf`, `.conflist`, `.json`) or a directory.
    Path(PathBuf),
}

impl NetworkRef {
    /// Parses a reference as written in the config; the error is the reason.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if !s.contains('/') {
            return Ok(NetworkRef::Name(s.to_owned()));
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Ok(NetworkRef::Path(PathBuf::from(s)));
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [ns, name] if check_dns1123_label(ns).is_ok() && check_dns1123_label(name).is_ok() => {
                Ok(NetworkRef::Nad {
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                })
            }
            _ => Err(
                "must be a network name, <namespace>/<name> of a NetworkAttachmentDefinition, or an absolute path of a file or directory"
                    .into(),
            ),
        }
    }
}

impl std::fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkRef::Name(n) => f.write_str(n),
            NetworkRef::Nad { namespace, name } => write!(f, "{namespace}/{name}"),
            NetworkRef::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The cluster network as configured: a reference, or `delegates[0]` inline.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterNetworkSpec {
    Ref(NetworkRef),
    Inline(NadConfig),
}

/// A network resolved to its CNI config.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterNetwork {
    /// From a NetworkAttachmentDefinition (its `spec.config`, or the `confDir` file it names).
    Nad {
        namespace: String,
        name: String,
        config: NadConfig,
        /// `k8s.v1.cni.cncf.io/resourceName` of the NAD.
        resource_name: Option<String>,
    },
    /// From a config file (given directly, picked from a directory, or matched by name).
    File { path: PathBuf, config: NadConfig },
    /// An inline `delegates[]` entry.
    Inline(NadConfig),
}

impl ClusterNetwork {
    /// The resolved CNI config.
    pub fn config(&self) -> &NadConfig {
        match self {
            ClusterNetwork::Nad { config, .. }
            | ClusterNetwork::File { config, .. }
            | ClusterNetwork::Inline(config) => config,
        }
    }

    /// The `name` written in network-status (COMPAT §4): `<ns>/<nad>` for a NAD, the CNI `name`
    /// otherwise.
    pub fn status_name(&self) -> String {
        match self {
            ClusterNetwork::Nad {
                namespace, name, ..
            } => format!("{namespace}/{name}"),
            other => other.config().name().unwrap_or_default().to_owned(),
        }
    }
}

/// Where file-based networks are searched: `confDir`, then the runtime's CNI config directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDirs {
    pub conf_dir: PathBuf,
    pub net_dir: PathBuf,
}

/// Parses one `delegates[]` entry (a conf or conflist object with a `name`).
pub(crate) fn inline_delegate(index: usize, value: Value) -> Result<NadConfig, ConfigError> {
    let key = format!("delegates[{index}]");
    let name = match &value {
        Value::Object(m) => m
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("name"))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("")
            .to_owned(),
        other => {
            return Err(ConfigError::invalid(
                key,
                other,
                "must be a CNI config object",
            ));
        }
    };
    if name.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.name"),
            value.get("name").cloned().unwrap_or(Value::Null),
            "a delegate must have a non-empty \"name\"",
        ));
    }
    NadConfig::parse(&value.to_string(), &name)
        .map_err(|e| ConfigError::invalid(key, value, e.to_string()))
}

fn resolve_err(
    key: &'static str,
    reference: &impl ToString,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Resolve {
        key,
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Resolves the configured cluster network. `api` is the API server (or any [`KubeApi`]);
/// `None` means none is configured, and NAD references then fail with a clear error.
/// `own_type` is the meta-plugin's `type`: a file of that type would recurse and is refused.
pub async fn resolve_cluster_network<K: KubeApi>(
    spec: &ClusterNetworkSpec,
    multus_namespace: &str,
    dirs: &SearchDirs,
    own_type: &str,
    api: Option<&K>,
) -> Result<ClusterNetwork, ConfigError> {
    match spec {
        ClusterNetworkSpec::Inline(conf) => Ok(ClusterNetwork::Inline(conf.clone())),
        ClusterNetworkSpec::Ref(r) => {
            resolve_network("clusterNetwork", r, multus_namespace, dirs, own_type, api).await
        }
    }
}

/// Resolves one network reference (`key` names the config key in errors: `clusterNetwork`,
/// `defaultNetworks[1]`, ...). One API request at most.
pub async fn resolve_network<K: KubeApi>(
    key: &'static str,
    r: &NetworkRef,
    default_namespace: &str,
    dirs: &SearchDirs,
    own_type: &str,
    api: Option<&K>,
) -> Result<ClusterNetwork, ConfigError> {
    let resolved = match r {
        NetworkRef::Path(path) => resolve_path(key, path)?,
        NetworkRef::Nad { namespace, name } => {
            let Some(api) = api else {
                return Err(resolve_err(
                    key,
                    r,
                    "names a NetworkAttachmentDefinition, but no \"kubeconfig\" is configured",
                ));
            };
            let nad = api.get_nad(namespace, name).await?;
            from_nad(&nad, namespace, name, &dirs.conf_dir)?
        }
        NetworkRef::Name(name) => {
            let from_api = match api {
                Some(api) => match api.get_nad(default_namespace, name).await {
                    Ok(nad) => Some(from_nad(&nad, default_namespace, name, &dirs.conf_dir)?),
                    Err(KubeError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            match from_api {
                Some(n) => n,
                None => find_by_name(name, dirs)?.ok_or_else(|| {
                    resolve_err(
                        key,
                        r,
                        format!(
                            "no NetworkAttachmentDefinition {default_namespace}/{name}{} and no .conf/.conflist/.json file named {name:?} in {} or {}",
                            if api.is_none() { " (no kubeconfig)" } else { "" },
                            dirs.conf_dir.display(),
                            dirs.net_dir.display()
                        ),
                    )
                })?,
            }
        }
    };
    if let ClusterNetwork::File { path, config } = &resolved
        && !own_type.is_empty()
        && plugin_type(config).as_deref() == Some(own_type)
    {
        return Err(resolve_err(
            key,
            r,
            format!(
                "resolves to {}, the meta-plugin's own config (type {own_type:?}); name the cluster's CNI config instead",
                path.display()
            ),
        ));
    }
    Ok(resolved)
}

fn plugin_type(config: &NadConfig) -> Option<String> {
    fn get<'a>(m: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
        m.get(key).or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }
    let map = config.as_map();
    let plugin = match config {
        NadConfig::Conf(_) => Some(map),
        NadConfig::ConfList(_) => get(map, "plugins")
            .and_then(Value::as_array)
            .and_then(|p| p.first())
            .and_then(Value::as_object),
    };
    plugin
        .and_then(|p| get(p, "type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Turns a fetched NAD into its CNI config: `spec.config`, or for an empty spec the file in
/// `conf_dir` whose `name` is the NAD's name (COMPAT §2).
pub fn from_nad(
    nad: &NetworkAttachmentDefinition,
    namespace: &str,
    name: &str,
    conf_dir: &Path,
) -> Result<ClusterNetwork, ConfigError> {
    let what = format!("NetworkAttachmentDefinition {namespace}/{name}");
    let bad = |reason: String| ConfigError::Resolve {
        key: "network",
        reference: format!("{namespace}/{name}"),
        reason,
    };
    let config = match nad.resolve().map_err(|e| bad(e.to_string()))? {
        NadResolution::Config(c) => c,
        NadResolution::SearchConfDir { name: conf_name } => {
            let files = read_conf_files(conf_dir, false).map_err(|e| {
                bad(format!(
                    "{what} has no spec.config; reading {}: {e}",
                    conf_dir.display()
                ))
            })?;
            let found = select_conf_file(
                files.iter().map(|(f, b)| (f.as_str(), b.as_slice())),
                Some(&conf_name),
            )
            .map_err(|e| bad(e.to_string()))?;
            match found {
                Some(m) => m.config,
                None => {
                    return Err(bad(format!(
                        "{what} has no spec.config and no .conf/.conflist/.json file in {} has \"name\": {conf_name:?}",
                        conf_dir.display()
                    )));
                }
            }
        }
    };
    Ok(ClusterNetwork::Nad {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        config,
        resource_name: nad.resource_name().map(str::to_owned),
    })
}

/// A file or a directory given as a path: the file itself, or the first config file of the
/// directory in sorted order (Multus: `GetCNIConfigFromFile("", dir)`).
fn resolve_path(key: &'static str, path: &Path) -> Result<ClusterNetwork, ConfigError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| resolve_err(key, &shown, e.to_string()))?;
    if meta.is_dir() {
        let files =
            read_conf_files(path, true).map_err(|e| resolve_err(key, &shown, e.to_string()))?;
        let found = select_conf_file(files.iter().map(|(f, b)| (f.as_str(), b.as_slice())), None)
            .map_err(|e| resolve_err(key, &shown, e.to_string()))?;
        let Some(m) = found else {
            return Err(resolve_err(
                key,
                &shown,
                "the directory has no .conf, .conflist or .json file",
            ));
        };
        return Ok(ClusterNetwork::File {
            path: path.join(&m.file_name),
            config: m.config,
        });
    }
    let Some(file_name) = path.file_name().and_then(|f| f.to_str()) else {
        return Err(resolve_err(key, &shown, "not a file name"));
    };
    let bytes = std::fs::read(path).map_err(|e| resolve_err(key, &shown, e.to_string()))?;
    // A file given explicitly counts whatever its extension; the checks by extension still apply.
    let probe = if [".conf", ".conflist", ".json"]
        .iter()
        .any(|ext| file_name.ends_with(ext))
    {
        file_name.to_owned()
    } else {
        format!("{file_name}.conf")
    };
    let found = select_conf_file([(probe.as_str(), bytes.as_slice())], None)
        .map_err(|e| resolve_err(key, &shown, e.to_string()))?;
    match found {
        Some(m) => Ok(ClusterNetwork::File {
            path: path.to_path_buf(),
            config: m.config,
        }),
        None => Err(resolve_err(key, &shown, "not a CNI config file")),
    }
}

/// The config file whose CNI `name` is `name`, in `confDir` then the net dir.
pub fn find_by_name(name: &str, dirs: &SearchDirs) -> Result<Option<ClusterNetwork>, ConfigError> {
    for dir in [&dirs.conf_dir, &dirs.net_dir] {
        let files = read_conf_files(dir, false).map_err(|e| {
            resolve_err("network", &name, format!("reading {}: {e}", dir.display()))
        })?;
        let found = select_conf_file(
            files.iter().map(|(f, b)| (f.as_str(), b.as_slice())),
            Some(name),
        )
        .map_err(|e| resolve_err("network", &name, e.to_string()))?;
        if let Some(m) = found {
            return Ok(Some(ClusterNetwork::File {
                path: dir.join(&m.file_name),
                config: m.config,
            }));
        }
    }
    Ok(None)
}

/// The `.conf`/`.conflist`/`.json` regular files of `dir` (name, bytes). A missing directory is
/// empty unless `must_exist`.
fn read_conf_files(dir: &Path, must_exist: bool) -> io::Result<Vec<(String, Vec<u8>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !must_exist => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if ![".conf", ".conflist", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            continue;
        }
        // Follow symlinks (config dirs are often managed by symlinks); skip directories.
        let path = entry.path();
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        out.push((name, std::fs::read(&path)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fake::FakeKube;

    #[test]
    fn parse_references() {
        assert_eq!(
            NetworkRef::parse(" cbr0 "),
            Ok(NetworkRef::Name("cbr0".into()))
        );
        assert_eq!(
            NetworkRef::parse("kube-system/calico"),
            Ok(NetworkRef::Nad {
                namespace: "kube-system".into(),
                name: "calico".into()
            })
        );
        assert_eq!(
            NetworkRef::parse("/etc/cni/net.d"),
            Ok(NetworkRef::Path("/etc/cni/net.d".into()))
        );
        assert_eq!(
            NetworkRef::parse("./x.conf"),
            Ok(NetworkRef::Path("./x.conf".into()))
        );
        assert!(NetworkRef::parse("").is_err());
        assert!(NetworkRef::parse("a/b/c").is_err());
        assert!(NetworkRef::parse("Bad/x").is_err());
    }

    fn dirs(tmp: &Path) -> SearchDirs {
        let d = SearchDirs {
            conf_dir: tmp.join("multus.d"),
            net_dir: tmp.join("net.d"),
        };
        std::fs::create_dir_all(&d.conf_dir).unwrap();
        std::fs::create_dir_all(&d.net_dir).unwrap();
        d
    }

    const BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge"}]}"#;

    async fn resolve(
        r: &str,
        dirs: &SearchDirs,
        api: Option<&FakeKube>,
    ) -> Result<ClusterNetwork, ConfigError> {
        let spec = ClusterNetworkSpec::Ref(NetworkRef::parse(r).unwrap());
        resolve_cluster_network(&spec, "kube-system", dirs, "plexus", api).await
    }

    #[tokio::test]
    async fn directory_takes_first_config_in_sorted_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        std::fs::write(
            d.net_dir.join("20-other.conf"),
            r#"{"name":"other","type":"ptp"}"#,
        )
        .unwrap();
        std::fs::write(d.net_dir.join("10-bridge.conflist"), BRIDGE).unwrap();
        std::fs::write(d.net_dir.join("05-notes.txt"), "not a config").unwrap();
        let n = resolve(d.net_dir.to_str().unwrap(), &d, None)
            .await
            .unwrap();
        assert_eq!(n.config().name(), Some("cbr0"));
        assert_eq!(n.status_name(), "cbr0");
        match n {
            ClusterNetwork::File { path, .. } => assert!(path.ends_with("10-bridge.conflist")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn own_config_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        std::fs::write(
            d.net_dir.join("00-plexus.conf"),
            r#"{"name":"multus-cni-network","type":"plexus","clusterNetwork":"cbr0"}"#,
        )
        .unwrap();
        std::fs::write(d.net_dir.join("10-bridge.conflist"), BRIDGE).unwrap();
        let e = resolve(d.net_dir.to_str().unwrap(), &d, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("meta-plugin's own config"), "{e}");
    }

    #[tokio::test]
    async fn file_and_name_resolution() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        let f = d.net_dir.join("10-bridge.conflist");
        std::fs::write(&f, BRIDGE).unwrap();
        let n = resolve(f.to_str().unwrap(), &d, None).await.unwrap();
        assert!(n.config().is_list());
        // by CNI name, found in the runtime's net dir
        let n = resolve("cbr0", &d, None).await.unwrap();
        assert_eq!(
            n,
            ClusterNetwork::File {
                path: f.clone(),
                config: n.config().clone()
            }
        );
        // confDir is searched first
        std::fs::write(
            d.conf_dir.join("cbr0.conf"),
            r#"{"name":"cbr0","type":"ptp"}"#,
        )
        .unwrap();
        let n = resolve("cbr0", &d, None).await.unwrap();
        assert!(!n.config().is_list());
        let e = resolve("nope", &d, None).await.unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().starts_with("clusterNetwork \"nope\": no NetworkAttachmentDefinition kube-system/nope (no kubeconfig)"), "{e}");
        let e = resolve("/does/not/exist", &d, None).await.unwrap_err();
        assert!(e.to_string().contains("/does/not/exist"), "{e}");
        let e = resolve("kube-system/cbr0", &d, None).await.unwrap_err();
        assert!(e.to_string().contains("no \"kubeconfig\""), "{e}");
    }

    #[tokio::test]
    async fn name_prefers_nad_then_falls_back_to_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        std::fs::write(d.net_dir.join("10-bridge.conflist"), BRIDGE).unwrap();
        let api = FakeKube::default();
        api.add_nad(
            "kube-system",
            "cbr0",
            Some(r#"{"cniVersion":"1.0.0","type":"flannel"}"#),
        );
        let n = resolve("cbr0", &d, Some(&api)).await.unwrap();
        assert_eq!(n.status_name(), "kube-system/cbr0");
        assert_eq!(n.config().name(), Some("cbr0"));
        // 404 → the file
        let api = FakeKube::default();
        let n = resolve("cbr0", &d, Some(&api)).await.unwrap();
        assert!(matches!(n, ClusterNetwork::File { .. }));
        // empty-spec NAD → file in confDir with the NAD's name
        let api = FakeKube::default();
        api.add_nad("team", "from-file", None);
        let e = resolve("team/from-file", &d, Some(&api)).await.unwrap_err();
        assert!(e.to_string().contains("has no spec.config and no"), "{e}");
        std::fs::write(
            d.conf_dir.join("a.conf"),
            r#"{"name":"from-file","type":"macvlan"}"#,
        )
        .unwrap();
        let n = resolve("team/from-file", &d, Some(&api)).await.unwrap();
        assert_eq!(n.status_name(), "team/from-file");
    }
}
