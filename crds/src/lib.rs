//! Kubernetes-facing types and formats of Plexus. Pure: no I/O, no clients.
//!
//! - [`nad`]: the `NetworkAttachmentDefinition` custom resource (kube + schemars), its CRD manifest and
//!   the resolution of a NAD to a CNI config (COMPAT §2).
//! - [`selection`]: the `k8s.v1.cni.cncf.io/networks` and `v1.multus-cni.io/default-network` pod
//!   annotations (COMPAT §3).
//! - [`status`]: the `k8s.v1.cni.cncf.io/network-status` annotation, written byte for byte like Multus
//!   (COMPAT §4) and parsed back.

pub mod nad;
pub mod selection;
pub mod status;

pub use nad::{
    ConfFileMatch, NadConfig, NadConfigError, NadResolution, NetworkAttachmentDefinition,
    NetworkAttachmentDefinitionSpec, crd_manifest_yaml, json_kind, select_conf_file,
};
pub use selection::{
    NetworkSelection, SelectionError, parse_default_network_annotation, parse_networks_annotation,
};
pub use status::{
    DeviceInfo, Dns, MemifDevice, NetworkStatus, PciDevice, StatusError, VdpaDevice,
    VhostUserDevice, parse_network_status, write_network_status,
};

/// Pod annotation selecting extra networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// Pod annotation the meta-plugin writes with the attachment results.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// The deprecated spelling of [`NETWORK_STATUS_ANNOTATION`]; older tools still read it.
pub const OLD_NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks-status";
/// Pod annotation replacing the cluster network for that pod.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";
/// NAD annotation tying it to a device-plugin resource (`<prefix>/<name>`).
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";
