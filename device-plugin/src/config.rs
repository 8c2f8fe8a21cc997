//! Reading the device plugin config file (`/etc/pcidp/config.json`, the sriov-network-device-plugin
//! format). Parsing and validation of the selectors are `plexus_delegates::sriov::selectors`; this
//! adds the file and the rules of a daemon that must have something to serve.

use std::path::{Path, PathBuf};

use plexus_delegates::sriov::selectors::{ConfigError, DpConfig};

/// The config file cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("config file {}: resourceList is empty: there is no resource to advertise", path.display())]
    NoResources { path: PathBuf },
}

/// Read and validate the config at `path`. A bad selector or VF range is an error naming the
/// resource, the selector index, the key and the value.
pub fn load(path: &Path) -> Result<DpConfig, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &bytes)
}

/// [`load`] for bytes already read from `path`.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<DpConfig, LoadError> {
    let config = DpConfig::parse(bytes).map_err(|source| LoadError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    if config.resources.is_empty() {
        return Err(LoadError::NoResources {
            path: path.to_path_buf(),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        parse(Path::new("/etc/pcidp/config.json"), json.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_file_the_selector_and_the_value() {
        let e =
            err(r#"{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["ens1#5-2"]}}]}"#);
        assert!(e.contains("/etc/pcidp/config.json"), "{e}");
        assert!(e.contains("pfNames"), "{e}");
        assert!(e.contains("ens1#5-2"), "{e}");
        let e = err(
            r#"{"resourceList":[{"resourceName":"a","selectors":[{},{"ddpProfiles":["gtp"]}]}]}"#,
        );
        assert!(e.contains("selectors[1].ddpProfiles"), "{e}");
        assert!(e.contains("not supported"), "{e}");
        let e = err(r#"{"resourceList":[]}"#);
        assert!(e.contains("resourceList is empty"), "{e}");
        let e = err("{not json");
        assert!(e.contains("config.json"), "{e}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = load(Path::new("/nonexistent/plexus/config.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/plexus/config.json"), "{e}");
    }
}
