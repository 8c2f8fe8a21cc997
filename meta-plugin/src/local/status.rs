//! Local mode's outputs: network-status files and the Event log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::Timestamp;
use plexus_crds::{NetworkStatus, write_network_status};

use crate::kube::{KubeError, PodEvent, PodRef};

/// Subdirectory of `cniDir` holding one network-status file per pod.
pub(crate) const STATUS_DIR: &str = "status";
/// File in `cniDir` the Events are appended to.
pub(crate) const EVENTS_LOG: &str = "events.log";

pub(super) fn status_path(cni_dir: &Path, pod: &PodRef) -> PathBuf {
    cni_dir
        .join(STATUS_DIR)
        .join(format!("{}_{}.json", pod.namespace, pod.name))
}

/// Namespaces and names are DNS labels/subdomains; anything that could leave the directory is
/// refused.
pub(super) fn check_pod(what: &str, pod: &PodRef) -> Result<(), KubeError> {
    for (field, v) in [("namespace", &pod.namespace), ("name", &pod.name)] {
        if v.is_empty() || v.contains('/') || v.contains('\0') || v.starts_with('.') {
            return Err(KubeError::Other {
                what: what.to_owned(),
                message: format!("pod {field} {v:?} cannot name a status file"),
            });
        }
    }
    Ok(())
}

/// Writes the network-status annotation value (exactly the bytes the API server would get) to
/// `<cniDir>/status/<namespace>_<name>.json` ([`atomic_write`]: temp file, rename).
pub(super) fn write_status(
    cni_dir: &Path,
    pod: &PodRef,
    statuses: &[NetworkStatus],
) -> Result<(), KubeError> {
    let what = format!("write network-status of pod {pod}");
    check_pod(&what, pod)?;
    let other = |message: String| KubeError::Other {
        what: what.clone(),
        message,
    };
    let body = write_network_status(statuses).map_err(|e| other(e.to_string()))?;
    let path = status_path(cni_dir, pod);
    let dir = cni_dir.join(STATUS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| other(format!("creating {}: {e}", dir.display())))?;
    atomic_write(&dir, &path, body.as_bytes())
        .map_err(|e| other(format!("writing {}: {e}", path.display())))
}

/// Replaces `path` (in `dir`) by `bytes` through a temp file and a rename, so a reader (or a
/// process killed halfway) never sees a partial file.
///
/// Nothing is fsynced: the status file and its owner record describe a live sandbox, and a
/// power loss, the only crash the page cache does not survive, ends every sandbox of the node.
/// What it can leave (an old, missing or empty file) describes a sandbox that no longer
/// exists: the pod's next sandbox claims and rewrites both, and its DEL removes them. An empty
/// owner record keeps a stale status file in place until then, which is only a display
/// matter: nothing reads these files to decide an attachment. The durable state that a DEL
/// needs is the journal's.
pub(super) fn atomic_write(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("status");
    let tmp = dir.join(format!(
        ".{file_name}.tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        File::create(&tmp)?.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the temp file must not linger.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Appends one line per Event to `<cniDir>/events.log`:
/// `<RFC 3339 time> <Type> <Reason> <namespace>/<name>: <message>` (newlines in the message
/// escaped). One `write` on an `O_APPEND` file, so concurrent plugins do not interleave lines.
pub(super) fn append_event(cni_dir: &Path, event: &PodEvent) -> Result<(), KubeError> {
    let path = cni_dir.join(EVENTS_LOG);
    let other = |message: String| KubeError::Other {
        what: format!("record event {} for pod {}", event.reason, event.pod),
        message,
    };
    std::fs::create_dir_all(cni_dir)
        .map_err(|e| other(format!("creating {}: {e}", cni_dir.display())))?;
    let line = format!(
        "{} {} {} {}: {}\n",
        Timestamp::now(),
        event.event_type.as_str(),
        event.reason,
        event.pod,
        event.message.replace('\\', "\\\\").replace('\n', "\\n")
    );
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| other(format!("appending to {}: {e}", path.display())))
}
