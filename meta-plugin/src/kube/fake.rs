//! An in-memory [`KubeApi`] for orchestration tests (compiled with `cfg(test)` or the
//! `test-fixtures` feature only). It records the operations it served.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use plexus_crds::{NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec, NetworkStatus};

use super::{KubeApi, KubeError, PodEvent, PodRef, check_pod_uid};

/// One operation served by [`FakeKube`].
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    GetPod {
        namespace: String,
        name: String,
    },
    GetNad {
        namespace: String,
        name: String,
    },
    PatchNetworkStatus {
        pod: PodRef,
        statuses: Vec<NetworkStatus>,
    },
    PostEvent(PodEvent),
}

#[derive(Debug, Default)]
struct State {
    pods: HashMap<(String, String), Pod>,
    nads: HashMap<(String, String), NetworkAttachmentDefinition>,
    calls: Vec<Call>,
}

/// In-memory pods and NADs.
#[derive(Debug, Default)]
pub struct FakeKube {
    state: Mutex<State>,
}

impl FakeKube {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a NAD with `spec.config` (or an empty spec).
    pub fn add_nad(&self, namespace: &str, name: &str, config: Option<&str>) {
        let mut nad = NetworkAttachmentDefinition::new(
            name,
            NetworkAttachmentDefinitionSpec {
                config: config.map(str::to_owned),
            },
        );
        nad.metadata.namespace = Some(namespace.to_owned());
        self.lock()
            .nads
            .insert((namespace.to_owned(), name.to_owned()), nad);
    }

    /// Adds a pod.
    pub fn add_pod(&self, pod: Pod) {
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        self.lock().pods.insert(key, pod);
    }

    /// A minimal pod with annotations.
    pub fn pod(namespace: &str, name: &str, uid: &str, annotations: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                uid: Some(uid.to_owned()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The operations served so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn not_found(what: String) -> KubeError {
        KubeError::NotFound {
            what,
            message: "not found (fake)".to_owned(),
        }
    }
}

impl KubeApi for FakeKube {
    async fn get_pod(
        &self,
        namespace: &str,
        name: &str,
        expected_uid: Option<&str>,
    ) -> Result<Pod, KubeError> {
        let mut st = self.lock();
        st.calls.push(Call::GetPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
        let pod = st
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| Self::not_found(format!("get pod {namespace}/{name}")))?;
        check_pod_uid(&pod, expected_uid)?;
        Ok(pod)
    }

    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<NetworkAttachmentDefinition, KubeError> {
        let mut st = self.lock();
        st.calls.push(Call::GetNad {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
        st.nads
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| {
                Self::not_found(format!(
                    "get NetworkAttachmentDefinition {namespace}/{name}"
                ))
            })
    }

    async fn patch_network_status(
        &self,
        pod: &PodRef,
        statuses: &[NetworkStatus],
    ) -> Result<(), KubeError> {
        self.lock().calls.push(Call::PatchNetworkStatus {
            pod: pod.clone(),
            statuses: statuses.to_vec(),
        });
        Ok(())
    }

    async fn post_event(&self, event: &PodEvent) -> Result<(), KubeError> {
        self.lock().calls.push(Call::PostEvent(event.clone()));
        Ok(())
    }
}
