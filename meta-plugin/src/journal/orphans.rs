//! The orphan area, `<cniDir>/orphans/<containerID>/<index>-<ifname>.json`: records of
//! attachments whose delegate DEL failed and that no longer belong to the container's journal
//! (the runtime's DEL must be able to finish, see `cmd::del`). They keep the record format;
//! GC and any later DEL of the same container retry their delegate DEL, and a record goes only
//! when that succeeded. They are read and changed under the container's journal lock.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    ContainerJournal, Entry, Journal, JournalError, ORPHANS_DIR, added_path, read_entries,
    remove_record_files, sync_dir,
};

impl Journal {
    /// The orphan area.
    pub fn orphans_root(&self) -> PathBuf {
        self.root().join(ORPHANS_DIR)
    }

    /// The orphan directory of one container.
    pub fn orphan_dir(&self, container_id: &str) -> PathBuf {
        self.orphans_root().join(container_id)
    }

    /// Whether the container has orphaned records.
    pub fn has_orphans(&self, container_id: &str) -> bool {
        self.orphan_dir(container_id).is_dir()
    }

    /// The container ids that have orphaned records.
    pub fn orphaned_containers(&self) -> Result<Vec<String>, JournalError> {
        let root = self.orphans_root();
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(JournalError::io(&root, "read directory", e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl ContainerJournal {
    /// The container's orphan directory (may not exist).
    pub fn orphan_dir(&self) -> &Path {
        &self.orphan_dir
    }

    /// Moves the record at `path` (a pending record of this container's journal, and its added
    /// record when it has one) to the orphan area, under the same names: renames, then the
    /// orphan directory and the journal directory fsynced, so the record is never lost (a crash
    /// between the two renames leaves it in both places; the second DEL that causes is
    /// harmless). A name already taken there (an earlier orphan of the same attachment) gets a
    /// `-<n>` suffix: no orphan is overwritten. Returns the orphan's (pending record's) path.
    pub fn orphan(&self, path: &Path) -> Result<PathBuf, JournalError> {
        let created = !self.orphan_dir.is_dir();
        fs::create_dir_all(&self.orphan_dir)
            .map_err(|e| JournalError::io(&self.orphan_dir, "create directory", e))?;
        if created && let Some(parent) = self.orphan_dir.parent() {
            // The new directory entries themselves must survive a crash.
            sync_dir(parent)?;
            if let Some(root) = parent.parent() {
                sync_dir(root)?;
            }
        }
        let target = self.free_orphan_name(path)?;
        for (from, to) in [
            (added_path(path), added_path(&target)),
            (path.to_path_buf(), target.clone()),
        ] {
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(JournalError::io(&from, "move to the orphan area", e));
                }
            }
        }
        sync_dir(&self.orphan_dir)?;
        self.sync_dir()?;
        Ok(target)
    }

    /// `<orphan dir>/<file name>`, or `<stem>-<n>.json` with the first free `n`.
    fn free_orphan_name(&self, path: &Path) -> Result<PathBuf, JournalError> {
        let name =
            path.file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| JournalError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "not a record file name".into(),
                })?;
        let free = |p: &Path| !p.exists() && !added_path(p).exists();
        let first = self.orphan_dir.join(name);
        if free(&first) {
            return Ok(first);
        }
        let stem = name.strip_suffix(".json").unwrap_or(name);
        let mut n = 1u32;
        loop {
            let candidate = self.orphan_dir.join(format!("{stem}-{n}.json"));
            if free(&candidate) {
                return Ok(candidate);
            }
            n += 1;
        }
    }

    /// The container's orphaned records, by index; corrupt ones as errors naming the file.
    /// Empty when there are none.
    pub fn read_orphans(&self) -> Result<Vec<Entry>, JournalError> {
        if !self.orphan_dir.is_dir() {
            return Ok(Vec::new());
        }
        read_entries(&self.orphan_dir)
    }

    /// Removes an orphaned record (after its delegate DEL succeeded), and the container's
    /// orphan directory once it holds no file. The orphan area itself stays (like `status/`):
    /// removing it could race with another container's first orphan.
    pub fn remove_orphan(&self, path: &Path) -> Result<(), JournalError> {
        if remove_record_files(path)? {
            sync_dir(&self.orphan_dir)?;
        }
        let empty = fs::read_dir(&self.orphan_dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if empty {
            fs::remove_dir(&self.orphan_dir)
                .map_err(|e| JournalError::io(&self.orphan_dir, "remove directory", e))?;
        }
        Ok(())
    }
}
