//! The plugin's credentials on the node, from the installer pod's service account.
//!
//! The plugin runs on the node, where the pod's projected token volume is not at a stable path,
//! so the token is copied next to the kubeconfig (`<kubeconfig>.token`, mode 0600) and the
//! kubeconfig (mode 0600) references it with `tokenFile`. kube-rs (the plugin's client) reads
//! `tokenFile` when the client is built and again at least once a minute, and the plugin builds a
//! client per call; so a rotated token only needs the token copy replaced: the installer compares
//! the pod's token with the copy every poll and replaces the copy when they differ. The kubeconfig
//! changes only when the CA or the API server address does. The CA is embedded
//! (`certificate-authority-data`) so the kubeconfig and its CA cannot go out of step.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use super::InstallError;

/// The projected service-account volume's default mount point.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Both files hold credentials: owner read/write only.
pub const SECRET_MODE: u32 = 0o600;

/// The pod's service account, as mounted.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub token: String,
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("ServiceAccount").finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads `token` and `ca.crt` from `dir` (the projected volume: both are symlinks that the
    /// kubelet swaps atomically on rotation, so a read sees one version or the other).
    pub fn read(dir: &Path) -> Result<Self, InstallError> {
        let bad = |reason: String| InstallError::ServiceAccount {
            dir: dir.to_path_buf(),
            reason,
        };
        let token = std::fs::read_to_string(dir.join("token"))
            .map_err(|e| bad(format!("cannot read token: {e}")))?;
        let token = token.trim().to_owned();
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(bad("token is empty or not a single bearer token".into()));
        }
        let ca_pem = std::fs::read(dir.join("ca.crt"))
            .map_err(|e| bad(format!("cannot read ca.crt: {e}")))?;
        if !String::from_utf8_lossy(&ca_pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(bad("ca.crt holds no PEM certificate".into()));
        }
        Ok(ServiceAccount { token, ca_pem })
    }
}

/// The API server address, from the pod's `KUBERNETES_SERVICE_HOST`/`_PORT` (or flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServer {
    pub host: String,
    pub port: u16,
}

impl ApiServer {
    /// `https://host:port`, with an IPv6 host in brackets.
    pub fn url(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// The node path of the token copy that a kubeconfig at `kubeconfig` references.
pub fn token_path(kubeconfig: &Path) -> PathBuf {
    let mut name = kubeconfig.file_name().unwrap_or_default().to_os_string();
    name.push(".token");
    kubeconfig.with_file_name(name)
}

/// The kubeconfig text: one cluster (server + embedded CA), one user whose bearer token is read
/// from `token_file` (a node path), one current context.
pub fn render(server: &ApiServer, ca_pem: &[u8], token_file: &Path) -> Vec<u8> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "plexus", "cluster": {
            "server": server.url(),
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": "plexus", "user": {"tokenFile": token_file.display().to_string()}}],
        "contexts": [{"name": "plexus", "context": {"cluster": "plexus", "user": "plexus"}}],
        "current-context": "plexus",
    });
    // A JSON value always serializes to YAML.
    let yaml = serde_yaml::to_string(&config).unwrap_or_default();
    format!(
        "# Written by `plexus install` from its service account; the token is in {}.\n{yaml}",
        token_file.display()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_token_path() {
        let s = ApiServer {
            host: "10.96.0.1".into(),
            port: 443,
        };
        assert_eq!(s.url(), "https://10.96.0.1:443");
        let s = ApiServer {
            host: "fd00::1".into(),
            port: 6443,
        };
        assert_eq!(s.url(), "https://[fd00::1]:6443");
        assert_eq!(
            token_path(Path::new("/etc/cni/net.d/plexus.d/plexus.kubeconfig")),
            PathBuf::from("/etc/cni/net.d/plexus.d/plexus.kubeconfig.token")
        );
    }

    #[test]
    fn reads_and_checks_the_service_account() {
        let d = tempfile::tempdir().unwrap();
        let e = ServiceAccount::read(d.path()).unwrap_err();
        assert!(e.to_string().contains("cannot read token"), "{e}");
        std::fs::write(d.path().join("token"), "abc.def\n").unwrap();
        std::fs::write(d.path().join("ca.crt"), "nothing").unwrap();
        let e = ServiceAccount::read(d.path()).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        std::fs::write(
            d.path().join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let sa = ServiceAccount::read(d.path()).unwrap();
        assert_eq!(sa.token, "abc.def");
        assert!(!format!("{sa:?}").contains("abc"));
        std::fs::write(d.path().join("token"), "two tokens").unwrap();
        assert!(ServiceAccount::read(d.path()).is_err());
    }
}
