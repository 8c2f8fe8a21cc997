//! [`PodResourcesError`]: why kubelet could not say which devices a pod got.

use std::path::PathBuf;

use plexus_delegates::cni::ErrorCode;

/// A failed PodResources lookup. Every message names the socket or the pod.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PodResourcesError {
    /// No connection to kubelet's socket (missing, refused).
    #[error(
        "cannot reach kubelet's PodResources API at {}: {message} (is the socket path right and kubelet running?)",
        socket.display()
    )]
    Unreachable { socket: PathBuf, message: String },
    /// kubelet did not answer in time.
    #[error(
        "kubelet's PodResources API at {} did not answer {call} within {} s",
        socket.display(),
        timeout_secs
    )]
    Timeout {
        socket: PathBuf,
        call: &'static str,
        timeout_secs: u64,
    },
    /// kubelet answered with an error status.
    #[error(
        "kubelet's PodResources {call} at {} failed: {code:?}: {message}",
        socket.display()
    )]
    Rpc {
        socket: PathBuf,
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    /// kubelet does not know the pod (neither `Get` nor `List` has it).
    #[error("kubelet's PodResources API does not know pod {pod}")]
    PodNotFound { pod: String },
}

impl PodResourcesError {
    /// The CNI error code this error is reported with.
    pub fn cni_code(&self) -> ErrorCode {
        match self {
            // kubelet restarting, or the pod not yet visible: the runtime retries the sandbox.
            PodResourcesError::Unreachable { .. }
            | PodResourcesError::Timeout { .. }
            | PodResourcesError::PodNotFound { .. } => ErrorCode::TryAgainLater,
            PodResourcesError::Rpc { .. } => ErrorCode::Io,
        }
    }
}
