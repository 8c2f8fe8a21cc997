//! [`KubeletPodResources`]: the PodResources API v1 over kubelet's unix socket.

use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use plexus_kubelet_api::podresources::pod_resources_lister_client::PodResourcesListerClient;
use plexus_kubelet_api::podresources::{
    GetPodResourcesRequest, ListPodResourcesRequest, PodResources,
};
use plexus_kubelet_api::unix;
use tokio::sync::OnceCell;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::{GetAnswer, PodResourcesApi, PodResourcesError};
use crate::kube::PodRef;

/// How long one call (connecting included) may take; Multus waits as long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer accepted: `List` carries every pod of the node (kubelet's own clients
/// allow as much; tonic's default of 4 MiB is too small for big nodes).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// What kubelet says when the `KubeletPodResourcesGet` feature gate is off (status Unknown).
const GET_DISABLED: &str = "Get method disabled";

/// The kubelet PodResources client. It connects on the first call and reuses the connection
/// (a `Get` that falls back to `List` opens one connection).
#[derive(Debug)]
pub struct KubeletPodResources {
    socket: PathBuf,
    client: OnceCell<PodResourcesListerClient<Channel>>,
}

impl KubeletPodResources {
    /// A client for the socket at `socket` (not connected yet).
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        KubeletPodResources {
            socket: socket.into(),
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<PodResourcesListerClient<Channel>, PodResourcesError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let channel = self
                    .timed("connect", unix::connect(&self.socket))
                    .await?
                    .map_err(|e| PodResourcesError::Unreachable {
                        socket: self.socket.clone(),
                        // The cause only: the error itself repeats the path.
                        message: e.source().map_or_else(|| e.to_string(), error_chain),
                    })?;
                Ok::<_, PodResourcesError>(
                    PodResourcesListerClient::new(channel)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES),
                )
            })
            .await?;
        Ok(client.clone())
    }

    /// Runs `fut` with [`REQUEST_TIMEOUT`].
    async fn timed<T>(
        &self,
        call: &'static str,
        fut: impl Future<Output = T>,
    ) -> Result<T, PodResourcesError> {
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| PodResourcesError::Timeout {
                socket: self.socket.clone(),
                call,
                timeout_secs: REQUEST_TIMEOUT.as_secs(),
            })
    }

    fn rpc_error(&self, call: &'static str, status: &Status) -> PodResourcesError {
        PodResourcesError::Rpc {
            socket: self.socket.clone(),
            call,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl PodResourcesApi for KubeletPodResources {
    async fn get(&self, pod: &PodRef) -> Result<GetAnswer, PodResourcesError> {
        let mut client = self.client().await?;
        let request = GetPodResourcesRequest {
            pod_name: pod.name.clone(),
            pod_namespace: pod.namespace.clone(),
        };
        match self.timed("Get", client.get(request)).await? {
            Ok(response) => Ok(response
                .into_inner()
                .pod_resources
                .map_or(GetAnswer::PodNotFound, GetAnswer::Pod)),
            Err(status) => {
                classify_get_error(&status).ok_or_else(|| self.rpc_error("Get", &status))
            }
        }
    }

    async fn list(&self) -> Result<Vec<PodResources>, PodResourcesError> {
        let mut client = self.client().await?;
        self.timed("List", client.list(ListPodResourcesRequest {}))
            .await?
            .map(|r| r.into_inner().pod_resources)
            .map_err(|status| self.rpc_error("List", &status))
    }
}

/// The `Get` errors that are answers: kubelet without `Get` (older than 1.27: Unimplemented;
/// feature gate off: Unknown "PodResources API Get method disabled") and an unknown pod
/// (kubelet: Unknown "pod <name> in namespace <ns> not found"; NotFound from other servers).
fn classify_get_error(status: &Status) -> Option<GetAnswer> {
    match status.code() {
        Code::Unimplemented => Some(GetAnswer::Unsupported),
        Code::Unknown if status.message().contains(GET_DISABLED) => Some(GetAnswer::Unsupported),
        Code::NotFound => Some(GetAnswer::PodNotFound),
        Code::Unknown if status.message().ends_with("not found") => Some(GetAnswer::PodNotFound),
        _ => None,
    }
}

/// An error with its sources (tonic's transport error alone says only "transport error").
fn error_chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Wrappers often repeat their cause's text: say it once.
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_errors_that_mean_no_get_or_no_pod() {
        let cases = [
            (
                Status::unimplemented("unknown method Get"),
                Some(GetAnswer::Unsupported),
            ),
            (
                Status::unknown("PodResources API Get method disabled"),
                Some(GetAnswer::Unsupported),
            ),
            (
                Status::unknown("pod web in namespace default not found"),
                Some(GetAnswer::PodNotFound),
            ),
            (
                Status::not_found("pod default/web"),
                Some(GetAnswer::PodNotFound),
            ),
            (Status::unknown("boom"), None),
            (Status::permission_denied("no"), None),
        ];
        for (status, want) in cases {
            assert_eq!(classify_get_error(&status), want, "{status:?}");
        }
    }
}
