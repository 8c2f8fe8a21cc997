//! Copying the plugin binaries from the image into the node's CNI bin dir.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::InstallError;
use super::atomic::{copy_atomic, remove_stale_temps};

/// What `--binaries` defaults to: the meta-plugin and the standalone built-in plugins.
pub const DEFAULT_BINARIES: [&str; 4] =
    ["plexus", "plexus-macvlan", "plexus-ipvlan", "plexus-sriov"];

/// Executables are installed `rwxr-xr-x`, as the reference plugins are.
pub const BINARY_MODE: u32 = 0o755;

/// What happened to one binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOutcome {
    /// Copied (new, or different from the node's copy).
    Installed,
    /// The node already has this exact content with mode 0755.
    UpToDate,
    /// Not in the source dir (this image does not ship it): skipped.
    NotInSource,
}

/// Checks a `--binaries` entry: a plain file name.
pub fn check_binary_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err("must be a plain file name (no '/', not empty, not . or ..)".into());
    }
    Ok(())
}

/// Copies each of `names` that exists in `source_dir` to `bin_dir` (atomically, 0755); a name
/// missing from `source_dir` is skipped. Returns the outcome per name, in order.
pub fn install_binaries(
    source_dir: &Path,
    bin_dir: &Path,
    names: &[String],
) -> Result<Vec<(String, BinaryOutcome)>, InstallError> {
    std::fs::create_dir_all(bin_dir).map_err(|e| InstallError::io("creating", bin_dir, e))?;
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        for stale in remove_stale_temps(bin_dir, name) {
            tracing::info!(path = %stale.display(), "removed a temp file an earlier run left");
        }
        let src = source_dir.join(name);
        let dest = bin_dir.join(name);
        let outcome = match std::fs::metadata(&src) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => BinaryOutcome::NotInSource,
            Err(e) => return Err(InstallError::io("reading", &src, e)),
            Ok(_) if is_up_to_date(&src, &dest)? => BinaryOutcome::UpToDate,
            Ok(_) => {
                copy_atomic(&src, &dest, BINARY_MODE)?;
                BinaryOutcome::Installed
            }
        };
        match outcome {
            BinaryOutcome::Installed => tracing::info!(
                binary = %name, from = %src.display(), to = %dest.display(),
                "installed binary (temp file + rename)"
            ),
            BinaryOutcome::UpToDate => tracing::info!(
                binary = %name, path = %dest.display(), "binary already up to date"
            ),
            BinaryOutcome::NotInSource => tracing::warn!(
                binary = %name, source_dir = %source_dir.display(),
                "binary is not in the source dir: skipped"
            ),
        }
        outcomes.push((name.clone(), outcome));
    }
    Ok(outcomes)
}

/// Whether `dest` has `src`'s exact content and mode 0755.
fn is_up_to_date(src: &Path, dest: &Path) -> Result<bool, InstallError> {
    let dest_meta = match std::fs::metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(InstallError::io("reading", dest, e)),
    };
    let src_meta = std::fs::metadata(src).map_err(|e| InstallError::io("reading", src, e))?;
    if !dest_meta.is_file()
        || dest_meta.len() != src_meta.len()
        || dest_meta.permissions().mode() & 0o7777 != BINARY_MODE
    {
        return Ok(false);
    }
    same_content(src, dest, src_meta.len())
}

/// Compares two files of `len` bytes in chunks (binaries are tens of MB; the container's memory
/// limit should not have to fit two of them).
fn same_content(a: &Path, b: &Path, len: u64) -> Result<bool, InstallError> {
    const CHUNK: usize = 64 * 1024;
    let mut fa = File::open(a).map_err(|e| InstallError::io("opening", a, e))?;
    let mut fb = File::open(b).map_err(|e| InstallError::io("opening", b, e))?;
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        fa.read_exact(&mut ba[..n])
            .map_err(|e| InstallError::io("reading", a, e))?;
        // The node's copy may have shrunk since its size was read: then it differs.
        if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        assert!(check_binary_name("plexus-sriov").is_ok());
        for bad in ["", ".", "..", "../plexus", "a/b"] {
            assert!(check_binary_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copies_what_exists_skips_what_does_not_and_recopies_only_changes() {
        let src = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("plexus"), b"meta v1").unwrap();
        std::fs::write(src.path().join("plexus-macvlan"), b"macvlan v1").unwrap();
        let names: Vec<String> = DEFAULT_BINARIES.iter().map(|s| s.to_string()).collect();
        let out = install_binaries(src.path(), bin.path(), &names).unwrap();
        assert_eq!(
            out.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
            vec![
                BinaryOutcome::Installed,
                BinaryOutcome::Installed,
                BinaryOutcome::NotInSource,
                BinaryOutcome::NotInSource
            ]
        );
        let meta = std::fs::metadata(bin.path().join("plexus")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::read(bin.path().join("plexus")).unwrap(),
            b"meta v1"
        );

        std::fs::write(src.path().join("plexus"), b"meta v2").unwrap(); // same length
        let out = install_binaries(src.path(), bin.path(), &names).unwrap();
        assert_eq!(out[0].1, BinaryOutcome::Installed);
        assert_eq!(out[1].1, BinaryOutcome::UpToDate);
        assert_eq!(
            std::fs::read(bin.path().join("plexus")).unwrap(),
            b"meta v2"
        );

        // a wrong mode on the node is corrected
        std::fs::set_permissions(
            bin.path().join("plexus-macvlan"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let out = install_binaries(src.path(), bin.path(), &names).unwrap();
        assert_eq!(out[1].1, BinaryOutcome::Installed);
    }
}
