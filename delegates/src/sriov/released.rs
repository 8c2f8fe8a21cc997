//! The tombstone left where a VF's record was once the VF has been put back from it (by DEL,
//! GC, a fully rolled-back ADD or an ADD taking over from a vanished owner): which attachment
//! released the VF and when. It lets a later DEL of that same attachment (containerd sends DEL
//! twice; the meta-plugin retries a partly failed DEL) recognise "already done" instead of
//! taking the missing record for a lost one and resetting settings an administrator had on the
//! VF. The next ADD of the VF, by any attachment, replaces it with its record.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::record::{Owner, VfRecord};
use super::sysfs::PciAddress;

/// Bumped when the layout changes incompatibly; a tombstone of another version is ignored.
pub const RELEASED_VERSION: u32 = 1;

/// A VF put back from its record, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Released {
    pub version: u32,
    pub pci: PciAddress,
    /// The attachment whose record it was.
    pub owner: Owner,
    /// When, in seconds since the Unix epoch (for people reading the file).
    pub released_at_unix: u64,
}

impl Released {
    /// The tombstone of `rec`'s owner, now.
    pub fn of(rec: &VfRecord) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Released {
            version: RELEASED_VERSION,
            pci: rec.pci,
            owner: rec.owner.clone(),
            released_at_unix: now,
        }
    }

    /// Whether this attachment (container, interface and network) released the VF.
    pub fn by(&self, container_id: &str, ifname: &str, network: &str) -> bool {
        self.owner.is(container_id, ifname) && self.owner.network == network
    }
}
