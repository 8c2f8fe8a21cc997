//! [`PodDevices`]: the device IDs of one pod per resource name.

use std::collections::BTreeMap;

use super::PodResources;

/// A pod's device IDs per resource name (`intel.com/sriov_netdevice` → VF PCI addresses), over
/// all its containers.
///
/// Each list is sorted and has no duplicates: kubelet hands the devices of an init container on
/// to the app containers, so the same ID can be reported twice, and kubelet's own order is not
/// stable (COMPAT §8: "device IDs are sorted and handed out in NAD order").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDevices {
    by_resource: BTreeMap<String, Vec<String>>,
}

impl PodDevices {
    /// Collects the devices of every container of `pod`.
    pub fn from_pod(pod: &PodResources) -> Self {
        let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for container in &pod.containers {
            for devices in &container.devices {
                by_resource
                    .entry(devices.resource_name.clone())
                    .or_default()
                    .extend(devices.device_ids.iter().cloned());
            }
        }
        for ids in by_resource.values_mut() {
            ids.sort();
            ids.dedup();
        }
        PodDevices { by_resource }
    }

    /// The device IDs of `resource` (empty when the pod got none).
    pub fn devices(&self, resource: &str) -> &[String] {
        self.by_resource
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The resource names the pod got devices of (for error messages).
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.by_resource.keys().map(String::as_str)
    }
}
