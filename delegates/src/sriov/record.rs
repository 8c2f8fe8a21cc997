//! The durable per-VF record: who holds the VF (the lock's owner) and what the VF looked like
//! before ADD changed it. Written before the first change, removed when DEL (or a failed ADD's
//! rollback) has put everything back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::sysfs::PciAddress;
use crate::netlink::{MacAddr, VfConfig, VfSetting};

/// Bumped when the layout changes incompatibly; older records are refused with a clear error.
pub const RECORD_VERSION: u32 = 1;

/// The attachment that holds the VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The pod's netns path as the runtime gave it at ADD.
    pub netns: PathBuf,
    /// The VF's name in the pod.
    pub ifname: String,
    /// The network (`name` of the configuration), so GC only touches its own VFs.
    pub network: String,
}

impl Owner {
    /// Same attachment: container and interface name.
    pub fn is(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id && self.ifname == ifname
    }
}

/// The VF netdev as it was in the host before ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetdevState {
    pub name: String,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    /// Administratively up.
    pub up: bool,
}

/// What ADD changes (the target values); DEL puts each of them back to [`Original`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// PF-side settings, in the order applied.
    pub vf: Vec<VfSetting>,
    /// The netdev's MTU.
    pub mtu: Option<u32>,
    /// The netdev's MAC.
    pub mac: Option<MacAddr>,
    /// The netdev is moved into the pod.
    pub moved: bool,
}

/// The VF before ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Original {
    pub vf: VfConfig,
    /// `None` for a VF on a userspace driver.
    pub netdev: Option<NetdevState>,
}

/// One VF held by one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VfRecord {
    pub version: u32,
    pub pci: PciAddress,
    pub pf_pci: PciAddress,
    /// The PF netdev at ADD (looked up again by PCI address when restoring).
    pub pf_name: String,
    pub vf_index: u32,
    pub driver: Option<String>,
    /// Bound to a userspace driver: no netdev was moved.
    pub userspace: bool,
    pub owner: Owner,
    pub original: Original,
    pub changes: Changes,
}
