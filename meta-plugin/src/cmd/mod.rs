//! The verbs of the meta-plugin: ADD, DEL, CHECK, STATUS and GC orchestration over the plan, the
//! journal and the delegates. [`MetaPlugin`] implements [`plexus_delegates::cni::Plugin`], so the
//! binary reuses the shared dispatch (version negotiation, reply in the config's version).
//!
//! One file per verb ([`add`], [`del`], [`check`], [`status`], [`gc`]); the undo of one
//! attachment is [`detach`], of a failed ADD [`rollback`], the retry of orphaned attachments
//! [`orphans`], an ADD of a container already journaled [`previous_add`], the Events
//! [`events`], the network-status entries [`network_status`], the default-route step [`route`],
//! the test-only fault injector [`crash_point`].
//!
//! Kubernetes calls are the only async work: they run on a current-thread tokio runtime owned by
//! the caller (`block_on` on the main thread). Delegates are synchronous and switch namespaces
//! on their own short-lived threads.

mod add;
mod attach;
mod check;
pub mod crash_point;
mod del;
mod detach;
mod events;
mod gc;
mod multus_cache;
pub mod network_status;
mod orphans;
mod overlap;
mod previous_add;
mod rollback;
pub mod route;
mod status;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use plexus_delegates::cni::{CniError, CniResult, ErrorCode, Plugin, Request};

use crate::config::PlexusConfig;
use crate::exec::StepError;
use crate::kube::{KubeApi, PodRef};

pub use del::{DelReport, OnDelFailure, del_container};

/// The meta-plugin: its Kubernetes access (the API server or local mode) and the runtime that
/// drives it.
pub struct MetaPlugin<K> {
    /// `Err` when the API client could not be built; only verbs that need it fail.
    pub kube: Result<K, CniError>,
    pub rt: tokio::runtime::Runtime,
    /// The runtime's CNI config directory (searched for a `clusterNetwork` given by name).
    pub net_dir: PathBuf,
    /// Whether `kube` can GET pods (false in local mode: without runtime-passed annotations the
    /// sandbox gets the cluster network and `defaultNetworks` only).
    pub has_pods: bool,
}

impl<K: KubeApi> Plugin for MetaPlugin<K> {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.cmd_add(req)
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_del(req)
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_check(req)
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_status(req)
    }
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_gc(req)
    }
}

impl<K: KubeApi> MetaPlugin<K> {
    fn kube(&self) -> Result<&K, CniError> {
        self.kube.as_ref().map_err(Clone::clone)
    }
}

/// The pod the runtime names in `CNI_ARGS`.
pub fn pod_ref(req: &Request) -> PodRef {
    PodRef {
        namespace: req
            .args
            .get("K8S_POD_NAMESPACE")
            .unwrap_or_default()
            .to_owned(),
        name: req.args.get("K8S_POD_NAME").unwrap_or_default().to_owned(),
        uid: req
            .args
            .get("K8S_POD_UID")
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
    }
}

fn parse_config(req: &Request) -> Result<PlexusConfig, CniError> {
    PlexusConfig::parse(&req.config).map_err(CniError::from)
}

fn join_step_errors(errors: &[StepError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One error for a verb that went on after failures (DEL, CHECK, GC), listing all of them.
fn finish(errors: Vec<String>, verb: &str) -> Result<(), CniError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::Io,
            format!(
                "{verb} failed for {} attachment(s): {}",
                errors.len(),
                errors.join("; ")
            ),
        ))
    }
}
