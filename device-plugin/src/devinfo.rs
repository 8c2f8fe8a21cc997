//! Device-info files (Network Plumbing WG device-info spec, v1.1.0) that the device plugin writes
//! on Allocate, so the meta-plugin can report each VF in `network-status` as `device-info`.
//!
//! `<dir>/<resource with '/' → '-'>-<pci address>-device.json` holds
//! `{"type":"pci","version":"1.1.0","pci":{"pci-address":"<bdf>"}}`. A device allocated again
//! gets its file replaced. Files are written to a temp file, fsynced, made read-only (0444, as
//! the spec's reference implementation does) and renamed into place.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use plexus_delegates::sriov::sysfs::PciAddress;
use serde::Serialize;

use crate::naming::devinfo_file_name;

/// The device-info spec version written.
pub const VERSION: &str = "1.1.0";

#[derive(Debug, Serialize)]
struct DeviceInfo<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'a str,
    pci: PciInfo,
}

#[derive(Debug, Serialize)]
struct PciInfo {
    #[serde(rename = "pci-address")]
    pci_address: String,
}

/// A device-info file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write device-info file {}: {source}", path.display())]
pub struct DevinfoError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The JSON content for `pci`.
pub fn content(pci: &PciAddress) -> String {
    let info = DeviceInfo {
        kind: "pci",
        version: VERSION,
        pci: PciInfo {
            pci_address: pci.to_string(),
        },
    };
    // A struct of strings always serializes.
    serde_json::to_string(&info).unwrap_or_default()
}

/// The file's path for `pci` of `resource` in `dir`.
pub fn path(dir: &Path, resource: &str, pci: &PciAddress) -> PathBuf {
    dir.join(devinfo_file_name(resource, pci))
}

/// Write (or replace) the file for `pci` of `resource` in `dir`, creating `dir` if needed.
pub fn write(dir: &Path, resource: &str, pci: &PciAddress) -> Result<PathBuf, DevinfoError> {
    let target = path(dir, resource, pci);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DevinfoError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        devinfo_file_name(resource, pci),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content(pci).as_bytes())?;
        f.sync_all()?;
        f.set_permissions(std::fs::Permissions::from_mode(0o444))?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DevinfoError {
            path: target,
            source,
        });
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_the_spec_file() {
        let dir = tempfile::tempdir().unwrap();
        let devinfo = dir.path().join("devinfo/dp");
        let pci: PciAddress = "0000:03:02.1".parse().unwrap();
        let p = write(&devinfo, "intel.com/sriov_a", &pci).unwrap();
        assert_eq!(
            p,
            devinfo.join("intel.com-sriov_a-0000:03:02.1-device.json")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:02.1"}})
        );
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
        // a second Allocate of the same device replaces the read-only file
        write(&devinfo, "intel.com/sriov_a", &pci).unwrap();
        assert_eq!(std::fs::read_dir(&devinfo).unwrap().count(), 1);
    }

    #[test]
    fn an_unwritable_dir_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let pci: PciAddress = "0000:03:02.1".parse().unwrap();
        let e = write(&blocker.join("dp"), "intel.com/a", &pci).unwrap_err();
        assert!(e.to_string().contains("dp"), "{e}");
    }
}
