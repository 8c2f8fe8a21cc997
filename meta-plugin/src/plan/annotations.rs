//! Where the pod's selection annotations come from: the runtime's
//! `runtimeConfig["io.kubernetes.cri.pod-annotations"]` when it passed them (no request), else
//! one GET of the pod (with the `K8S_POD_UID` check).

use plexus_crds::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};
use plexus_delegates::cni::CniError;
use serde_json::{Map, Value};

use super::PlanInput;
use crate::kube::KubeApi;

/// The runtimeConfig key under which containerd passes every pod annotation (when the plugin
/// declares the capability of that name).
pub const POD_ANNOTATIONS_KEY: &str = "io.kubernetes.cri.pod-annotations";

/// The pod annotations the runtime passed in `runtimeConfig`, if it passed them as an object.
pub fn pod_annotations_from_runtime_config(
    runtime_config: &Map<String, Value>,
) -> Option<&Map<String, Value>> {
    runtime_config
        .get(POD_ANNOTATIONS_KEY)
        .and_then(Value::as_object)
}

/// The two annotations planning reads.
#[derive(Debug, Default, PartialEq)]
pub(super) struct SelectionAnnotations {
    /// `k8s.v1.cni.cncf.io/networks`.
    pub networks: Option<String>,
    /// `v1.multus-cni.io/default-network`.
    pub default_network: Option<String>,
}

/// Reads the selection annotations: from `input.pod_annotations` when given (no request), else
/// from one GET of the pod. A request without a pod name (podman without Kubernetes) has no
/// annotations and makes no request.
pub(super) async fn load<K: KubeApi>(
    input: &PlanInput<'_>,
    kube: &K,
) -> Result<SelectionAnnotations, CniError> {
    if let Some(map) = input.pod_annotations {
        let get = |key: &str| -> Result<Option<String>, CniError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(CniError::invalid_config(format!(
                    "runtimeConfig[{POD_ANNOTATIONS_KEY:?}][{key:?}] = {other}: an annotation value must be a string"
                ))),
            }
        };
        return Ok(SelectionAnnotations {
            networks: get(NETWORKS_ANNOTATION)?,
            default_network: get(DEFAULT_NETWORK_ANNOTATION)?,
        });
    }
    if input.pod.name.is_empty() || input.pod.namespace.is_empty() {
        tracing::debug!("no K8S_POD_NAMESPACE/K8S_POD_NAME: the sandbox has no pod annotations");
        return Ok(SelectionAnnotations::default());
    }
    let pod = kube
        .get_pod(
            &input.pod.namespace,
            &input.pod.name,
            input.pod.uid.as_deref(),
        )
        .await?;
    let annotations = pod.metadata.annotations.unwrap_or_default();
    Ok(SelectionAnnotations {
        networks: annotations.get(NETWORKS_ANNOTATION).cloned(),
        default_network: annotations.get(DEFAULT_NETWORK_ANNOTATION).cloned(),
    })
}
