//! DEL: the journaled attachments in reverse, never needing the API server, the pod or the NAD.
//! Best effort: every attachment is tried, every failure reported.
//!
//! What becomes of the record of an attachment whose delegate DEL failed follows Multus's
//! `retryDeleteOnError` (Multus keeps one cache file of delegates per container, read by DEL):
//! - `false`, the default: Multus removes the cache file after the DEL whatever the delegates
//!   answered, and returns their errors. Here: every record the DEL tried is removed, the DEL
//!   fails naming what could not be deleted, and the runtime's retry finds nothing journaled and
//!   succeeds: a delegate that can never DEL does not keep the sandbox from going away.
//! - `true`: Multus keeps the cache file when a delegate DEL failed, so the runtime's retry runs
//!   the delegates again, unless the error says "no such file or directory" (the runtime takes
//!   that as done and never retries, so the cache would only be left behind). Here: the record of
//!   each failed attachment is kept (the ones that were deleted are not retried), under the same
//!   exception.
//!
//! A corrupt record is always kept and reported, naming its file: there is nothing to run its
//! delegate DEL with, and the file is what an operator needs. GC and the cleanup an ADD does of
//! an interrupted earlier ADD always keep failed records (nothing waits on them).

use std::path::PathBuf;
use std::time::Instant;

use plexus_delegates::cni::{CniError, Request};

use crate::config::PlexusConfig;
use crate::exec::{self, StepError};
use crate::journal::{ContainerJournal, Journal, Record};
use crate::kube::{KubeApi, PodRef};

use super::{MetaPlugin, finish, join_step_errors, parse_config, pod_ref};

/// What becomes of the record of an attachment whose delegate DEL failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelFailure {
    /// Keep it for the next DEL (GC, an ADD undoing an interrupted ADD).
    Keep,
    /// `retryDeleteOnError: true`: keep it, unless the failure is "no such file or directory".
    KeepUnlessNoSuchFile,
    /// `retryDeleteOnError: false` (Multus's default): remove it; the DEL still fails.
    Drop,
}

impl OnDelFailure {
    /// The policy of a runtime DEL under the configuration's `retryDeleteOnError`.
    pub fn for_runtime_del(config: &PlexusConfig) -> Self {
        if config.retry_delete_on_error {
            OnDelFailure::KeepUnlessNoSuchFile
        } else {
            OnDelFailure::Drop
        }
    }

    /// Whether the record of an attachment whose DEL failed with `errors` is kept.
    fn keeps(self, errors: &[StepError]) -> bool {
        match self {
            OnDelFailure::Keep => true,
            OnDelFailure::Drop => false,
            // Go's ENOENT text is lower case, Rust's capitalised.
            OnDelFailure::KeepUnlessNoSuchFile => !errors.iter().any(|e| {
                e.to_string()
                    .to_ascii_lowercase()
                    .contains("no such file or directory")
            }),
        }
    }
}

impl<K: KubeApi> MetaPlugin<K> {
    pub(super) fn cmd_del(&self, req: &Request) -> Result<(), CniError> {
        let config = parse_config(req)?;
        let journal = Journal::new(&config.cni_dir);
        if !journal.exists(&req.container_id) {
            tracing::info!("nothing journaled: DEL is a no-op");
            return Ok(());
        }
        let errors = del_container(
            &journal,
            &req.container_id,
            req.netns.clone(),
            |_| true,
            OnDelFailure::for_runtime_del(&config),
        )?;
        // With nothing journaled any more (all deleted, or dropped), no retry will come for it.
        if config.kubeconfig.is_none() && !journal.exists(&req.container_id) {
            remove_local_status(&config, &pod_ref(req));
        }
        finish(errors, "DEL")
    }
}

/// Local mode keeps network-status in a file instead of on a pod: a finished DEL removes it, so
/// nothing of the sandbox is left.
pub(super) fn remove_local_status(config: &PlexusConfig, pod: &PodRef) {
    let path = crate::local::LocalApi::from_config(config).status_path(pod);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
    }
}

/// DELs the journaled attachments of one container selected by `select`, in reverse, going on
/// after failures ([`del_records`]), then removes the directory when no record is left.
/// Returns the failures (a corrupt record is one, naming its file).
pub fn del_container(
    journal: &Journal,
    container_id: &str,
    netns: Option<PathBuf>,
    select: impl Fn(&Record) -> bool,
    on_failure: OnDelFailure,
) -> Result<Vec<String>, CniError> {
    let cj = journal.lock(container_id)?;
    let errors = del_records(&cj, netns, select, on_failure)?;
    cj.remove_if_empty()?;
    Ok(errors)
}

/// DELs the records of a locked container selected by `select`, in reverse, going on after
/// failures; removes each record whose delegate DEL succeeded, and each failed one that
/// `on_failure` does not keep. `netns` is the runtime's current view of the sandbox (`None` on
/// containerd's second DEL) and replaces the journaled one. Withdraws the completion mark
/// first when anything is selected. Returns the failures.
pub(super) fn del_records(
    cj: &ContainerJournal,
    netns: Option<PathBuf>,
    select: impl Fn(&Record) -> bool,
    on_failure: OnDelFailure,
) -> Result<Vec<String>, CniError> {
    let mut errors = Vec::new();
    let mut selected = Vec::new();
    for entry in cj.read_all()?.into_iter().rev() {
        match entry.record {
            Ok(record) if select(&record) => selected.push((entry.path, record)),
            Ok(_) => {}
            Err(e) => {
                tracing::error!("{e}");
                errors.push(e.to_string());
            }
        }
    }
    if !selected.is_empty() {
        cj.uncommit()?;
    }
    for (path, record) in selected {
        let att = &record.attachment;
        let mut inv = record.invocation.clone();
        inv.netns = netns.clone();
        let result = record.cni_result().ok().flatten();
        let t = Instant::now();
        let errs = exec::del(att, &inv, result.as_ref());
        if errs.is_empty() {
            tracing::info!(
                network = %att.network,
                ifname = %att.ifname,
                delegate = att.delegate.first_type(),
                duration_us = t.elapsed().as_micros() as u64,
                "detached"
            );
            if let Err(e) = cj.remove(&path) {
                errors.push(e.to_string());
            }
            continue;
        }
        let cause = join_step_errors(&errs);
        errors.push(format!(
            "network {:?} (interface {}): {cause}",
            att.network, att.ifname
        ));
        if on_failure.keeps(&errs) {
            tracing::error!(network = %att.network, ifname = %att.ifname, delegate = att.delegate.first_type(), record = %path.display(), "DEL failed, the record is kept for the next DEL: {cause}");
            continue;
        }
        tracing::error!(network = %att.network, ifname = %att.ifname, delegate = att.delegate.first_type(), record = %path.display(), "DEL failed and its record is dropped (retryDeleteOnError is off, as in Multus, or the failure is \"no such file or directory\"): whatever the delegate did not delete is left behind: {cause}");
        if let Err(e) = cj.remove(&path) {
            errors.push(e.to_string());
        }
    }
    Ok(errors)
}
