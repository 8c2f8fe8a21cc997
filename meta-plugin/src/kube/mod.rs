//! Kubernetes access: the pod, its NADs, the network-status write and Events.
//!
//! [`KubeApi`] is what the orchestration uses; [`KubeClient`] is the one implementation that
//! talks to an API server (kube-rs over rustls, from the configured kubeconfig). Every operation
//! is exactly one HTTP request. With `cfg(test)` or the `test-fixtures` feature, `fake::FakeKube`
//! is an in-memory implementation for orchestration tests; the real client is tested against an
//! in-process TLS API server (`tests/kube_api.rs`).

mod client;
pub mod event;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fake;

use std::future::Future;

use k8s_openapi::api::core::v1::Pod;
use plexus_crds::{NetworkAttachmentDefinition, NetworkStatus};
use plexus_delegates::cni::{CniError, ErrorCode};

pub use client::{ClientOptions, DEFAULT_REQUEST_TIMEOUT, KubeClient};
pub use event::{AddedInterface, EventType, PodEvent};

/// The pod a sandbox belongs to, as the runtime names it (CNI_ARGS).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// `K8S_POD_UID`, when the runtime sends it.
    pub uid: Option<String>,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A failed Kubernetes operation. Every message says what was being done (`get pod ns/name`),
/// and never contains credentials.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig (or in-cluster environment) cannot be used.
    #[error("kubeconfig {path}: {message}")]
    Config { path: String, message: String },
    /// 401: the credentials were rejected.
    #[error(
        "{what}: the API server rejected the credentials (401 Unauthorized): check the token or client certificate in the kubeconfig: {message}"
    )]
    Unauthorized { what: String, message: String },
    /// 403: the credentials are valid but lack permission.
    #[error(
        "{what}: permission denied (403 Forbidden): check the RBAC rules of Plexus's service account: {message}"
    )]
    Forbidden { what: String, message: String },
    /// 404.
    #[error("{what}: not found (404): {message}")]
    NotFound { what: String, message: String },
    /// 409.
    #[error("{what}: conflict (409): {message}")]
    Conflict { what: String, message: String },
    /// Any other error status from the API server.
    #[error("{what}: the API server answered {code} {reason}: {message}")]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer: connection refused, TLS failure, DNS, timeout.
    #[error("{what}: cannot reach the API server at {server}: {message}")]
    Unreachable {
        what: String,
        server: String,
        message: String,
    },
    /// The pod was found but is not the one the runtime is setting up (it was deleted and
    /// recreated under the same name).
    #[error(
        "pod {namespace}/{name} has UID {found}, but the runtime sent K8S_POD_UID={expected}: the pod was deleted and recreated; this sandbox belongs to the old pod"
    )]
    PodUidMismatch {
        namespace: String,
        name: String,
        expected: String,
        found: String,
    },
    /// A local-mode NAD manifest that cannot be used (it does not parse, a field has the wrong
    /// type, a NAD is defined twice). The message names the file and the field: the user's
    /// configuration is wrong, so it is reported as an invalid network config (7).
    #[error("{what}: {message}")]
    InvalidManifest { what: String, message: String },
    /// Anything else (an undecodable answer, a request that cannot be built).
    #[error("{what}: {message}")]
    Other { what: String, message: String },
}

impl KubeError {
    /// The CNI error code this error is reported with.
    pub fn cni_code(&self) -> ErrorCode {
        match self {
            // Transient: the runtime retries the sandbox.
            KubeError::Unreachable { .. } | KubeError::Conflict { .. } => ErrorCode::TryAgainLater,
            KubeError::PodUidMismatch { .. } => ErrorCode::UnknownContainer,
            KubeError::Other { .. } => ErrorCode::Io,
            KubeError::InvalidManifest { .. } => ErrorCode::InvalidConfig,
            _ => ErrorCode::InvalidConfig,
        }
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeError::NotFound { .. })
    }
}

impl From<KubeError> for CniError {
    fn from(e: KubeError) -> Self {
        CniError::new(e.cni_code(), e.to_string())
    }
}

/// Checks the fetched pod against the runtime's `K8S_POD_UID` (ignored when absent or empty).
pub fn check_pod_uid(pod: &Pod, expected_uid: Option<&str>) -> Result<(), KubeError> {
    let Some(expected) = expected_uid.filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    let found = pod.metadata.uid.as_deref().unwrap_or("");
    if found == expected {
        return Ok(());
    }
    Err(KubeError::PodUidMismatch {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        expected: expected.to_owned(),
        found: if found.is_empty() {
            "(none)".to_owned()
        } else {
            found.to_owned()
        },
    })
}

/// The Kubernetes operations the meta-plugin needs; each is exactly one request.
pub trait KubeApi: Send + Sync {
    /// GET the pod; when `expected_uid` is given (the runtime's `K8S_POD_UID`), the pod's UID
    /// must equal it ([`KubeError::PodUidMismatch`] otherwise).
    fn get_pod(
        &self,
        namespace: &str,
        name: &str,
        expected_uid: Option<&str>,
    ) -> impl Future<Output = Result<Pod, KubeError>> + Send;

    /// GET a NetworkAttachmentDefinition.
    fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<NetworkAttachmentDefinition, KubeError>> + Send;

    /// Write the `k8s.v1.cni.cncf.io/network-status` annotation with one merge PATCH of
    /// `pods/status` (never GET+PUT).
    fn patch_network_status(
        &self,
        pod: &PodRef,
        statuses: &[NetworkStatus],
    ) -> impl Future<Output = Result<(), KubeError>> + Send;

    /// POST one Event about the pod.
    fn post_event(&self, event: &PodEvent) -> impl Future<Output = Result<(), KubeError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(uid: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("p".into()),
                uid: uid.map(str::to_owned),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn uid_check() {
        check_pod_uid(&pod(Some("a")), Some("a")).unwrap();
        check_pod_uid(&pod(Some("a")), None).unwrap();
        check_pod_uid(&pod(Some("a")), Some("")).unwrap();
        let e = check_pod_uid(&pod(Some("b")), Some("a")).unwrap_err();
        assert!(e.to_string().contains("ns/p has UID b"), "{e}");
        assert!(e.to_string().contains("recreated"), "{e}");
        let e = check_pod_uid(&pod(None), Some("a")).unwrap_err();
        assert!(e.to_string().contains("(none)"), "{e}");
        assert_eq!(CniError::from(e).code, ErrorCode::UnknownContainer as u32);
    }
}
