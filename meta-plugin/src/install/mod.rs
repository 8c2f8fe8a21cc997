//! `plexus install`: the entrypoint of the node DaemonSet's container.
//!
//! It puts Plexus on a node the way the Multus thin entrypoint does, and keeps it there:
//!
//! 1. [`binaries`]: copies `plexus` and the standalone plugins into the node's CNI bin dir, each
//!    through a temp file that is fsynced and renamed ([`atomic`]), so a running copy is never
//!    written to ("text file busy") and the runtime never sees half a binary.
//! 2. [`kubeconfig`]: gives the plugin credentials on the node: the pod's service-account token
//!    copied next to a kubeconfig (mode 0600) that references it with `tokenFile`.
//! 3. [`default_network`] + [`conflist`]: finds the cluster's default network config (the file the
//!    runtime would use if Plexus were not there) and writes `00-plexus.conflist`, which delegates
//!    `eth0` to it by path.
//! 4. [`reconcile`] repeats 2 and 3 every poll interval ([`run`]), so a rotated token, a rewritten
//!    or replaced default config, or a removed `00-plexus.conflist` is corrected within one
//!    interval; [`health`] records the outcome for the DaemonSet's readiness probe.
//! 5. [`signals`]: on SIGTERM (or SIGINT) it removes `00-plexus.conflist` (pods then get the
//!    default network only) unless told to leave it, and exits 0.
//!
//! Paths written into configs are the node's; [`paths::HostRoot`] maps them to where the
//! container sees them. [`cli`] is the flag surface; [`options::InstallConfig`] what it becomes.

pub mod atomic;
pub mod binaries;
pub mod cli;
pub mod conflist;
pub mod default_network;
pub mod health;
pub mod kubeconfig;
pub mod logging;
pub mod options;
pub mod paths;
pub mod reconcile;
pub mod run;
pub mod signals;

use std::path::PathBuf;

pub use cli::{InstallArgs, main};
pub use options::InstallConfig;
pub use reconcile::{Installer, Readiness};
pub use run::run;

/// The file Plexus writes in the node's CNI config dir. `00-` sorts it before the cluster's own
/// config (`10-flannel.conflist`, `10-calico.conflist`, ...), so the runtime picks it.
pub const CONFLIST_NAME: &str = "00-plexus.conflist";

/// Why installing failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A flag has a value that cannot be used.
    #[error("--{flag} {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// The flags produce a `00-plexus.conflist` the plugin would reject. The cause is part of
    /// the message and deliberately not a `source`, so `{:#}` does not print it twice.
    #[error("the plexus config these flags produce is invalid: {0}")]
    PluginSettings(crate::config::ConfigError),
    /// A filesystem step failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The meta-plugin binary is neither in the image nor already on the node.
    #[error(
        "binary {name:?} is neither in the source dir {} nor in the CNI bin dir {}: the runtime could not run the plugin 00-plexus.conflist names",
        source_dir.display(),
        bin_dir.display()
    )]
    MissingPluginBinary {
        name: String,
        source_dir: PathBuf,
        bin_dir: PathBuf,
    },
    /// The service account's token or CA cannot be used.
    #[error("service account {}: {reason}", dir.display())]
    ServiceAccount { dir: PathBuf, reason: String },
    /// The default network's config lacks something `00-plexus.conflist` must copy.
    #[error("default network config {}: {reason}", path.display())]
    DefaultNetwork { path: PathBuf, reason: String },
    /// Signal handlers or the async runtime could not be set up.
    #[error("{what}: {source}")]
    Runtime {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// `--health`: the installer has not (or no longer) put a usable config in place.
    #[error("not ready: {0}")]
    NotReady(String),
}

impl From<crate::config::ConfigError> for InstallError {
    fn from(e: crate::config::ConfigError) -> Self {
        InstallError::PluginSettings(e)
    }
}

impl InstallError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        InstallError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
