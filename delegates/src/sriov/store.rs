//! Where [`VfRecord`]s live: `<dir>/<pci>.json`, each guarded by `<dir>/<pci>.lock` (an
//! advisory `flock` held for the length of one ADD, DEL, CHECK or GC step on that VF). Once a
//! VF is put back from its record, the record gives way to a [`Released`] tombstone,
//! `<dir>/<pci>.released`, until the next ADD of the VF saves a record again: at most one of
//! the two per VF (both only for a moment, or after a crash in between, when the record wins).
//!
//! Records and tombstones are written to a temp file, fsynced, renamed over the old one, and
//! the directory is fsynced, so a crash leaves either the old or the new file. A lock file is
//! removed when its VF has no record any more (a tombstone does not hold the VF); a process that
//! was waiting on it notices (its file is no longer the one at the path) and takes the lock
//! again on the new file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::record::{RECORD_VERSION, VfRecord};
use super::released::{RELEASED_VERSION, Released};
use super::sysfs::PciAddress;
use crate::cni::CniError;

/// A state directory failure, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a plexus-sriov record: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
}

impl StoreError {
    fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<StoreError> for CniError {
    fn from(e: StoreError) -> Self {
        CniError::io(format!("sriov state: {e}"))
    }
}

/// The state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    dir: PathBuf,
}

/// The held lock of one VF; released when dropped (the lock file goes too when the VF has no
/// record).
#[derive(Debug)]
pub struct VfLock {
    file: File,
    lock_path: PathBuf,
    record_path: PathBuf,
    pci: PciAddress,
}

impl VfLock {
    pub fn pci(&self) -> PciAddress {
        self.pci
    }
}

impl Drop for VfLock {
    fn drop(&mut self) {
        // still holding the flock, so nobody can be creating a record right now
        if self.record_path.symlink_metadata().is_err()
            && let Err(e) = fs::remove_file(&self.lock_path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.lock_path.display(), "cannot remove lock file: {e}");
        }
        if let Err(e) = self.file.unlock() {
            tracing::warn!(path = %self.lock_path.display(), "cannot unlock: {e}");
        }
    }
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn record_path(&self, pci: &PciAddress) -> PathBuf {
        self.dir.join(format!("{pci}.json"))
    }

    /// Where the VF's [`Released`] tombstone lives.
    pub fn released_path(&self, pci: &PciAddress) -> PathBuf {
        self.dir.join(format!("{pci}.released"))
    }

    fn lock_path(&self, pci: &PciAddress) -> PathBuf {
        self.dir.join(format!("{pci}.lock"))
    }

    fn ensure_dir(&self) -> Result<(), StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| StoreError::io(&self.dir, e))
    }

    /// Take the VF's lock, waiting for another holder to finish.
    pub fn lock(&self, pci: &PciAddress) -> Result<VfLock, StoreError> {
        self.ensure_dir()?;
        let lock_path = self.lock_path(pci);
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&lock_path)
                .map_err(|e| StoreError::io(&lock_path, e))?;
            file.lock().map_err(|e| StoreError::io(&lock_path, e))?;
            let held = file.metadata().map_err(|e| StoreError::io(&lock_path, e))?;
            // the previous holder may have removed the file while we waited: lock the new one
            match fs::metadata(&lock_path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(VfLock {
                        file,
                        lock_path,
                        record_path: self.record_path(pci),
                        pci: *pci,
                    });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(&lock_path, e)),
            }
        }
    }

    /// The VF's record, read under its lock.
    pub fn load(&self, lock: &VfLock) -> Result<Option<VfRecord>, StoreError> {
        read_record(&lock.record_path)
    }

    /// Write the record durably (temp file, fsync, rename, fsync of the directory). The VF is
    /// taken again: a tombstone of an earlier holder goes.
    pub fn save(&self, lock: &VfLock, record: &VfRecord) -> Result<(), StoreError> {
        self.write_durably(&lock.record_path, &format!("{}.json", lock.pci), record)?;
        remove_if_present(&self.released_path(&lock.pci))?;
        self.sync_dir()
    }

    /// The VF was put back from `released`'s record: replace the record with the tombstone,
    /// durably. The tombstone is written first, so a crash in between leaves the record, and a
    /// repeated DEL restores from it again.
    pub fn release(&self, lock: &VfLock, released: &Released) -> Result<(), StoreError> {
        self.write_durably(
            &self.released_path(&lock.pci),
            &format!("{}.released", lock.pci),
            released,
        )?;
        remove_if_present(&lock.record_path)?;
        self.sync_dir()
    }

    /// The VF's tombstone, read under its lock; `None` when there is none or it cannot be
    /// read (logged: without it, DEL treats the VF as a lost record, as before tombstones).
    pub fn load_released(&self, lock: &VfLock) -> Option<Released> {
        let path = self.released_path(&lock.pci);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot read tombstone: {e}");
                return None;
            }
        };
        match serde_json::from_slice::<Released>(&bytes) {
            Ok(r) if r.version == RELEASED_VERSION && r.pci == lock.pci => Some(r),
            Ok(r) => {
                tracing::warn!(
                    path = %path.display(),
                    "ignoring tombstone of version {} for VF {}", r.version, r.pci
                );
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable tombstone: {e}");
                None
            }
        }
    }

    /// Write `value` as JSON at `path` via a temp file (`name` makes it unique per VF and
    /// kind); the caller fsyncs the directory.
    fn write_durably(
        &self,
        path: &Path,
        name: &str,
        value: &impl serde::Serialize,
    ) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io(path, e));
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(&self.dir, e))
    }

    /// Every record in the directory, read without locks (for finding one by owner; re-read
    /// it under its lock before acting). Unreadable ones are logged and skipped.
    pub fn scan(&self) -> Result<Vec<VfRecord>, StoreError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem.starts_with('.') || stem.parse::<PciAddress>().is_err() {
                continue;
            }
            match read_record(&entry.path()) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping unreadable record: {e}"),
            }
        }
        out.sort_by_key(|r| r.pci);
        Ok(out)
    }
}

/// Remove `path`; a missing file is fine.
fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

fn read_record(path: &Path) -> Result<Option<VfRecord>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let record: VfRecord = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if record.version != RECORD_VERSION {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            message: format!(
                "record version {} (this plexus-sriov reads version {RECORD_VERSION})",
                record.version
            ),
        });
    }
    Ok(Some(record))
}
