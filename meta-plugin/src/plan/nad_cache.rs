//! A [`KubeApi`] wrapper that fetches each NAD at most once per plan: the same NAD selected twice
//! (or by `defaultNetworks` and the annotation) costs one GET. 404s are remembered too, so a
//! bare-name reference that falls back to a config file is not asked for again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::Pod;
use plexus_crds::{NetworkAttachmentDefinition, NetworkStatus};

use crate::kube::{KubeApi, KubeError, PodEvent, PodRef};

#[derive(Debug, Clone)]
enum Cached {
    Found(Box<NetworkAttachmentDefinition>),
    NotFound { what: String, message: String },
}

/// Memoizes `get_nad`; everything else passes through.
pub(super) struct NadCache<'k, K> {
    inner: &'k K,
    nads: Mutex<HashMap<(String, String), Cached>>,
}

impl<'k, K: KubeApi> NadCache<'k, K> {
    pub(super) fn new(inner: &'k K) -> Self {
        NadCache {
            inner,
            nads: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &(String, String)) -> Option<Cached> {
        self.nads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn remember(&self, key: (String, String), value: Cached) {
        self.nads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, value);
    }
}

impl<K: KubeApi> KubeApi for NadCache<'_, K> {
    async fn get_pod(
        &self,
        namespace: &str,
        name: &str,
        expected_uid: Option<&str>,
    ) -> Result<Pod, KubeError> {
        self.inner.get_pod(namespace, name, expected_uid).await
    }

    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<NetworkAttachmentDefinition, KubeError> {
        let key = (namespace.to_owned(), name.to_owned());
        match self.cached(&key) {
            Some(Cached::Found(nad)) => return Ok(*nad),
            Some(Cached::NotFound { what, message }) => {
                return Err(KubeError::NotFound { what, message });
            }
            None => {}
        }
        let result = self.inner.get_nad(namespace, name).await;
        match &result {
            Ok(nad) => self.remember(key, Cached::Found(Box::new(nad.clone()))),
            Err(KubeError::NotFound { what, message }) => self.remember(
                key,
                Cached::NotFound {
                    what: what.clone(),
                    message: message.clone(),
                },
            ),
            // Any other failure ends the plan; nothing to remember.
            Err(_) => {}
        }
        result
    }

    async fn patch_network_status(
        &self,
        pod: &PodRef,
        statuses: &[NetworkStatus],
    ) -> Result<(), KubeError> {
        self.inner.patch_network_status(pod, statuses).await
    }

    async fn post_event(&self, event: &PodEvent) -> Result<(), KubeError> {
        self.inner.post_event(event).await
    }
}
