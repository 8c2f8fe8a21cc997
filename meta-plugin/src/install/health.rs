//! The readiness record and its check, for the DaemonSet's probes.
//!
//! After every pass the running installer records its outcome in a small JSON file in its own
//! container filesystem (`--status-file`), including the exact `00-plexus.conflist` bytes it put
//! in place. `plexus install --health` (an exec probe in the same container) succeeds only when
//! the record says ready AND the node's `00-plexus.conflist` still holds those bytes AND the
//! kubeconfig exists. So readiness fails until the config is first written, while the default
//! network is missing, after someone else changed or removed the file (until the next pass
//! repairs it), and from the moment the installer starts shutting down. The record starts "not
//! ready" with every container start, and the probe needs no flags but the status file's path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::InstallError;
use super::atomic::ensure_content;

/// Where the record is kept by default (the container's own /tmp: a restarted container starts
/// without one).
pub const DEFAULT_STATUS_FILE: &str = "/tmp/plexus-install-status.json";

/// The installer's last outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub ready: bool,
    /// Why not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the installer reaches `00-plexus.conflist`.
    pub conflist: PathBuf,
    /// Its content when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The default network's config (node path) when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_network: Option<PathBuf>,
    /// Where the installer reaches the kubeconfig.
    pub kubeconfig: PathBuf,
}

impl Status {
    /// A not-ready record.
    pub fn not_ready(reason: impl Into<String>, conflist: PathBuf, kubeconfig: PathBuf) -> Self {
        Status {
            ready: false,
            reason: Some(reason.into()),
            conflist,
            content: None,
            default_network: None,
            kubeconfig,
        }
    }
}

/// Writes the record (atomically, and only when it changed).
pub fn record(status_file: &Path, status: &Status) -> Result<(), InstallError> {
    if let Some(dir) = status_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| InstallError::io("creating", dir, e))?;
    }
    let mut bytes = serde_json::to_vec_pretty(status).unwrap_or_default();
    bytes.push(b'\n');
    ensure_content(status_file, &bytes, 0o644).map(drop)
}

/// The probe: `Ok(summary)` when ready, else [`InstallError::NotReady`] with the reason.
pub fn check(status_file: &Path) -> Result<String, InstallError> {
    let not_ready = |r: String| InstallError::NotReady(r);
    let bytes = match std::fs::read(status_file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_ready(format!(
                "the installer has not recorded a status in {} yet",
                status_file.display()
            )));
        }
        Err(e) => return Err(InstallError::io("reading", status_file, e)),
    };
    let status: Status = serde_json::from_slice(&bytes).map_err(|e| {
        not_ready(format!(
            "{} is not a status record: {e}",
            status_file.display()
        ))
    })?;
    if !status.ready {
        return Err(not_ready(
            status
                .reason
                .unwrap_or_else(|| "(no reason recorded)".into()),
        ));
    }
    let expected = status.content.unwrap_or_default();
    match std::fs::read(&status.conflist) {
        Ok(current) if current == expected.as_bytes() => {}
        Ok(_) => {
            return Err(not_ready(format!(
                "{} differs from what the installer wrote (the next pass rewrites it)",
                status.conflist.display()
            )));
        }
        Err(e) => {
            return Err(not_ready(format!(
                "{}: {e} (the next pass rewrites it)",
                status.conflist.display()
            )));
        }
    }
    if !status.kubeconfig.is_file() {
        return Err(not_ready(format!(
            "the kubeconfig {} is missing",
            status.kubeconfig.display()
        )));
    }
    Ok(format!(
        "ready: {} delegates eth0 to {}",
        status.conflist.display(),
        status
            .default_network
            .as_deref()
            .unwrap_or(Path::new("?"))
            .display()
    ))
}
