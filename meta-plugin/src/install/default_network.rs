//! Finding the cluster's default network config: the file the container runtime would use if
//! Plexus were not installed.
//!
//! Runtimes (containerd's go-cni, CRI-O's ocicni, kubelet's former dockershim) list the
//! `.conf`, `.conflist` and `.json` files of the CNI config dir, sort the names, and use the first
//! one that loads; kubelet and CRI-O skip a file that does not parse. Discovery does the same,
//! skipping Plexus's own `00-plexus.conflist`, and also any config whose plugin type is Plexus's
//! (delegating `eth0` to Plexus itself would recurse; the plugin refuses that too).

use std::io;
use std::path::{Path, PathBuf};

use plexus_crds::{NadConfig, select_conf_file};
use serde_json::Value;

use super::InstallError;

/// The extensions runtimes load from the CNI config dir.
pub const CONFIG_EXTENSIONS: [&str; 3] = [".conf", ".conflist", ".json"];

/// The default network's config file.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultNetwork {
    /// The file name in the CNI config dir.
    pub file_name: String,
    /// Its parsed config.
    pub config: NadConfig,
}

/// The outcome of one look at the CNI config dir.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Discovery {
    pub found: Option<DefaultNetwork>,
    /// Files before the one found (or all, if none was) that were passed over, with why.
    pub skipped: Vec<String>,
}

/// Looks for the default network in `conf_dir` (as the installer sees it). `own_file` is
/// Plexus's own file name and `own_type` its plugin type. A missing directory has no network.
pub fn discover(
    conf_dir: &Path,
    own_file: &str,
    own_type: &str,
) -> Result<Discovery, InstallError> {
    let mut names = match config_file_names(conf_dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Discovery::default()),
        Err(e) => return Err(InstallError::io("listing", conf_dir, e)),
    };
    names.sort();
    let mut discovery = Discovery::default();
    for name in names {
        if name == own_file {
            continue;
        }
        let path = conf_dir.join(&name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Removed since it was listed: as if it were never there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                discovery
                    .skipped
                    .push(format!("{name}: cannot read it: {e}"));
                continue;
            }
        };
        match select_conf_file([(name.as_str(), bytes.as_slice())], None) {
            Ok(Some(m)) => {
                if first_plugin_type(&m.config).as_deref() == Some(own_type) {
                    discovery.skipped.push(format!(
                        "{name}: its plugin type is {own_type:?}, Plexus itself"
                    ));
                    continue;
                }
                discovery.found = Some(DefaultNetwork {
                    file_name: name,
                    config: m.config,
                });
                break;
            }
            Ok(None) => {}
            Err(e) => discovery.skipped.push(format!("{name}: {e}")),
        }
    }
    Ok(discovery)
}

/// The `.conf`/`.conflist`/`.json` regular files (symlinks followed) of `dir`.
fn config_file_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !CONFIG_EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
            continue;
        }
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            out.push(name);
        }
    }
    Ok(out)
}

fn get_ci<'m>(map: &'m serde_json::Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The plugin objects of a config: itself for a single conf, `plugins[]` for a list.
pub fn plugins(config: &NadConfig) -> Vec<&serde_json::Map<String, Value>> {
    match config {
        NadConfig::Conf(m) => vec![m],
        NadConfig::ConfList(m) => get_ci(m, "plugins")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default(),
    }
}

/// The `type` of the config's (first) plugin.
pub fn first_plugin_type(config: &NadConfig) -> Option<String> {
    plugins(config)
        .first()
        .and_then(|p| get_ci(p, "type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The capabilities the default network's plugins declare `true`, over all its plugins: the
/// runtime passes a capability's runtime args only to a config that declares it, so
/// `00-plexus.conflist` declares the union to receive what the delegate needs.
pub fn capabilities(config: &NadConfig) -> std::collections::BTreeMap<String, bool> {
    let mut caps = std::collections::BTreeMap::new();
    for plugin in plugins(config) {
        if let Some(Value::Object(c)) = get_ci(plugin, "capabilities") {
            for (k, v) in c {
                if v.as_bool() == Some(true) {
                    caps.insert(k.clone(), true);
                }
            }
        }
    }
    caps
}

/// The node path of the default network's file.
pub fn host_path(conf_dir_on_host: &Path, network: &DefaultNetwork) -> PathBuf {
    conf_dir_on_host.join(&network.file_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}},{"type":"tuning","capabilities":{"mac":false}}]}"#;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn first_in_byte_order_skipping_ours_broken_and_non_configs() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "00-plexus.conflist",
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"plexus"}]}"#,
        );
        write(d.path(), "05-half.conflist", r#"{"cniVersion":"1.0.0","na"#);
        write(
            d.path(),
            "07-self.conf",
            r#"{"cniVersion":"1.0.0","name":"y","type":"plexus"}"#,
        );
        write(d.path(), "10-bridge.conflist", BRIDGE);
        write(d.path(), "01-readme.txt", "not a config");
        write(
            d.path(),
            "20-other.conf",
            r#"{"cniVersion":"0.3.1","name":"o","type":"ptp"}"#,
        );
        std::fs::create_dir(d.path().join("02-dir.conf")).unwrap();
        let found = discover(d.path(), "00-plexus.conflist", "plexus").unwrap();
        let net = found.found.unwrap();
        assert_eq!(net.file_name, "10-bridge.conflist");
        assert_eq!(net.config.name(), Some("cbr0"));
        assert_eq!(found.skipped.len(), 2, "{:?}", found.skipped);
        assert!(
            found.skipped[0].starts_with("05-half.conflist: "),
            "{:?}",
            found.skipped
        );
        assert!(
            found.skipped[1].contains("Plexus itself"),
            "{:?}",
            found.skipped
        );
        assert_eq!(
            capabilities(&net.config).into_iter().collect::<Vec<_>>(),
            vec![("portMappings".to_owned(), true)]
        );
        assert_eq!(first_plugin_type(&net.config).as_deref(), Some("bridge"));
    }

    #[test]
    fn json_files_count_and_upper_case_sorts_first() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "10-b.json",
            r#"{"cniVersion":"0.4.0","name":"j","type":"ptp","capabilities":{"ips":true}}"#,
        );
        write(d.path(), "10-a.conflist", BRIDGE);
        write(
            d.path(),
            "10-Z.conf",
            r#"{"cniVersion":"0.4.0","name":"z","type":"ptp"}"#,
        );
        let net = discover(d.path(), "00-plexus.conflist", "plexus")
            .unwrap()
            .found
            .unwrap();
        assert_eq!(net.file_name, "10-Z.conf");
        std::fs::remove_file(d.path().join("10-Z.conf")).unwrap();
        std::fs::remove_file(d.path().join("10-a.conflist")).unwrap();
        let net = discover(d.path(), "00-plexus.conflist", "plexus")
            .unwrap()
            .found
            .unwrap();
        assert_eq!(net.file_name, "10-b.json");
        assert_eq!(capabilities(&net.config).len(), 1);
    }

    #[test]
    fn missing_or_empty_dir_has_no_network() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            discover(&d.path().join("nope"), "00-plexus.conflist", "plexus").unwrap(),
            Discovery::default()
        );
        assert_eq!(
            discover(d.path(), "00-plexus.conflist", "plexus").unwrap(),
            Discovery::default()
        );
    }
}
