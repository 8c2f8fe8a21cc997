//! `plexus install` replaces a binary while the node is executing it: no "text file busy", the
//! running process goes on with the old code, and the next exec gets the new content.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use plexus::install::binaries::{BinaryOutcome, install_binaries};

const ETXTBSY: i32 = 26;

fn sleep_binary() -> PathBuf {
    ["/bin/sleep", "/usr/bin/sleep"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("a sleep binary (coreutils)")
}

/// Starts `path` (a copy of sleep). Another test thread forking while the copy's write fd was
/// open makes a fresh executable briefly "busy" for exec itself; that is the test harness's
/// race, not the installer's, so exec is retried.
fn spawn_running(path: &Path) -> Child {
    for _ in 0..200 {
        match Command::new(path).arg("600").spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("spawning {}: {e}", path.display()),
        }
    }
    panic!("{} stayed busy", path.display());
}

#[test]
fn replacing_a_running_binary_neither_fails_nor_disturbs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("opt/cni/bin");
    let image = tmp.path().join("image");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&image).unwrap();

    // The node runs the old plexus (a real ELF executable, so the kernel maps it).
    let old = std::fs::read(sleep_binary()).unwrap();
    let installed = bin.join("plexus");
    std::fs::write(&installed, &old).unwrap();
    std::fs::set_permissions(&installed, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut running = spawn_running(&installed);
    let exe = PathBuf::from(format!("/proc/{}/exe", running.id()));
    assert_eq!(std::fs::read_link(&exe).unwrap(), installed);

    // Writing into it in place is what fails on real nodes.
    let in_place = std::fs::OpenOptions::new().write(true).open(&installed);
    assert_eq!(
        in_place.unwrap_err().raw_os_error(),
        Some(ETXTBSY),
        "the old binary is not being executed, so this test would prove nothing"
    );

    let new = b"#!/bin/sh\necho plexus v2\n".to_vec();
    std::fs::write(image.join("plexus"), &new).unwrap();
    let out = install_binaries(&image, &bin, &["plexus".to_owned()]).unwrap();
    assert_eq!(out, vec![("plexus".to_owned(), BinaryOutcome::Installed)]);

    assert_eq!(std::fs::read(&installed).unwrap(), new);
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    // The running process was not disturbed: still running, on the old (now unlinked) inode,
    // whose content is the old binary.
    assert!(
        running.try_wait().unwrap().is_none(),
        "the running binary died"
    );
    let target = std::fs::read_link(&exe).unwrap();
    assert!(
        target.to_string_lossy().ends_with(" (deleted)"),
        "{}",
        target.display()
    );
    assert_eq!(std::fs::read(&exe).unwrap(), old);
    // Nothing but the binary is left in the bin dir.
    let names: Vec<_> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["plexus"]);
    // The next exec runs the new content.
    let output = Command::new(&installed).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "plexus v2\n");

    running.kill().unwrap();
    running.wait().unwrap();
}
