//! The real API client: kube-rs over rustls (ring), built from the configured kubeconfig.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use plexus_crds::{NETWORK_STATUS_ANNOTATION, NetworkAttachmentDefinition, NetworkStatus};
use serde_json::json;

use super::{KubeApi, KubeError, PodEvent, PodRef, check_pod_uid};

/// Per-request bound (connect, write and read each) unless configured otherwise. A CNI ADD
/// should fail with a clear message rather than hang the runtime.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Field manager recorded for Plexus's writes.
pub const FIELD_MANAGER: &str = "plexus";

/// How the client is built.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Bound on connecting, and on each request's write and read.
    pub timeout: Duration,
    /// The node name, written as the Events' `source.host` and `reportingInstance`.
    pub node_name: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: DEFAULT_REQUEST_TIMEOUT,
            node_name: None,
        }
    }
}

/// A Kubernetes API client for the meta-plugin's few requests.
#[derive(Clone)]
pub struct KubeClient {
    client: Client,
    server: String,
    node_name: Option<String>,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("KubeClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl KubeClient {
    /// Builds a client from the `kubeconfig` key: the file when given (its current context: server,
    /// CA, bearer token or client certificate), else the in-cluster service-account environment.
    /// No request is made.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        options: &ClientOptions,
    ) -> Result<Self, KubeError> {
        match kubeconfig {
            Some(path) => Self::from_kubeconfig(path, options).await,
            None => {
                let config = Config::incluster().map_err(|e| KubeError::Config {
                    path: "(none)".to_owned(),
                    message: format!(
                        "no kubeconfig is configured and the in-cluster service-account environment is not usable: {}",
                        chain(&e)
                    ),
                })?;
                Self::from_config(config, "in-cluster", options)
            }
        }
    }

    /// Builds a client from a kubeconfig file.
    pub async fn from_kubeconfig(path: &Path, options: &ClientOptions) -> Result<Self, KubeError> {
        let shown = path.display().to_string();
        let config_err = |message: String| KubeError::Config {
            path: shown.clone(),
            message,
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| config_err(chain(&e)))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| config_err(chain(&e)))?;
        Self::from_config(config, &shown, options)
    }

    fn from_config(
        mut config: Config,
        source: &str,
        options: &ClientOptions,
    ) -> Result<Self, KubeError> {
        // A certificate-authority that holds no certificate would otherwise surface only as a
        // TLS failure on the first request.
        if config.root_cert.as_ref().is_some_and(Vec::is_empty) {
            return Err(KubeError::Config {
                path: source.to_owned(),
                message: "certificate-authority(-data) holds no PEM certificate".to_owned(),
            });
        }
        config.connect_timeout = Some(options.timeout);
        config.read_timeout = Some(options.timeout);
        config.write_timeout = Some(options.timeout);
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| KubeError::Config {
            path: source.to_owned(),
            message: chain(&e),
        })?;
        Ok(KubeClient {
            client,
            server,
            node_name: options.node_name.clone(),
        })
    }

    /// The API server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn map_err(&self, what: String, e: kube::Error) -> KubeError {
        match e {
            kube::Error::Api(status) => {
                let message = status.message.clone();
                match status.code {
                    401 => KubeError::Unauthorized { what, message },
                    403 => KubeError::Forbidden { what, message },
                    404 => KubeError::NotFound { what, message },
                    409 => KubeError::Conflict { what, message },
                    code => KubeError::Api {
                        what,
                        code,
                        reason: status.reason.clone(),
                        message,
                    },
                }
            }
            e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => KubeError::Unreachable {
                what,
                server: self.server.clone(),
                message: chain(&e),
            },
            other => KubeError::Other {
                what,
                message: chain(&other),
            },
        }
    }
}

/// An error and its sources, `a: b: c`, without repeats (kube nests messages that repeat).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl KubeApi for KubeClient {
    async fn get_pod(
        &self,
        namespace: &str,
        name: &str,
        expected_uid: Option<&str>,
    ) -> Result<Pod, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = api
            .get(name)
            .await
            .map_err(|e| self.map_err(format!("get pod {namespace}/{name}"), e))?;
        check_pod_uid(&pod, expected_uid)?;
        Ok(pod)
    }

    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<NetworkAttachmentDefinition, KubeError> {
        let api: Api<NetworkAttachmentDefinition> = Api::namespaced(self.client.clone(), namespace);
        api.get(name).await.map_err(|e| {
            self.map_err(
                format!("get NetworkAttachmentDefinition {namespace}/{name}"),
                e,
            )
        })
    }

    async fn patch_network_status(
        &self,
        pod: &PodRef,
        statuses: &[NetworkStatus],
    ) -> Result<(), KubeError> {
        let what = format!("patch network-status of pod {pod}");
        let value = plexus_crds::write_network_status(statuses).map_err(|e| KubeError::Other {
            what: what.clone(),
            message: e.to_string(),
        })?;
        let body = json!({"metadata": {"annotations": {NETWORK_STATUS_ANNOTATION: value}}});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        api.patch_status(&pod.name, &params, &Patch::Merge(&body))
            .await
            .map_err(|e| self.map_err(what, e))?;
        Ok(())
    }

    async fn post_event(&self, event: &PodEvent) -> Result<(), KubeError> {
        let ev: Event = event.to_event(self.node_name.as_deref(), Timestamp::now());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &event.pod.namespace);
        api.create(&PostParams::default(), &ev).await.map_err(|e| {
            self.map_err(
                format!("create {} Event for pod {}", event.reason, event.pod),
                e,
            )
        })?;
        Ok(())
    }
}
