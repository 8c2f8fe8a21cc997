//! Device-info files (the NPWG device-info spec, COMPAT §8), under one root
//! (`/var/run/k8s.cni.cncf.io/devinfo` on a node):
//!
//! - `dp/<resource>-<device ID>-device.json`: written by the device plugin at Allocate, read
//!   here ([`DeviceInfoDir::write_for_attachment`] copies it);
//! - `cni/<network>-<container ID>_<ifname>`: the meta-plugin's copy for one attachment, written
//!   at ADD before its delegate runs ([`DeviceInfoDir::write_for_attachment`]), read back for the
//!   network-status `device-info` after the delegate ran (a delegate that declares the
//!   `CNIDeviceInfoFile` capability gets its path and may have written it itself), removed at
//!   DEL after the attachment's delegate DEL, whatever it answered, as Multus does
//!   ([`remove_file`] with the path the journal record names, read back by [`load_file`]).
//!
//! In file names every `/` becomes `-` (`intel.com/sriov` → `intel.com-sriov`, `ns/net` →
//! `ns-net`), as Multus and the NPWG client library name them. An attachment has a file only
//! when it has a device ID (its runtimeConfig `deviceID`: handed out from the NAD's
//! resourceName, or the selection's `deviceID`); the copy from the device plugin needs the
//! resource name as well.

mod error;
mod files;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde_json::Value;

pub use error::DeviceInfoError;
pub use files::{load_file, remove_file};

use crate::plan::Attachment;

/// The device-info root on a standard node.
pub const DEFAULT_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo";

/// The capability (runtimeConfig key) under which plugins receive their device-info file path.
pub const CNI_DEVICE_INFO_FILE_CAPABILITY: &str = "CNIDeviceInfoFile";

/// The device-info root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfoDir {
    root: PathBuf,
}

impl DeviceInfoDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DeviceInfoDir { root: root.into() }
    }

    /// The device plugin's file for one device of `resource`.
    pub fn dp_file(&self, resource: &str, device_id: &str) -> PathBuf {
        self.root.join("dp").join(format!(
            "{}-{}-device.json",
            flatten(resource),
            flatten(device_id)
        ))
    }

    /// The meta-plugin's file for the attachment of `network` on `ifname` in the sandbox
    /// `container_id`.
    pub fn cni_file(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.root
            .join("cni")
            .join(flatten(&format!("{network}-{container_id}_{ifname}")))
    }

    /// [`Self::cni_file`] for `att`, when it has a device ID.
    pub fn attachment_file(&self, container_id: &str, att: &Attachment) -> Option<PathBuf> {
        device_id(att).map(|_| self.cni_file(&att.network, container_id, &att.ifname))
    }
}

/// The attachment's device ID: its runtimeConfig `deviceID` (handed out by planning from the
/// NAD's resourceName, or the selection's `deviceID`).
pub fn device_id(att: &Attachment) -> Option<&str> {
    att.runtime_config
        .get("deviceID")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
}

/// One path component: every `/` becomes `-`.
fn flatten(s: &str) -> String {
    s.replace('/', "-")
}
