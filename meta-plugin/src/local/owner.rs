//! Which sandbox a pod's network-status file belongs to.
//!
//! The file is named by pod (`<cniDir>/status/<ns>_<name>.json`), but a pod has one sandbox
//! after another (a restarted sandbox gets a new container id), and the runtime may DEL an old
//! sandbox after the new one was added. So the sandbox that writes the file first records its
//! container id beside it, in `<ns>_<name>.owner` (the status bytes stay exactly the
//! annotation's), and a DEL removes the pair only when that id is its own.
//!
//! Claiming and removing happen under one lock for the whole status directory
//! (`status/.owners.lock`, held for a few file operations), so a DEL of the old sandbox cannot
//! read the old owner and then remove the file the new sandbox just claimed. The status file
//! itself is written after the claim, outside the lock: once claimed, only its owner removes it.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::status::{STATUS_DIR, atomic_write, check_pod, status_path};
use crate::kube::{KubeError, PodRef};

/// The lock file serializing claims and removals.
const OWNERS_LOCK: &str = ".owners.lock";

/// What a DEL did with the pod's status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusRemoval {
    /// The file (and its owner record) belonged to this sandbox and are gone.
    Removed,
    /// Neither file exists (nothing was written, or it is gone already).
    Absent,
    /// Another sandbox of the pod owns the file (named here): it is left alone.
    OwnedBy(String),
}

/// `<cniDir>/status/<ns>_<name>.owner`.
pub(super) fn owner_path(cni_dir: &Path, pod: &PodRef) -> PathBuf {
    status_path(cni_dir, pod).with_extension("owner")
}

fn other(what: &str, message: String) -> KubeError {
    KubeError::Other {
        what: what.to_owned(),
        message,
    }
}

/// Takes the status directory's lock (creating the directory), held while the file lives.
fn lock(cni_dir: &Path, what: &str) -> Result<File, KubeError> {
    let dir = cni_dir.join(STATUS_DIR);
    std::fs::create_dir_all(&dir)
        .map_err(|e| other(what, format!("creating {}: {e}", dir.display())))?;
    let path = dir.join(OWNERS_LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| other(what, format!("opening {}: {e}", path.display())))?;
    file.lock()
        .map_err(|e| other(what, format!("locking {}: {e}", path.display())))?;
    Ok(file)
}

/// Records `container_id` as the owner of the pod's status file (before the ADD writes it).
pub(super) fn claim(cni_dir: &Path, pod: &PodRef, container_id: &str) -> Result<(), KubeError> {
    let what = format!("claim the network-status file of pod {pod}");
    check_pod(&what, pod)?;
    let _lock = lock(cni_dir, &what)?;
    let path = owner_path(cni_dir, pod);
    atomic_write(&cni_dir.join(STATUS_DIR), &path, container_id.as_bytes())
        .map_err(|e| other(&what, format!("writing {}: {e}", path.display())))
}

/// Removes the pod's status file and its owner record when `container_id` owns them. A status
/// file without an owner record (written before owners were recorded) is removed too, as it
/// was before. The status file goes first: a crash in between leaves only the owner record,
/// which the next claim replaces or a repeated DEL removes.
pub(super) fn remove_if_owned(
    cni_dir: &Path,
    pod: &PodRef,
    container_id: &str,
) -> Result<StatusRemoval, KubeError> {
    let what = format!("remove the network-status file of pod {pod}");
    if check_pod(&what, pod).is_err() {
        // No pod named (a DEL without K8S_POD_* args): no status file was ever named by it.
        return Ok(StatusRemoval::Absent);
    }
    let status = status_path(cni_dir, pod);
    let owner = owner_path(cni_dir, pod);
    if !status.exists() && !owner.exists() {
        return Ok(StatusRemoval::Absent);
    }
    let _lock = lock(cni_dir, &what)?;
    match std::fs::read_to_string(&owner) {
        Ok(id) if id.trim() != container_id => return Ok(StatusRemoval::OwnedBy(id.trim().into())),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(other(&what, format!("reading {}: {e}", owner.display()))),
    }
    let mut removed = false;
    for path in [&status, &owner] {
        match std::fs::remove_file(path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(other(&what, format!("removing {}: {e}", path.display()))),
        }
    }
    Ok(if removed {
        StatusRemoval::Removed
    } else {
        StatusRemoval::Absent
    })
}
