//! kubelet's gRPC APIs as Plexus uses them: the device plugin API (`v1beta1`), which
//! `plexus-device-plugin` serves and registers through, and the PodResources API (`v1`), which the
//! meta-plugin asks which devices a pod got. Both run over unix sockets; [`unix`] has the client
//! and server plumbing shared by the daemon, the meta-plugin and the fake kubelet in tests.

pub mod unix;

/// Device plugin API v1beta1 (`/v1beta1.Registration/*`, `/v1beta1.DevicePlugin/*`).
pub mod deviceplugin {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("v1beta1");

    /// The API version a device plugin sends in its RegisterRequest.
    pub const VERSION: &str = "v1beta1";
    /// kubelet's registration socket name inside the device-plugins dir.
    pub const KUBELET_SOCKET: &str = "kubelet.sock";
    /// Where kubelet keeps device-plugin sockets on a standard node.
    pub const DEFAULT_DIR: &str = "/var/lib/kubelet/device-plugins";
    /// `Device.health` values kubelet understands.
    pub const HEALTHY: &str = "Healthy";
    pub const UNHEALTHY: &str = "Unhealthy";
}

/// PodResources API v1 (`/v1.PodResourcesLister/*`).
pub mod podresources {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("v1");

    /// kubelet's PodResources socket on a standard node.
    pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
}
