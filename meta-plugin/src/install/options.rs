//! What the installer does, after flag parsing and validation ([`super::cli`]).

use std::path::PathBuf;
use std::time::Duration;

use super::conflist::{HostRefs, PluginSettings};
use super::kubeconfig::{ApiServer, token_path};
use super::paths::HostRoot;
use super::{CONFLIST_NAME, InstallError};

/// The validated installer configuration. "Node path" means a path as the node sees it (written
/// into configs); the installer reaches it through [`InstallConfig::host_root`].
#[derive(Debug, Clone)]
pub struct InstallConfig {
    pub host_root: HostRoot,
    /// The node's CNI bin dir (node path).
    pub cni_bin_dir: PathBuf,
    /// The node's CNI config dir, where the default network's config is and
    /// `00-plexus.conflist` goes (node path).
    pub cni_conf_dir: PathBuf,
    /// Where the binaries to install are (a path in the installer's own filesystem).
    pub source_dir: PathBuf,
    /// The binary names to copy from `source_dir` when present there.
    pub binaries: Vec<String>,
    /// The kubeconfig to write (node path); the token goes next to it.
    pub kubeconfig: PathBuf,
    /// The mounted service account (installer's filesystem).
    pub service_account_dir: PathBuf,
    pub api_server: ApiServer,
    pub plugin: PluginSettings,
    /// How often the default network and the token are compared with what is on the node.
    pub poll_interval: Duration,
    /// Keep `00-plexus.conflist` when the installer is stopped.
    pub leave_config_on_exit: bool,
    /// The readiness record the health check reads (installer's filesystem).
    pub status_file: PathBuf,
}

impl InstallConfig {
    /// Where the installer reaches `00-plexus.conflist`.
    pub fn conflist_local(&self) -> PathBuf {
        self.host_root.local(&self.cni_conf_dir).join(CONFLIST_NAME)
    }

    /// Where the installer reaches the node's CNI config dir.
    pub fn conf_dir_local(&self) -> PathBuf {
        self.host_root.local(&self.cni_conf_dir)
    }

    /// Where the installer reaches the node's CNI bin dir.
    pub fn bin_dir_local(&self) -> PathBuf {
        self.host_root.local(&self.cni_bin_dir)
    }

    /// Where the installer reaches the kubeconfig.
    pub fn kubeconfig_local(&self) -> PathBuf {
        self.host_root.local(&self.kubeconfig)
    }

    /// The token copy (node path).
    pub fn token_file(&self) -> PathBuf {
        token_path(&self.kubeconfig)
    }

    /// Checks the plugin keys the flags set, with the default network not yet known.
    pub fn validate(&self) -> Result<(), InstallError> {
        let placeholder = self.cni_conf_dir.join("10-default.conflist");
        self.plugin.validate(&HostRefs {
            cluster_network: &placeholder,
            kubeconfig: &self.kubeconfig,
            bin_dir: &self.cni_bin_dir,
        })
    }
}
