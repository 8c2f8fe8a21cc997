//! Undoing one journaled attachment: its delegate DEL, then the removal of its device-info file
//! (whatever the delegate answered, as Multus does: the file only describes the device to
//! network-status and to the delegate's ADD). Shared by DEL, GC, the orphan retry and the
//! rollback of a failed ADD; the caller decides what becomes of the record.

use std::path::{Path, PathBuf};
use std::time::Instant;

use plexus_delegates::cni::CniResult;

use crate::exec::{self, Invocation};
use crate::journal::Record;
use crate::plan::Attachment;

use super::join_step_errors;

/// Why an attachment could not be undone.
#[derive(Debug)]
pub(super) struct DetachFailure {
    /// The delegate's errors and the device-info file's, joined.
    pub cause: String,
    /// The delegate DEL itself failed (else only the device-info file could not be removed).
    pub delegate_failed: bool,
    /// The delegate said "no such file or directory" (Multus's `retryDeleteOnError` exception;
    /// Go's ENOENT text is lower case, Rust's capitalised).
    pub no_such_file: bool,
}

/// Runs the delegate DEL of `record` with `inv` and `result` as prevResult, then removes the
/// attachment's device-info file. A file that cannot be removed fails the attachment even when
/// the delegate succeeded: the record must stay so that a later DEL or GC removes it.
pub(super) fn detach(
    record: &Record,
    inv: &Invocation,
    result: Option<&CniResult>,
) -> Result<(), DetachFailure> {
    detach_attachment(
        &record.attachment,
        record.device_info_file.as_deref(),
        inv,
        result,
    )
}

/// [`detach`] of a journaled record with its journaled result as prevResult, its invocation's
/// netns replaced by `netns` (the runtime's current view of the sandbox, `None` once it is gone).
pub(super) fn detach_record(record: &Record, netns: Option<PathBuf>) -> Result<(), DetachFailure> {
    let mut inv = record.invocation.clone();
    inv.netns = netns;
    let result = record.cni_result().ok().flatten();
    detach(record, &inv, result.as_ref())
}

/// [`detach`] of an attachment known by its parts (the DEL from Multus's cache has no record).
pub(super) fn detach_attachment(
    att: &Attachment,
    device_info_file: Option<&Path>,
    inv: &Invocation,
    result: Option<&CniResult>,
) -> Result<(), DetachFailure> {
    let t = Instant::now();
    let errs = exec::del(att, inv, result);
    let devinfo = device_info_file
        .map(crate::devinfo::remove_file)
        .transpose()
        .err();
    if errs.is_empty() && devinfo.is_none() {
        tracing::info!(
            network = %att.network,
            ifname = %att.ifname,
            delegate = att.delegate.first_type(),
            duration_us = t.elapsed().as_micros() as u64,
            "detached"
        );
        return Ok(());
    }
    let mut causes = Vec::new();
    if !errs.is_empty() {
        causes.push(join_step_errors(&errs));
    }
    causes.extend(devinfo.map(|e| e.to_string()));
    Err(DetachFailure {
        cause: causes.join("; "),
        delegate_failed: !errs.is_empty(),
        no_such_file: errs.iter().any(|e| {
            e.to_string()
                .to_ascii_lowercase()
                .contains("no such file or directory")
        }),
    })
}
