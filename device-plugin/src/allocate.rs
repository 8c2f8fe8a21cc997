//! Allocate: what a container gets for the VFs kubelet assigned it.
//!
//! - `PCIDEVICE_<PREFIX>_<NAME>` = the PCI addresses, comma-separated, in request order;
//! - `PCIDEVICE_<PREFIX>_<NAME>_INFO` = JSON per address: `{"generic":{"deviceID":"<bdf>"}}`,
//!   plus `"vfio":{"dev-mount":"/dev/vfio/<group>","mount":"/dev/vfio/vfio"}` for vfio-pci VFs
//!   (keys sorted, as the sriov-network-device-plugin writes them);
//! - device nodes: `/dev/vfio/vfio` and `/dev/vfio/<group>` for vfio-pci VFs, `/dev/uio<N>` for
//!   uio_pci_generic/igb_uio VFs, `/dev/vhost-net` and `/dev/net/tun` when the selector asked for
//!   `needVhostNet`. Each node once per container.
//!
//! VFs on a kernel net driver need no device node: the meta-plugin moves their netdev.

use std::collections::BTreeMap;

use plexus_delegates::sriov::sysfs::{PciAddress, Sysfs, SysfsError};
use plexus_kubelet_api::deviceplugin::{ContainerAllocateResponse, DeviceSpec};

use crate::inventory::PoolDevice;
use crate::naming::{env_name, info_env_name};

const VFIO_CONTAINER: &str = "/dev/vfio/vfio";
const UIO_DRIVERS: &[&str] = &["uio_pci_generic", "igb_uio"];
const VHOST_NET: &str = "/dev/vhost-net";
const TUN: &str = "/dev/net/tun";

/// What Allocate needs to know of one VF, read from sysfs at allocation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocDevice {
    pub pci: PciAddress,
    pub driver: Option<String>,
    pub iommu_group: Option<u32>,
    /// `uio<N>` for VFs on a uio driver.
    pub uio: Option<String>,
    pub need_vhost_net: bool,
}

/// A device that cannot be handed to a container.
#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    #[error("device {id:?} is not in pool {resource}")]
    NotInPool { resource: String, id: String },
    #[error("VF {pci}: {source}")]
    Sysfs {
        pci: PciAddress,
        #[source]
        source: SysfsError,
    },
    #[error("VF {pci} is bound to vfio-pci but has no iommu_group")]
    VfioWithoutGroup { pci: PciAddress },
    #[error("VF {pci} is bound to {driver} but {path} names no uio device")]
    UioWithoutDevice {
        pci: PciAddress,
        driver: String,
        path: String,
    },
}

/// Read the VF of `device` again (its driver may have changed since the last poll).
pub fn read_device(sysfs: &Sysfs, device: &PoolDevice) -> Result<AllocDevice, AllocateError> {
    let pci = device.pci;
    let vf = sysfs
        .vf(&pci)
        .map_err(|source| AllocateError::Sysfs { pci, source })?;
    let uio = match vf.driver.as_deref() {
        Some(d) if UIO_DRIVERS.contains(&d) => {
            let dir = sysfs.pci_dir(&pci).join("uio");
            let first = std::fs::read_dir(&dir).ok().and_then(|rd| {
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("uio"))
                    .collect();
                names.sort();
                names.into_iter().next()
            });
            match first {
                Some(n) => Some(n),
                None => {
                    return Err(AllocateError::UioWithoutDevice {
                        pci,
                        driver: d.to_string(),
                        path: dir.display().to_string(),
                    });
                }
            }
        }
        _ => None,
    };
    Ok(AllocDevice {
        pci,
        driver: vf.driver,
        iommu_group: vf.iommu_group,
        uio,
        need_vhost_net: device.need_vhost_net,
    })
}

/// The answer for one container of pool `<prefix>/<name>` given `devices` in request order.
pub fn container_response(
    prefix: &str,
    name: &str,
    devices: &[AllocDevice],
) -> Result<ContainerAllocateResponse, AllocateError> {
    let mut specs: Vec<DeviceSpec> = Vec::new();
    let mut add = |host: String| {
        if !specs.iter().any(|s| s.host_path == host) {
            specs.push(DeviceSpec {
                container_path: host.clone(),
                host_path: host,
                permissions: "rw".into(),
            });
        }
    };
    let mut info: BTreeMap<String, BTreeMap<&str, BTreeMap<&str, String>>> = BTreeMap::new();
    for d in devices {
        let pci = d.pci.to_string();
        let mut entry = BTreeMap::new();
        entry.insert("generic", BTreeMap::from([("deviceID", pci.clone())]));
        match d.driver.as_deref() {
            Some("vfio-pci") => {
                let group = d
                    .iommu_group
                    .ok_or(AllocateError::VfioWithoutGroup { pci: d.pci })?;
                let dev = format!("/dev/vfio/{group}");
                add(VFIO_CONTAINER.to_string());
                add(dev.clone());
                entry.insert(
                    "vfio",
                    BTreeMap::from([("dev-mount", dev), ("mount", VFIO_CONTAINER.to_string())]),
                );
            }
            Some(drv) if UIO_DRIVERS.contains(&drv) => {
                let uio = d.uio.as_ref().ok_or(AllocateError::UioWithoutDevice {
                    pci: d.pci,
                    driver: drv.to_string(),
                    path: "uio".into(),
                })?;
                add(format!("/dev/{uio}"));
            }
            _ => {}
        }
        if d.need_vhost_net {
            add(VHOST_NET.to_string());
            add(TUN.to_string());
        }
        info.insert(pci, entry);
    }
    let ids: Vec<String> = devices.iter().map(|d| d.pci.to_string()).collect();
    let envs = [
        (env_name(prefix, name), ids.join(",")),
        (
            info_env_name(prefix, name),
            // maps of strings always serialize
            serde_json::to_string(&info).unwrap_or_default(),
        ),
    ]
    .into_iter()
    .collect();
    Ok(ContainerAllocateResponse {
        envs,
        devices: specs,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(pci: &str, driver: &str, group: Option<u32>) -> AllocDevice {
        AllocDevice {
            pci: pci.parse().unwrap(),
            driver: Some(driver.into()),
            iommu_group: group,
            uio: None,
            need_vhost_net: false,
        }
    }

    #[test]
    fn kernel_driver_vfs_get_env_only() {
        let r = container_response(
            "intel.com",
            "sriov_net",
            &[
                dev("0000:03:02.1", "iavf", Some(7)),
                dev("0000:03:02.0", "iavf", Some(6)),
            ],
        )
        .unwrap();
        assert_eq!(
            r.envs["PCIDEVICE_INTEL_COM_SRIOV_NET"],
            "0000:03:02.1,0000:03:02.0"
        );
        assert_eq!(
            r.envs["PCIDEVICE_INTEL_COM_SRIOV_NET_INFO"],
            r#"{"0000:03:02.0":{"generic":{"deviceID":"0000:03:02.0"}},"0000:03:02.1":{"generic":{"deviceID":"0000:03:02.1"}}}"#
        );
        assert!(r.devices.is_empty());
        assert!(r.mounts.is_empty());
    }

    #[test]
    fn vfio_vfs_get_their_group_and_the_container_node_once() {
        let r = container_response(
            "intel.com",
            "dpdk",
            &[
                dev("0000:03:02.0", "vfio-pci", Some(41)),
                dev("0000:03:02.1", "vfio-pci", Some(42)),
            ],
        )
        .unwrap();
        let hosts: Vec<&str> = r.devices.iter().map(|d| d.host_path.as_str()).collect();
        assert_eq!(hosts, ["/dev/vfio/vfio", "/dev/vfio/41", "/dev/vfio/42"]);
        assert!(
            r.devices
                .iter()
                .all(|d| d.container_path == d.host_path && d.permissions == "rw")
        );
        assert_eq!(
            r.envs["PCIDEVICE_INTEL_COM_DPDK_INFO"],
            r#"{"0000:03:02.0":{"generic":{"deviceID":"0000:03:02.0"},"vfio":{"dev-mount":"/dev/vfio/41","mount":"/dev/vfio/vfio"}},"0000:03:02.1":{"generic":{"deviceID":"0000:03:02.1"},"vfio":{"dev-mount":"/dev/vfio/42","mount":"/dev/vfio/vfio"}}}"#
        );
    }

    #[test]
    fn uio_and_vhost_nodes() {
        let mut d = dev("0000:03:02.0", "igb_uio", None);
        d.uio = Some("uio3".into());
        d.need_vhost_net = true;
        let r = container_response("intel.com", "uio", &[d]).unwrap();
        let hosts: Vec<&str> = r.devices.iter().map(|d| d.host_path.as_str()).collect();
        assert_eq!(hosts, ["/dev/uio3", "/dev/vhost-net", "/dev/net/tun"]);
    }

    #[test]
    fn vfio_without_group_is_an_error_naming_the_vf() {
        let e = container_response("intel.com", "d", &[dev("0000:03:02.0", "vfio-pci", None)])
            .unwrap_err();
        assert!(e.to_string().contains("0000:03:02.0"), "{e}");
    }
}
