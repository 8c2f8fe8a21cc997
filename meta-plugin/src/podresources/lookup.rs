//! [`pod_devices`]: `Get` for this pod, `List` when kubelet does not offer `Get`.

use super::{GetAnswer, PodDevices, PodResourcesApi, PodResourcesError};
use crate::kube::PodRef;

/// The devices kubelet gave `pod`: one `Get`, or one `List` when this kubelet does not offer
/// `Get` (then the pod is picked by namespace and name).
pub async fn pod_devices<A: PodResourcesApi>(
    api: &A,
    pod: &PodRef,
) -> Result<PodDevices, PodResourcesError> {
    let not_found = || PodResourcesError::PodNotFound {
        pod: pod.to_string(),
    };
    match api.get(pod).await? {
        GetAnswer::Pod(resources) => Ok(PodDevices::from_pod(&resources)),
        GetAnswer::PodNotFound => Err(not_found()),
        GetAnswer::Unsupported => {
            tracing::debug!(%pod, "kubelet does not offer PodResources Get: using List");
            let pods = api.list().await?;
            pods.iter()
                .find(|p| p.namespace == pod.namespace && p.name == pod.name)
                .map(PodDevices::from_pod)
                .ok_or_else(not_found)
        }
    }
}
