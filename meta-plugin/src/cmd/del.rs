//! DEL: the journaled attachments in reverse, never needing the API server, the pod or the NAD.
//! Best effort: every attachment is tried, every failure reported.
//!
//! In every mode a record is removed only after its delegate DEL succeeded. What becomes of the
//! record of an attachment whose delegate DEL failed follows Multus's `retryDeleteOnError`
//! (Multus keeps one cache file of delegates per container, read by DEL):
//! - `false`, the default: Multus removes its cache file after the DEL whatever the delegates
//!   answered, so that a delegate that can never DEL does not keep the sandbox from going away.
//!   Here: the failed record is moved out of the container's journal into the orphan area
//!   (`<cniDir>/orphans/<containerID>/`, see `crate::journal`), the DEL fails naming the
//!   network and the orphan file, and the runtime's retry finds nothing journaled and succeeds.
//!   GC retries orphans (and removes each once its delegate DEL succeeded).
//! - `true`: Multus keeps the cache file when a delegate DEL failed, so the runtime's retry
//!   runs the delegates again. Here: the failed record stays in the container's journal (the
//!   attachments that were deleted are not retried). Multus drops its cache anyway when the
//!   error says "no such file or directory" (the runtime takes that as done and never retries):
//!   here such a record is moved to the orphan area instead, since the delegate may still hold
//!   something that GC can release.
//!
//! A corrupt record cannot be run (there is nothing to run its delegate DEL with); it is
//! reported naming its file and treated like a failed one: moved to the orphan area with
//! `false`, kept with `true`. GC and the cleanup an ADD does of an interrupted earlier ADD keep
//! failed records where they are (nothing waits on them). Every DEL of a container first retries
//! that container's orphans; their failures are logged and leave them for GC, but do not fail
//! the DEL.

use std::path::{Path, PathBuf};
use std::time::Instant;

use plexus_delegates::cni::{CniError, Request};

use crate::config::PlexusConfig;
use crate::journal::{ContainerJournal, Journal, Record};
use crate::kube::PodRef;
use crate::local::StatusRemoval;

use super::detach::detach_record;
use super::orphans::retry_orphans;
use super::{MetaPlugin, finish, parse_config, pod_ref};
use crate::kube::KubeApi;

/// What becomes of the record of an attachment whose delegate DEL failed (or that is corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelFailure {
    /// Keep it where it is, for the next DEL or GC (GC, an ADD undoing an interrupted ADD).
    Keep,
    /// `retryDeleteOnError: true`: keep it in the container's journal for the runtime's retry;
    /// move it to the orphan area when the delegate said "no such file or directory".
    KeepForRetry,
    /// `retryDeleteOnError: false` (Multus's default): move it to the orphan area; the DEL
    /// still fails, its retry succeeds.
    Orphan,
}

impl OnDelFailure {
    /// The policy of a runtime DEL under the configuration's `retryDeleteOnError`.
    pub fn for_runtime_del(config: &PlexusConfig) -> Self {
        if config.retry_delete_on_error {
            OnDelFailure::KeepForRetry
        } else {
            OnDelFailure::Orphan
        }
    }

    /// Whether a failed record goes to the orphan area (`no_such_file`: the delegate said "no
    /// such file or directory"; `None` for a corrupt record).
    fn orphans(self, no_such_file: Option<bool>) -> bool {
        match self {
            OnDelFailure::Keep => false,
            OnDelFailure::Orphan => true,
            OnDelFailure::KeepForRetry => no_such_file == Some(true),
        }
    }
}

/// What a DEL of one container left undone.
#[derive(Debug, Default)]
pub struct DelReport {
    /// The container's journaled attachments that could not be deleted (and its corrupt
    /// records): each names the network and where its record is now.
    pub errors: Vec<String>,
    /// Its orphaned attachments that could not be deleted again (they stay orphans).
    pub orphan_errors: Vec<String>,
}

impl<K: KubeApi> MetaPlugin<K> {
    pub(super) fn cmd_del(&self, req: &Request) -> Result<(), CniError> {
        let started = Instant::now();
        let config = parse_config(req)?;
        let journal = Journal::new(&config.cni_dir);
        let local = config.kubeconfig.is_none();
        if !journal.exists(&req.container_id) && !journal.has_orphans(&req.container_id) {
            // A sandbox Multus set up before the node switched: DEL from Multus's cache file.
            if let Some(errors) = super::multus_cache::del_from_multus_cache(&config, req)? {
                return finish(errors, "DEL");
            }
            tracing::info!("nothing journaled: DEL is a no-op");
            // A DEL that crashed after its journal went may have left the status file.
            if local {
                remove_local_status(&config, &pod_ref(req), &req.container_id);
            }
            tracing::info!(
                duration_us = started.elapsed().as_micros() as u64,
                "DEL done"
            );
            return Ok(());
        }
        let report = del_container(
            &journal,
            &req.container_id,
            req.netns.clone(),
            |_| true,
            OnDelFailure::for_runtime_del(&config),
            config.overlap_cluster_network,
        )?;
        // With nothing journaled any more (all deleted, or orphaned), no retry will come for it.
        if local && !journal.exists(&req.container_id) {
            remove_local_status(&config, &pod_ref(req), &req.container_id);
        }
        tracing::info!(
            failed = report.errors.len(),
            duration_us = started.elapsed().as_micros() as u64,
            "DEL done"
        );
        finish(report.errors, "DEL")
    }
}

/// Local mode keeps network-status in a file instead of on a pod: a finished DEL removes it,
/// when it belongs to this sandbox (a newer sandbox of the same pod may have replaced it).
pub(super) fn remove_local_status(config: &PlexusConfig, pod: &PodRef, container_id: &str) {
    let api = crate::local::LocalApi::from_config(config);
    match api.remove_status(pod, container_id) {
        Ok(StatusRemoval::Removed | StatusRemoval::Absent) => {}
        Ok(StatusRemoval::OwnedBy(owner)) => tracing::info!(
            file = %api.status_path(pod).display(),
            owner,
            "the pod's network-status file belongs to a newer sandbox: left in place"
        ),
        Err(e) => tracing::warn!("{e}"),
    }
}

/// DELs the attachments of one container selected by `select`: first its orphans
/// ([`retry_orphans`]), then its journaled records in reverse ([`del_records`], `together` as
/// there); then removes the journal directory when no record is left.
pub fn del_container(
    journal: &Journal,
    container_id: &str,
    netns: Option<PathBuf>,
    select: impl Fn(&Record) -> bool,
    on_failure: OnDelFailure,
    together: bool,
) -> Result<DelReport, CniError> {
    let cj = journal.lock(container_id)?;
    let orphan_errors = retry_orphans(&cj, netns.clone(), &select);
    let errors = del_records(&cj, netns, &select, on_failure, together)?;
    cj.remove_if_empty()?;
    Ok(DelReport {
        errors,
        orphan_errors,
    })
}

/// DELs the journaled records of a locked container selected by `select`, in reverse, going on
/// after failures; removes each record whose delegate DEL succeeded and handles each failed
/// (or corrupt) one as `on_failure` says. `netns` is the runtime's current view of the sandbox
/// (`None` on containerd's second DEL) and replaces the journaled one. Withdraws the
/// completion mark first when anything is selected. Returns the failures, each naming where
/// its record is now.
///
/// With `together`, the cluster network and the built-in attachments an ADD makes while its
/// plugin runs ([`super::overlap`]: nothing of theirs depends on the others) are deleted last
/// and at the same time, each built-in on its own thread: a link's deletion is mostly the
/// kernel waiting (for RCU), and those waits overlap. Everything after them still goes first,
/// one by one in reverse.
pub(super) fn del_records(
    cj: &ContainerJournal,
    netns: Option<PathBuf>,
    select: impl Fn(&Record) -> bool,
    on_failure: OnDelFailure,
    together: bool,
) -> Result<Vec<String>, CniError> {
    let mut errors = Vec::new();
    let mut selected = Vec::new();
    let mut corrupt = Vec::new();
    for entry in cj.read_all()?.into_iter().rev() {
        match entry.record {
            Ok(record) if select(&record) => selected.push((entry.path, record)),
            Ok(_) => {}
            Err(e) => corrupt.push((entry.path, e)),
        }
    }
    if !selected.is_empty() {
        cj.uncommit()?;
    }
    for (path, e) in corrupt {
        let place = place_failed(cj, &path, on_failure.orphans(None));
        tracing::error!("{e}; {place}");
        errors.push(format!("{e}; {place}"));
    }
    // `selected` is in reverse plan order: the group deleted together is at its end.
    let group = if together {
        deleted_together(&selected)
    } else {
        0
    };
    let group = selected.split_off(selected.len() - group);
    for (path, record) in selected {
        errors.extend(del_one(cj, &path, &record, netns.clone(), on_failure));
    }
    if let Some(((cluster_path, cluster), built_ins)) = group.split_last() {
        let spawned = std::thread::scope(|scope| {
            let span = tracing::Span::current();
            let handles: Vec<_> = built_ins
                .iter()
                .map(|(path, record)| {
                    let (span, netns) = (span.clone(), netns.clone());
                    std::thread::Builder::new()
                        .name("plexus-del".into())
                        .spawn_scoped(scope, move || {
                            span.in_scope(|| del_one(cj, path, record, netns, on_failure))
                        })
                })
                .collect();
            let cluster_error = del_one(cj, cluster_path, cluster, netns.clone(), on_failure);
            let mut out = Vec::new();
            for ((path, record), handle) in built_ins.iter().zip(handles) {
                let error = match handle {
                    Ok(handle) => match handle.join() {
                        Ok(error) => error,
                        Err(panic) => std::panic::resume_unwind(panic),
                    },
                    // No thread to be had: this one after the others.
                    Err(_) => del_one(cj, path, record, netns.clone(), on_failure),
                };
                out.extend(error);
            }
            out.extend(cluster_error);
            out
        });
        errors.extend(spawned);
    }
    Ok(errors)
}

/// How many records at the end of `selected` (reverse plan order) are deleted together: the
/// cluster network (index 0) and the built-ins right after it that an ADD makes while its
/// plugin runs; 0 when the cluster network is not among them.
fn deleted_together(selected: &[(PathBuf, Record)]) -> usize {
    let in_plan_order: Vec<&Record> = selected.iter().rev().map(|(_, r)| r).collect();
    let consecutive_from_zero = in_plan_order
        .iter()
        .enumerate()
        .take_while(|(i, r)| r.index == *i)
        .count();
    let atts: Vec<crate::plan::Attachment> = in_plan_order[..consecutive_from_zero]
        .iter()
        .map(|r| r.attachment.clone())
        .collect();
    match super::overlap::overlapped_count(&atts, true) {
        0 => 0,
        n => n + 1,
    }
}

/// DELs one record: removes it when its delegate DEL succeeded, else places it as
/// `on_failure` says; the failure, naming where the record is now.
fn del_one(
    cj: &ContainerJournal,
    path: &Path,
    record: &Record,
    netns: Option<PathBuf>,
    on_failure: OnDelFailure,
) -> Option<String> {
    let att = &record.attachment;
    let failure = match detach_record(record, netns) {
        Ok(()) => {
            return cj.remove(path).err().map(|e| e.to_string());
        }
        Err(f) => f,
    };
    let place = place_failed(cj, path, on_failure.orphans(Some(failure.no_such_file)));
    tracing::error!(
        network = %att.network,
        ifname = %att.ifname,
        delegate = att.delegate.first_type(),
        "DEL failed: {}; {place}",
        failure.cause
    );
    Some(format!(
        "network {:?} (interface {}): {}; {place}",
        att.network, att.ifname, failure.cause
    ))
}

/// Moves a failed record to the orphan area when `orphan`, else leaves it; says where it is.
fn place_failed(cj: &ContainerJournal, path: &Path, orphan: bool) -> String {
    if !orphan {
        return format!(
            "its record {} is kept in the journal for the next DEL",
            path.display()
        );
    }
    match cj.orphan(path) {
        Ok(moved) => format!(
            "its record is moved to the orphan file {}, which GC retries (whatever the delegate did not delete stays until then)",
            moved.display()
        ),
        Err(e) => format!(
            "its record {} stays in the journal: it cannot be moved to the orphan area: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::exec::Invocation;
    use crate::plan::Attachment;

    fn record(index: usize, conf: Value) -> (PathBuf, Record) {
        let att = Attachment::for_test(
            &format!("n{index}"),
            &format!("net{index}"),
            index == 0,
            conf,
        );
        (
            PathBuf::from(format!("/j/{index}")),
            Record::pending(index, att, Invocation::for_test()),
        )
    }

    #[test]
    fn the_cluster_network_and_the_built_ins_made_alongside_it_are_deleted_together() {
        let bridge = || json!({"type": "bridge"});
        let macvlan = || json!({"type": "macvlan", "master": "eth0"});
        // Reverse plan order, as DEL walks the journal.
        let all = [
            record(3, bridge()),
            record(2, macvlan()),
            record(1, macvlan()),
            record(0, bridge()),
        ];
        // An executed NAD (index 3) ends the group: it goes first, alone.
        assert_eq!(deleted_together(&all), 3);
        // Without the cluster network's record (deleted by an earlier DEL) nothing is grouped.
        assert_eq!(deleted_together(&all[..3]), 0);
        // A gap in the indices ends the group too.
        let gap = [record(2, macvlan()), record(0, bridge())];
        assert_eq!(deleted_together(&gap), 0);
        // A built-in cluster network: one by one.
        let builtin = [record(1, macvlan()), record(0, macvlan())];
        assert_eq!(deleted_together(&builtin), 0);
    }
}
