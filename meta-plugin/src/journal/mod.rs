//! The journal: what was (or is being) attached to each sandbox, under `cniDir`, so that DEL,
//! CHECK and GC never need the API server, the pod or the NAD.
//!
//! Layout: `<cniDir>/<containerID>/lock` (the per-container lock, `std::fs::File::lock`) and per
//! attachment a pending record `<index>-<ifname>.json` and, once its delegate ADD succeeded, an
//! added record `added-<index>-<ifname>.json` beside it.
//!
//! An ADD writes the pending records durably before their delegates run
//! ([`ContainerJournal::write_pending`]): each to a temp file that is fsynced and renamed, then
//! the directory fsynced once per batch. A pending record is all a DEL needs: it runs the
//! delegate's DEL, which is harmless when the ADD never ran. After each delegate's ADD the whole
//! record with its result (state `added`) goes to the added record ([`ContainerJournal::update`]),
//! a new file beside the pending one, neither flushed nor fsynced: the pending record is never
//! overwritten, so a power loss can cost the result (DEL then runs without `prevResult`, as
//! libcni allows) but never the config DEL needs. Readers take the added record when it is
//! readable and fall back to the pending one otherwise ([`Entry`]).
//!
//! When every attachment is added and network-status is written, the ADD marks the container
//! `committed` (an empty file beside the records): a later ADD of the same container tells a
//! completed ADD (an error: the runtime must DEL first) from one that was interrupted (its
//! leftovers are undone first).
//!
//! A record (both files) is removed only after its delegate DEL succeeded, in every mode. The
//! record of an attachment whose DEL failed either stays where it is or is moved to the orphan
//! area `<cniDir>/orphans/<containerID>/` ([`orphans`]), where GC and any later DEL of the same
//! container retry it; which one is `cmd::del`'s policy (`retryDeleteOnError`). The container
//! directory goes when its last record does; orphans are handled under the same container lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use plexus_delegates::cni::{CniError, CniResult, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exec::Invocation;
use crate::plan::Attachment;

/// The record format version.
pub const RECORD_VERSION: u32 = 1;
const LOCK_FILE: &str = "lock";
const COMMITTED_FILE: &str = "committed";
const TMP_PREFIX: &str = ".tmp-";
/// The prefix of an added record's file name (before the pending record's name).
const ADDED_PREFIX: &str = "added-";
/// The subdirectory of `cniDir` holding the orphan area.
pub const ORPHANS_DIR: &str = "orphans";
/// The names under `cniDir` that are not containers (the orphan area, local mode's status
/// directory and Event log): a container id equal to one is refused.
const NOT_CONTAINERS: [&str; 3] = [
    ORPHANS_DIR,
    crate::local::STATUS_DIR,
    crate::local::EVENTS_LOG,
];

mod orphans;

/// A journal failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("journal record {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "CNI_CONTAINERID: container id {id:?} is reserved ({root}/{id} is not a container's journal)"
    )]
    ReservedId { id: String, root: PathBuf },
}

impl JournalError {
    fn io(path: &Path, op: &'static str, source: std::io::Error) -> Self {
        JournalError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

impl From<JournalError> for CniError {
    fn from(e: JournalError) -> Self {
        let code = match e {
            JournalError::ReservedId { .. } => ErrorCode::InvalidEnv,
            _ => ErrorCode::Io,
        };
        CniError::new(code, e.to_string())
    }
}

/// Where an attachment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Journaled; the delegate ADD may or may not have run (a crash leaves this).
    Pending,
    /// The delegate ADD succeeded; `result` holds its result.
    Added,
}

/// One attachment's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// Position in the plan (DEL runs in reverse).
    pub index: usize,
    pub state: State,
    pub attachment: Attachment,
    pub invocation: Invocation,
    /// The delegate's final result in the delegate's version, once `Added`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The meta-plugin's device-info file of this attachment (see `crate::devinfo`), when it
    /// has a device: DEL removes it from this path, so it needs no configuration for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info_file: Option<PathBuf>,
}

impl Record {
    pub fn pending(index: usize, attachment: Attachment, invocation: Invocation) -> Self {
        Record {
            version: RECORD_VERSION,
            index,
            state: State::Pending,
            attachment,
            invocation,
            result: None,
            device_info_file: None,
        }
    }

    /// The file name of this record.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.index, self.attachment.ifname)
    }

    /// The journaled result, parsed.
    pub fn cni_result(&self) -> Result<Option<CniResult>, CniError> {
        self.result.as_ref().map(CniResult::from_json).transpose()
    }
}

/// The journal root (`cniDir`).
#[derive(Debug, Clone)]
pub struct Journal {
    root: PathBuf,
}

impl Journal {
    pub fn new(cni_dir: impl Into<PathBuf>) -> Self {
        Journal {
            root: cni_dir.into(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one container.
    pub fn container_dir(&self, container_id: &str) -> PathBuf {
        self.root.join(container_id)
    }

    /// Whether anything is journaled for the container.
    pub fn exists(&self, container_id: &str) -> bool {
        self.container_dir(container_id).join(LOCK_FILE).exists()
    }

    /// Takes the container's lock, creating its directory (blocking until other `plexus`
    /// processes working on the same container are done).
    pub fn lock(&self, container_id: &str) -> Result<ContainerJournal, JournalError> {
        if NOT_CONTAINERS.contains(&container_id) {
            return Err(JournalError::ReservedId {
                id: container_id.to_owned(),
                root: self.root.clone(),
            });
        }
        let dir = self.container_dir(container_id);
        let lock_path = dir.join(LOCK_FILE);
        loop {
            fs::create_dir_all(&dir).map_err(|e| JournalError::io(&dir, "create directory", e))?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(|e| JournalError::io(&lock_path, "open lock file", e))?;
            file.lock()
                .map_err(|e| JournalError::io(&lock_path, "lock", e))?;
            // The previous holder may have removed the (then empty) directory: retry on the new
            // lock file so that two holders never exist.
            let held = file
                .metadata()
                .map_err(|e| JournalError::io(&lock_path, "stat lock file", e))?;
            match fs::metadata(&lock_path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {
                    return Ok(ContainerJournal {
                        id: container_id.to_owned(),
                        dir,
                        orphan_dir: self.orphan_dir(container_id),
                        _lock: file,
                    });
                }
                _ => continue,
            }
        }
    }

    /// The container ids that have a journal directory.
    pub fn containers(&self) -> Result<Vec<String>, JournalError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(JournalError::io(&self.root, "read directory", e)),
        };
        let mut ids = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join(LOCK_FILE).is_file()
                && let Some(name) = path.file_name().and_then(|n| n.to_str())
            {
                ids.push(name.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// One read record: the record (its added record where readable, else its pending one), or why
/// it cannot be used.
#[derive(Debug)]
pub struct Entry {
    /// The pending record's path (which names the record, also when only the added one exists).
    pub path: PathBuf,
    /// Index from the file name (also known for corrupt records).
    pub index: usize,
    pub record: Result<Record, JournalError>,
}

/// One container's journal (and its orphans), locked for as long as this value lives.
#[derive(Debug)]
pub struct ContainerJournal {
    id: String,
    dir: PathBuf,
    /// `<cniDir>/orphans/<containerID>` (may not exist).
    orphan_dir: PathBuf,
    _lock: File,
}

/// Whether a record's temp file is flushed before its rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    None,
    Data,
}

impl ContainerJournal {
    pub fn container_id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes (creates or replaces) one record durably: temp file, fsync, rename, fsync of the
    /// directory.
    pub fn write(&self, record: &Record) -> Result<PathBuf, JournalError> {
        let path = self.write_file(record, Flush::Data)?;
        self.sync_dir()?;
        Ok(path)
    }

    /// Writes the pending records of a whole plan durably before its first side effect: each
    /// to a temp file that is fsynced and renamed, then one fsync of the directory for all the
    /// renames. Returns their paths, in order. On failure, the records written so far are
    /// removed again (no delegate ran for them) and the error names the file.
    pub fn write_pending(&self, records: &[Record]) -> Result<Vec<PathBuf>, JournalError> {
        let mut paths = Vec::with_capacity(records.len());
        let written = records
            .iter()
            .try_for_each(|record| {
                paths.push(self.write_file(record, Flush::Data)?);
                Ok(())
            })
            .and_then(|()| self.sync_dir());
        match written {
            Ok(()) => Ok(paths),
            Err(e) => {
                for path in &paths {
                    let _ = fs::remove_file(path);
                }
                Err(e)
            }
        }
    }

    /// Writes the added record of a record made durable by [`Self::write_pending`] (its state
    /// `added` and the result) beside the pending one: a temp file renamed, not flushed (see the
    /// module documentation). Returns the pending record's path, which names the record.
    pub fn update(&self, record: &Record) -> Result<PathBuf, JournalError> {
        let added = self
            .dir
            .join(format!("{ADDED_PREFIX}{}", record.file_name()));
        write_record(&self.dir, &added, record, Flush::None)?;
        Ok(self.dir.join(record.file_name()))
    }

    /// The record to a temp file (flushed as `flush` says), renamed to its pending name.
    fn write_file(&self, record: &Record, flush: Flush) -> Result<PathBuf, JournalError> {
        let path = self.dir.join(record.file_name());
        write_record(&self.dir, &path, record, flush)?;
        Ok(path)
    }

    fn sync_dir(&self) -> Result<(), JournalError> {
        sync_dir(&self.dir)
    }

    /// Every record file, by index (ascending). Corrupt ones are returned as errors naming the
    /// file, so callers can go on with the others.
    pub fn read_all(&self) -> Result<Vec<Entry>, JournalError> {
        read_entries(&self.dir)
    }

    /// Marks the ADD complete. Not fsynced: the marker only ever tells a later ADD that the
    /// earlier one finished; losing it in a power failure makes that ADD undo and redo the
    /// attachments (safe), and a rebooted host has no sandbox left to attach to anyway.
    pub fn mark_committed(&self) -> Result<(), JournalError> {
        let path = self.dir.join(COMMITTED_FILE);
        File::create(&path)
            .map(drop)
            .map_err(|e| JournalError::io(&path, "create", e))
    }

    /// Whether an ADD of this container completed ([`Self::mark_committed`]).
    pub fn is_committed(&self) -> bool {
        self.dir.join(COMMITTED_FILE).exists()
    }

    /// Withdraws the completion mark (a DEL has started changing the attachments).
    pub fn uncommit(&self) -> Result<(), JournalError> {
        let path = self.dir.join(COMMITTED_FILE);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(JournalError::io(&path, "remove", e)),
        }
    }

    /// Removes one record, its added record first (after its delegate DEL succeeded). `path`
    /// is the pending record's.
    pub fn remove(&self, path: &Path) -> Result<(), JournalError> {
        if remove_record_files(path)? {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Removes the container directory (leftover temp files, the completion mark and the lock
    /// file too) when no record is left; returns whether it was removed.
    pub fn remove_if_empty(&self) -> Result<bool, JournalError> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| JournalError::io(&self.dir, "read directory", e))?;
        let mut leftovers = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == LOCK_FILE || name == COMMITTED_FILE || name.starts_with(TMP_PREFIX) {
                leftovers.push(entry.path());
            } else {
                return Ok(false);
            }
        }
        for p in leftovers {
            fs::remove_file(&p).map_err(|e| JournalError::io(&p, "remove", e))?;
        }
        fs::remove_dir(&self.dir)
            .map_err(|e| JournalError::io(&self.dir, "remove directory", e))?;
        Ok(true)
    }
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io(dir, "fsync directory", e))
}

/// The added record beside the pending record at `path`.
fn added_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{ADDED_PREFIX}{name}"))
}

/// Removes the added record, then the pending record at `path`; whether there was any.
fn remove_record_files(path: &Path) -> Result<bool, JournalError> {
    let mut removed = false;
    for file in [added_path(path), path.to_path_buf()] {
        match fs::remove_file(&file) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(JournalError::io(&file, "remove", e)),
        }
    }
    Ok(removed)
}

/// `record` to a temp file in `dir` (flushed as `flush` says), renamed to `path`.
fn write_record(
    dir: &Path,
    path: &Path,
    record: &Record,
    flush: Flush,
) -> Result<(), JournalError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| JournalError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot encode: {e}"),
    })?;
    {
        let mut f = File::create(&tmp).map_err(|e| JournalError::io(&tmp, "create", e))?;
        f.write_all(&bytes)
            .map_err(|e| JournalError::io(&tmp, "write", e))?;
        if flush == Flush::Data {
            f.sync_all()
                .map_err(|e| JournalError::io(&tmp, "fsync", e))?;
        }
    }
    fs::rename(&tmp, path).map_err(|e| JournalError::io(path, "rename", e))
}

/// Every record of `dir`, by index (ascending): the added record where there is a readable
/// one, else the pending one; corrupt ones as errors naming the file.
fn read_entries(dir: &Path) -> Result<Vec<Entry>, JournalError> {
    let mut out = Vec::new();
    let mut added = std::collections::BTreeSet::new();
    let mut pending = std::collections::BTreeSet::new();
    let entries = fs::read_dir(dir).map_err(|e| JournalError::io(dir, "read directory", e))?;
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        match name.strip_prefix(ADDED_PREFIX) {
            Some(pending_name) => added.insert(pending_name.to_owned()),
            None => pending.insert(name),
        };
    }
    // An added record without its pending one is still a record (an orphan moved whole).
    for name in pending.union(&added) {
        let path = dir.join(name);
        let Some(index) = name
            .split_once('-')
            .and_then(|(i, _)| i.parse::<usize>().ok())
        else {
            out.push(Entry {
                index: usize::MAX,
                record: Err(JournalError::Corrupt {
                    path: path.clone(),
                    reason: "file name is not <index>-<ifname>.json".into(),
                }),
                path,
            });
            continue;
        };
        let record = if added.contains(name) {
            let added_file = added_path(&path);
            match read_record(&added_file) {
                Ok(record) => Ok(record),
                Err(e) if pending.contains(name) => {
                    tracing::warn!("{e}: using the pending record");
                    read_record(&path)
                }
                Err(e) => Err(e),
            }
        } else {
            read_record(&path)
        };
        out.push(Entry {
            path,
            index,
            record,
        });
    }
    out.sort_by_key(|e| e.index);
    Ok(out)
}

fn read_record(path: &Path) -> Result<Record, JournalError> {
    let bytes = fs::read(path).map_err(|e| JournalError::io(path, "read", e))?;
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if record.version != RECORD_VERSION {
        return Err(JournalError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "record version {} (this plexus reads {RECORD_VERSION})",
                record.version
            ),
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests;
