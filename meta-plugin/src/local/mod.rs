//! Local mode: Plexus without a Kubernetes API server (no `kubeconfig`), the embedded default.
//!
//! [`LocalApi`] implements [`KubeApi`] from files:
//! - NADs come from `nadDir` ([`crate::config::DEFAULT_NAD_DIR`]): `*.yaml`/`*.yml`/`*.json`
//!   manifests exactly as `kubectl apply -f` takes them (see [`manifests`]); read once, on the
//!   first `get_nad`, so a DEL (which never asks for a NAD) does not depend on them.
//! - There are no pods: [`LocalApi::get_pod`](KubeApi::get_pod) is an error saying so. The
//!   networks of a sandbox come from the pod annotations the runtime passes in runtimeConfig;
//!   when it passes none, the caller hands `build_plan` `pod_annotations: Some(&Map::new())`
//!   (see [`LocalApi::has_pods`]), so the sandbox gets the cluster network and `defaultNetworks`.
//! - network-status is written to `<cniDir>/status/<namespace>_<name>.json` (the annotation's
//!   bytes, temp file + rename; not fsynced, see `status::atomic_write`). The sandbox that
//!   writes it records its container id beside it first ([`LocalApi::claim_status`],
//!   `<namespace>_<name>.owner`), and a DEL removes it only when it is that sandbox's
//!   ([`LocalApi::remove_status`]; see [`owner`]).
//! - Events are appended, one line each, to `<cniDir>/events.log`.

pub mod manifests;
pub mod owner;
mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Pod;
use plexus_crds::{NetworkAttachmentDefinition, NetworkStatus};

use crate::config::PlexusConfig;
use crate::kube::{KubeApi, KubeError, PodEvent, PodRef};

pub use manifests::{ManifestError, load_nad_dir};
pub use owner::StatusRemoval;
pub(crate) use status::{EVENTS_LOG, STATUS_DIR};

/// NADs by (namespace, name), or why the directory could not be read.
type Index = Result<HashMap<(String, String), NetworkAttachmentDefinition>, ManifestError>;

/// The [`KubeApi`] of local mode.
#[derive(Debug)]
pub struct LocalApi {
    nad_dir: PathBuf,
    cni_dir: PathBuf,
    nads: OnceLock<Index>,
}

impl LocalApi {
    /// A local API serving the NAD manifests of `nad_dir` and writing state under `cni_dir`.
    /// Nothing is read yet.
    pub fn new(nad_dir: impl Into<PathBuf>, cni_dir: impl Into<PathBuf>) -> Self {
        LocalApi {
            nad_dir: nad_dir.into(),
            cni_dir: cni_dir.into(),
            nads: OnceLock::new(),
        }
    }

    /// From the configuration's `nadDir` and `cniDir`.
    pub fn from_config(config: &PlexusConfig) -> Self {
        Self::new(&config.nad_dir, &config.cni_dir)
    }

    /// Always `false`: local mode has no pods to GET. When the runtime passed no pod annotations,
    /// give `build_plan` `pod_annotations: Some(&Map::new())` instead of `None`.
    pub fn has_pods(&self) -> bool {
        false
    }

    /// The NAD manifest directory.
    pub fn nad_dir(&self) -> &Path {
        &self.nad_dir
    }

    /// Where the network-status of `pod` is written: `<cniDir>/status/<namespace>_<name>.json`.
    pub fn status_path(&self, pod: &PodRef) -> PathBuf {
        status::status_path(&self.cni_dir, pod)
    }

    /// Where the container id owning the status file of `pod` is recorded:
    /// `<cniDir>/status/<namespace>_<name>.owner`.
    pub fn status_owner_path(&self, pod: &PodRef) -> PathBuf {
        owner::owner_path(&self.cni_dir, pod)
    }

    /// Records the sandbox `container_id` as the owner of the status file of `pod`; an ADD does
    /// this before it writes network-status.
    pub fn claim_status(&self, pod: &PodRef, container_id: &str) -> Result<(), KubeError> {
        owner::claim(&self.cni_dir, pod, container_id)
    }

    /// DEL: removes the status file of `pod` when the sandbox `container_id` owns it.
    pub fn remove_status(
        &self,
        pod: &PodRef,
        container_id: &str,
    ) -> Result<StatusRemoval, KubeError> {
        owner::remove_if_owned(&self.cni_dir, pod, container_id)
    }

    /// Where Events are appended: `<cniDir>/events.log`.
    pub fn events_path(&self) -> PathBuf {
        self.cni_dir.join(status::EVENTS_LOG)
    }

    fn index(&self) -> &Index {
        self.nads.get_or_init(|| load_nad_dir(&self.nad_dir))
    }
}

impl KubeApi for LocalApi {
    async fn get_pod(
        &self,
        namespace: &str,
        name: &str,
        _expected_uid: Option<&str>,
    ) -> Result<Pod, KubeError> {
        Err(KubeError::Other {
            what: format!("get pod {namespace}/{name}"),
            message: format!(
                "local mode (no \"kubeconfig\") has no API server to read the pod from: the runtime must pass the pod annotations in runtimeConfig[{:?}] (declare that capability in the config), or the sandbox gets only the cluster network and defaultNetworks",
                crate::plan::POD_ANNOTATIONS_KEY
            ),
        })
    }

    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<NetworkAttachmentDefinition, KubeError> {
        let what = format!("get NetworkAttachmentDefinition {namespace}/{name}");
        match self.index() {
            Err(e) if e.is_io() => Err(KubeError::Other {
                what,
                message: format!("local mode: {e}"),
            }),
            Err(e) => Err(KubeError::InvalidManifest {
                what,
                message: format!("local mode: {e}"),
            }),
            Ok(nads) => nads
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .ok_or_else(|| KubeError::NotFound {
                    what,
                    message: format!(
                        "local mode: no manifest in {} defines it",
                        self.nad_dir.display()
                    ),
                }),
        }
    }

    async fn patch_network_status(
        &self,
        pod: &PodRef,
        statuses: &[NetworkStatus],
    ) -> Result<(), KubeError> {
        status::write_status(&self.cni_dir, pod, statuses)
    }

    async fn post_event(&self, event: &PodEvent) -> Result<(), KubeError> {
        status::append_event(&self.cni_dir, event)
    }
}

#[cfg(test)]
mod tests;
