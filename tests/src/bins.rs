//! Locating the binaries under test: ours in `target/<profile>/`, the reference plugins in
//! `/usr/lib/cni`.

use std::path::{Path, PathBuf};

use crate::skip::skip;

/// Where Debian's containernetworking-plugins install the reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// `target/<profile>/`, derived from the running test binary (`target/<profile>/deps/<test>-<hash>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test binary has a parent dir")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Our binary `name` (`plexus-macvlan`, `plexus-ipvlan`), built by `cargo build --workspace --bins`.
/// Panics when it is missing: the suites never silently test a stale or absent build.
pub fn plexus_bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    if !p.is_file() {
        panic!(
            "{} not found: run `cargo build --workspace --bins` first",
            p.display()
        );
    }
    p
}

/// The reference plugin `name`, or `None` after printing a skip reason when it is not installed.
pub fn reference_bin(test: &str, name: &str) -> Option<PathBuf> {
    let p = Path::new(REFERENCE_DIR).join(name);
    if p.is_file() {
        Some(p)
    } else {
        skip(
            test,
            &format!(
                "reference plugin {} is not installed (containernetworking-plugins)",
                p.display()
            ),
        );
        None
    }
}

/// A temp dir to use as `CNI_PATH`'s first entry: symlinks to our binaries under their own names
/// and under the reference names (`macvlan`, `ipvlan`), so a config's `type` resolves to ours.
/// Returned with `CNI_PATH` = `<dir>:/usr/lib/cni`.
pub fn plexus_cni_path() -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("plx-cnipath")
        .tempdir()
        .expect("tempdir");
    for (ours, alias) in [("plexus-macvlan", "macvlan"), ("plexus-ipvlan", "ipvlan")] {
        let bin = plexus_bin(ours);
        std::os::unix::fs::symlink(&bin, dir.path().join(ours)).expect("symlink");
        std::os::unix::fs::symlink(&bin, dir.path().join(alias)).expect("symlink");
    }
    let path = format!("{}:{REFERENCE_DIR}", dir.path().display());
    (dir, path)
}
