//! Replacing a file so that a reader sees the old content or the new, never a mix.
//!
//! The new content goes to a temp file in the destination's directory (a rename is atomic only
//! within one filesystem), is fsynced, gets its final mode, and is renamed over the destination;
//! then the directory is fsynced so the rename survives a crash. A running executable is never
//! opened for writing, so replacing one cannot fail with ETXTBSY ("text file busy"): the running
//! process keeps the old inode.
//!
//! Temp names are `.<name>.<pid>-<n>.tmp`: hidden, and ending in `.tmp`, so neither the runtime
//! (which reads `.conf`/`.conflist`/`.json`) nor a plugin lookup by name ever picks one up.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::InstallError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn file_name(dest: &Path) -> Result<&str, InstallError> {
    dest.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        InstallError::io(
            "replacing",
            dest,
            io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 file name"),
        )
    })
}

fn parent(dest: &Path) -> &Path {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_path(dest: &Path, name: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    parent(dest).join(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Replaces `dest` with what `fill` writes, with permission bits `mode`.
fn replace_with(
    dest: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), InstallError> {
    let name = file_name(dest)?;
    let tmp = temp_path(dest, name);
    let result = (|| {
        // Created 0600: nothing can read a secret before its final mode is set.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| InstallError::io("creating", &tmp, e))?;
        fill(&mut file).map_err(|e| InstallError::io("writing", &tmp, e))?;
        file.sync_all()
            .map_err(|e| InstallError::io("fsyncing", &tmp, e))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| InstallError::io("setting the mode of", &tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, dest).map_err(|e| InstallError::io("renaming over", dest, e))?;
        sync_dir(parent(dest))
    })();
    if result.is_err() {
        // Nothing left behind; the destination is untouched.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `dest` atomically with permission bits `mode`.
pub fn write_atomic(dest: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    replace_with(dest, mode, |f| f.write_all(bytes))
}

/// Copies `src` to `dest` atomically with permission bits `mode`.
pub fn copy_atomic(src: &Path, dest: &Path, mode: u32) -> Result<(), InstallError> {
    let mut input = File::open(src).map_err(|e| InstallError::io("opening", src, e))?;
    replace_with(dest, mode, |f| io::copy(&mut input, f).map(drop))
}

/// Makes `dest` hold exactly `bytes` with permission bits `mode`, replacing it atomically only
/// when it does not already; returns whether it was replaced.
pub fn ensure_content(dest: &Path, bytes: &[u8], mode: u32) -> Result<bool, InstallError> {
    match std::fs::read(dest) {
        Ok(current) if current == bytes => {
            let meta = std::fs::metadata(dest).map_err(|e| InstallError::io("reading", dest, e))?;
            if meta.permissions().mode() & 0o7777 == mode {
                return Ok(false);
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(InstallError::io("reading", dest, e)),
    }
    write_atomic(dest, bytes, mode)?;
    Ok(true)
}

/// Removes `path` (and makes the removal durable); `Ok(false)` when it did not exist.
pub fn remove_durably(path: &Path) -> Result<bool, InstallError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            sync_dir(parent(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(InstallError::io("removing", path, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| InstallError::io("fsyncing directory", dir, e))
}

/// Removes the temp files an earlier, killed installer left for `name` in `dir`; returns them.
pub fn remove_stale_temps(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        if file.starts_with(&prefix)
            && file.ends_with(".tmp")
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replaces_content_and_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.conflist");
        write_atomic(&dest, b"one", 0o644).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");
        assert_eq!(mode(&dest), 0o644);
        write_atomic(&dest, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(mode(&dest), 0o600);
        // no temp file is left
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["f.conflist"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("bin");
        write_atomic(&dest, b"old", 0o755).unwrap();
        let e = copy_atomic(&dir.path().join("missing"), &dest, 0o755).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        // renaming onto a directory fails after the temp file was written
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), b"").unwrap();
        let e = write_atomic(&sub, b"new", 0o644).unwrap_err();
        assert!(e.to_string().starts_with("renaming over"), "{e}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["bin", "sub"]);
    }

    #[test]
    fn ensure_content_writes_only_differences() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("k");
        assert!(ensure_content(&dest, b"a", 0o600).unwrap());
        assert!(!ensure_content(&dest, b"a", 0o600).unwrap());
        assert!(ensure_content(&dest, b"a", 0o644).unwrap());
        assert_eq!(mode(&dest), 0o644);
        assert!(ensure_content(&dest, b"b", 0o644).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"b");
    }

    #[test]
    fn stale_temps_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            ".plexus.12-0.tmp",
            ".plexus-sriov.3-1.tmp",
            "plexus",
            ".plexus.keep",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let removed = remove_stale_temps(dir.path(), "plexus");
        assert_eq!(removed, vec![dir.path().join(".plexus.12-0.tmp")]);
        assert!(dir.path().join(".plexus-sriov.3-1.tmp").exists());
        assert!(dir.path().join(".plexus.keep").exists());
        assert!(remove_durably(&dir.path().join("plexus")).unwrap());
        assert!(!remove_durably(&dir.path().join("plexus")).unwrap());
    }
}
