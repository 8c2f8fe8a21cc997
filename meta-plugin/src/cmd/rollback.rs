//! Undoing a failed ADD: the failing attachment (best effort), then the attached ones in reverse.
//! A record goes only when its delegate DEL succeeded (and its device-info file could be
//! removed), so whatever the rollback could not undo is still journaled for the runtime's DEL. In local
//! mode, a rollback that undid everything also removes the pod's status file when this sandbox
//! wrote it (a failure after network-status was written).

use std::path::PathBuf;

use plexus_delegates::cni::{CniError, CniResult};

use crate::config::PlexusConfig;
use crate::journal::{ContainerJournal, Record};
use crate::kube::{KubeApi, PodRef};
use crate::plan::Attachment;

use super::MetaPlugin;
use super::del::remove_local_status;
use super::detach::{detach, detach_record};

/// An attachment that was added: its record (file and content) and result.
pub(super) struct Done {
    pub path: PathBuf,
    pub record: Record,
    pub result: CniResult,
}

/// Why an ADD failed: the attachment it was at, the delegate (or step) and the cause.
pub(super) struct Failure<'a> {
    pub att: &'a Attachment,
    pub delegate: &'a str,
    pub cause: CniError,
}

impl<K: KubeApi> MetaPlugin<K> {
    /// [`Self::fail_add`] for a step after every attachment was added (network-status, the
    /// completion mark): the failure is reported on the first attachment (the cluster network).
    pub(super) fn fail_add_after_attaching(
        &self,
        config: &PlexusConfig,
        pod: &PodRef,
        cj: &ContainerJournal,
        done: Vec<Done>,
        step: &str,
        cause: CniError,
    ) -> CniError {
        let Some(att) = done.first().map(|d| d.record.attachment.clone()) else {
            return cause;
        };
        let failure = Failure {
            att: &att,
            delegate: step,
            cause,
        };
        self.fail_add(config, pod, cj, done, Vec::new(), failure)
    }

    /// Undo a failed ADD: `failing` (the attachments whose delegate ADD failed, journaled but not
    /// in `done`; more than one only when attachments overlapped), then `done` in reverse;
    /// records go only when their DEL succeeded. Posts the
    /// Warning Event and returns one error naming the network, the delegate and the cause.
    pub(super) fn fail_add(
        &self,
        config: &PlexusConfig,
        pod: &PodRef,
        cj: &ContainerJournal,
        done: Vec<Done>,
        failing: Vec<(PathBuf, Record)>,
        failure: Failure<'_>,
    ) -> CniError {
        let Failure {
            att,
            delegate,
            cause,
        } = failure;
        tracing::error!(network = %att.network, ifname = %att.ifname, delegate, "ADD failed: {cause}; rolling back");
        let mut undo_errors = Vec::new();
        for (path, record) in failing.into_iter().rev() {
            match detach_record(&record, record.invocation.netns.clone()) {
                Ok(()) => {
                    if let Err(e) = cj.remove(&path) {
                        undo_errors.push(e.to_string());
                    }
                }
                Err(f) => {
                    let network = &record.attachment.network;
                    tracing::warn!(%network, "rollback of a failing attachment: {}", f.cause);
                }
            }
        }
        for d in done.into_iter().rev() {
            let a = &d.record.attachment;
            match detach(&d.record, &d.record.invocation, Some(&d.result)) {
                Ok(()) => {
                    if let Err(e) = cj.remove(&d.path) {
                        undo_errors.push(e.to_string());
                    }
                    tracing::info!(network = %a.network, ifname = %a.ifname, "rolled back");
                }
                Err(f) => {
                    undo_errors.push(format!("undoing {} ({}): {}", a.network, a.ifname, f.cause))
                }
            }
        }
        match cj.remove_if_empty() {
            Ok(true) if config.kubeconfig.is_none() => {
                remove_local_status(config, pod, cj.container_id());
            }
            Ok(_) => {}
            Err(e) => undo_errors.push(e.to_string()),
        }
        let msg = format!(
            "network {:?} (interface {}), delegate {:?}: {}",
            att.network, att.ifname, delegate, cause.msg
        );
        self.warn_add_failed(config, pod, &att.network, &att.ifname, delegate, &cause.msg);
        let mut details = cause.details.clone();
        if !undo_errors.is_empty() {
            if !details.is_empty() {
                details.push_str("; ");
            }
            details.push_str(&format!("rollback incomplete: {}", undo_errors.join("; ")));
        }
        CniError {
            code: cause.code,
            msg,
            details,
        }
    }
}
