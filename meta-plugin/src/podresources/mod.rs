//! Which devices kubelet gave a pod: the kubelet PodResources API v1 (COMPAT §8).
//!
//! The meta-plugin asks once per ADD, and only when some network of the pod has a NAD with
//! `k8s.v1.cni.cncf.io/resourceName`. [`pod_devices`] prefers `Get` (this pod only, kubelet
//! 1.27+ with the `KubeletPodResourcesGet` feature gate) and falls back to `List` (every pod on
//! the node) when kubelet does not offer `Get`.
//!
//! - [`PodResourcesApi`]: the two calls, as a trait so planning is tested with a fake.
//! - [`KubeletPodResources`]: the real client over kubelet's unix socket
//!   (`/var/lib/kubelet/pod-resources/kubelet.sock` by default).
//! - [`PodDevices`]: a pod's device IDs per resource name, sorted and without duplicates.

mod devices;
mod error;
mod kubelet;
mod lookup;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

use std::future::Future;

pub use devices::PodDevices;
pub use error::PodResourcesError;
pub use kubelet::{KubeletPodResources, REQUEST_TIMEOUT};
pub use lookup::pod_devices;
pub use plexus_kubelet_api::podresources::{DEFAULT_SOCKET, PodResources};

use crate::kube::PodRef;

/// What kubelet answered to `Get` for one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum GetAnswer {
    /// The pod and the resources of each of its containers.
    Pod(PodResources),
    /// kubelet does not know the pod.
    PodNotFound,
    /// This kubelet does not offer `Get`: older than 1.27 (`Unimplemented`), or the
    /// `KubeletPodResourcesGet` feature gate is off ("PodResources API Get method disabled").
    Unsupported,
}

/// The PodResources calls the meta-plugin makes.
pub trait PodResourcesApi: Send + Sync {
    /// `Get` for one pod.
    fn get(
        &self,
        pod: &PodRef,
    ) -> impl Future<Output = Result<GetAnswer, PodResourcesError>> + Send;

    /// `List`: every pod kubelet runs, with its resources.
    fn list(&self) -> impl Future<Output = Result<Vec<PodResources>, PodResourcesError>> + Send;
}
