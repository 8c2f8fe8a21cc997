//! Reading, writing and removing the device-info files of [`DeviceInfoDir`].

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use plexus_crds::DeviceInfo;

use super::{DeviceInfoDir, DeviceInfoError, device_id};
use crate::plan::Attachment;

/// Device-info files are read-only once written (as the NPWG library writes them).
const FILE_MODE: u32 = 0o444;

impl DeviceInfoDir {
    /// ADD, before the attachment's delegate runs: copies the device plugin's file for the
    /// attachment's device to the attachment's own file and returns its content. `None` (and
    /// nothing written) when the attachment has no device ID or no resource name, or the device
    /// plugin wrote no file. The copy keeps the device plugin's bytes (fields Plexus does not
    /// model survive); an existing file of the same attachment (a retried ADD) is replaced.
    pub fn write_for_attachment(
        &self,
        container_id: &str,
        att: &Attachment,
    ) -> Result<Option<DeviceInfo>, DeviceInfoError> {
        let (Some(device), Some(resource)) = (device_id(att), att.resource_name.as_deref()) else {
            return Ok(None);
        };
        let Some((info, bytes)) = read(&self.dp_file(resource, device))? else {
            tracing::debug!(
                network = %att.network,
                resource,
                device,
                "the device plugin wrote no device-info file: none for network-status"
            );
            return Ok(None);
        };
        let path = self.cni_file(&att.network, container_id, &att.ifname);
        write_atomic(&path, &bytes)?;
        Ok(Some(info))
    }
}

/// A device-info file by path (the journal record of an attachment names its file): `None`
/// when it does not exist.
pub fn load_file(path: &Path) -> Result<Option<DeviceInfo>, DeviceInfoError> {
    Ok(read(path)?.map(|(info, _)| info))
}

/// Removes a device-info file by path. Idempotent: a missing file is success.
pub fn remove_file(path: &Path) -> Result<(), DeviceInfoError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DeviceInfoError::Io {
            path: path.to_path_buf(),
            action: "remove it",
            source,
        }),
    }
}

/// The parsed file and its bytes; `None` when it does not exist.
fn read(path: &Path) -> Result<Option<(DeviceInfo, Vec<u8>)>, DeviceInfoError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DeviceInfoError::Io {
                path: path.to_path_buf(),
                action: "read it",
                source,
            });
        }
    };
    let info = serde_json::from_slice(&bytes).map_err(|source| DeviceInfoError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some((info, bytes)))
}

/// Temp file in the same directory, fsynced, renamed over `path`, directory fsynced: a reader
/// sees the old file or the whole new one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DeviceInfoError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| DeviceInfoError::Io {
            path: p,
            action,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io("create its directory", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let written = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(source) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(DeviceInfoError::Io {
            path: path.to_path_buf(),
            action: "write it",
            source,
        });
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync its directory", dir))
}
