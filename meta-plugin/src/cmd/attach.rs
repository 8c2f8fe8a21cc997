//! Making the journaled attachments of an ADD: one [`Step`] per attachment (its device-info
//! file, the delegate ADD, the record update), one after another, except that the built-ins
//! [`super::overlap`] allows are made on a second, low-priority thread while the cluster
//! network's plugin runs. [`Made`] says how each step ended; the caller rolls back on any failure.

use std::path::PathBuf;
use std::time::Instant;

use plexus_delegates::cni::exec::Started;
use plexus_delegates::cni::{CniError, CniVersion};

use crate::devinfo::DeviceInfoDir;
use crate::exec;
use crate::journal::{ContainerJournal, Record, State};

use super::crash_point;
use super::rollback::Done;

/// A journaled attachment whose delegate has not run yet.
pub(super) struct Step {
    pub path: PathBuf,
    pub record: Record,
    pub version: CniVersion,
    /// Its first plugin, already started while the record was written ([`exec::prestart`]).
    pub prestarted: Option<Started>,
}

/// How one step ended.
pub(super) enum Made {
    Added(Done),
    /// The delegate ADD failed; the record is still pending (the rollback's DEL of it is best
    /// effort).
    Failed {
        path: PathBuf,
        record: Record,
        delegate: String,
        cause: CniError,
    },
    /// The delegate ADD succeeded but the record could not be updated.
    Unrecorded {
        done: Done,
        cause: CniError,
    },
}

impl Made {
    fn index(&self) -> usize {
        match self {
            Made::Added(d) | Made::Unrecorded { done: d, .. } => d.record.index,
            Made::Failed { record, .. } => record.index,
        }
    }

    fn failed(&self) -> bool {
        !matches!(self, Made::Added(_))
    }
}

/// What the steps share.
pub(super) struct Attacher<'a> {
    pub cj: &'a ContainerJournal,
    pub devinfo: &'a DeviceInfoDir,
    pub container_id: &'a str,
}

impl Attacher<'_> {
    /// One attachment: its device-info file, the delegate ADD, the record update.
    pub fn make(&self, step: Step) -> Made {
        let Step {
            path,
            mut record,
            version,
            prestarted,
        } = step;
        let index = record.index;
        let att = &record.attachment;
        crash_point::reached_indexed("pending", index);
        // As in Multus, a device-info file that cannot be copied costs network-status its
        // device-info, not the attachment.
        if let Err(e) = self.devinfo.write_for_attachment(self.container_id, att) {
            tracing::warn!(network = %att.network, ifname = %att.ifname, "{e}: no device-info for network-status");
        }
        let t = Instant::now();
        let result = match exec::add(att, &record.invocation, prestarted) {
            Ok((result, _)) => result,
            Err(step) => {
                return Made::Failed {
                    path,
                    record,
                    delegate: step.plugin,
                    cause: step.error,
                };
            }
        };
        tracing::info!(
            network = %att.network,
            ifname = %att.ifname,
            delegate = att.delegate.first_type(),
            duration_us = t.elapsed().as_micros() as u64,
            "attached"
        );
        crash_point::reached_indexed("delegate-added", index);
        record.state = State::Added;
        record.result = Some(result.to_json(version));
        let written = self.cj.update(&record);
        let done = Done {
            path,
            record,
            result,
        };
        match written {
            Ok(_) => {
                crash_point::reached_indexed("recorded", index);
                Made::Added(done)
            }
            Err(e) => Made::Unrecorded {
                done,
                cause: e.into(),
            },
        }
    }

    /// Journals the pending records (durably, as one batch) and makes the attachments:
    /// `overlapped` of them (after the first) while the first one's plugin runs, the rest one by
    /// one; stops at the first failure.
    pub fn run(&self, mut pending: Vec<(Record, CniVersion)>, overlapped: usize) -> Ran {
        let mut ran = Ran::default();
        // The first attachment's plugin starts while its record is written; it acts only once
        // given its configuration, after the record is durable.
        let prestarted = pending
            .first()
            .and_then(|(r, _)| exec::prestart(&r.attachment, &r.invocation));
        if overlapped == 0 || pending.len() < 2 {
            match self.journal(pending) {
                Ok(mut steps) => {
                    if let Some(first) = steps.first_mut() {
                        first.prestarted = prestarted;
                    }
                    ran.not_started = self.make_in_order(steps, &mut ran.made);
                }
                Err(f) => ran.journal_failure = Some(f),
            }
            return ran;
        }
        let others = pending.split_off(1);
        let cluster = match self.journal(pending) {
            Ok(mut steps) => Step {
                prestarted,
                ..steps.remove(0)
            },
            Err(f) => {
                ran.journal_failure = Some(f);
                return ran;
            }
        };
        let (cluster_made, meanwhile) = self.make_alongside(cluster, || {
            let mut made = Vec::new();
            match self.journal(others) {
                Ok(mut steps) => {
                    let after = steps.split_off(overlapped.min(steps.len()));
                    let mut left = self.make_in_order(steps, &mut made);
                    left.extend(after);
                    (made, left, None)
                }
                Err(f) => (made, Vec::new(), Some(f)),
            }
        });
        let (made, left, journal_failure) = meanwhile;
        ran.made.push(cluster_made);
        ran.made.extend(made);
        ran.journal_failure = journal_failure;
        if ran.made.iter().any(Made::failed) || ran.journal_failure.is_some() {
            ran.not_started = left;
        } else {
            ran.not_started = self.make_in_order(left, &mut ran.made);
        }
        ran
    }

    /// Writes the pending records of `batch` durably; their steps, or the failure (with the
    /// index of the batch's first attachment). Nothing of a failed batch stays journaled.
    fn journal(&self, batch: Vec<(Record, CniVersion)>) -> Result<Vec<Step>, (usize, CniError)> {
        let Some(first) = batch.first().map(|(r, _)| r.index) else {
            return Ok(Vec::new());
        };
        let t = Instant::now();
        let (records, versions): (Vec<Record>, Vec<CniVersion>) = batch.into_iter().unzip();
        let paths = self
            .cj
            .write_pending(&records)
            .map_err(|e| (first, e.into()))?;
        tracing::info!(
            records = records.len(),
            duration_us = t.elapsed().as_micros() as u64,
            "journaled"
        );
        Ok(paths
            .into_iter()
            .zip(records)
            .zip(versions)
            .map(|((path, record), version)| Step {
                path,
                record,
                version,
                prestarted: None,
            })
            .collect())
    }

    /// Makes `steps` in order, stopping at the first failure; pushes how each made one ended
    /// and returns the steps never started.
    fn make_in_order(&self, steps: Vec<Step>, made: &mut Vec<Made>) -> Vec<Step> {
        let mut steps = steps.into_iter();
        for step in steps.by_ref() {
            let m = self.make(step);
            let failed = m.failed();
            made.push(m);
            if failed {
                break;
            }
        }
        steps.collect()
    }

    /// Runs `meanwhile` on a second thread at the lowest CPU priority while `cluster` is made
    /// on this one; waits for both. The cluster network's plugin is the ADD's critical path:
    /// on a busy node (or one with two cores) the work done meanwhile must not slow it down.
    fn make_alongside<T: Send>(
        &self,
        cluster: Step,
        meanwhile: impl FnOnce() -> T + Send,
    ) -> (Made, T) {
        let span = tracing::Span::current();
        // The work stays here until the thread takes it, so it is still at hand when no thread
        // can be started.
        let slot = std::sync::Mutex::new(Some(meanwhile));
        let take = || slot.lock().ok().and_then(|mut s| s.take());
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("plexus-meanwhile".into())
                .spawn_scoped(scope, || {
                    lower_priority();
                    span.in_scope(|| take().map(|work| work()))
                });
            let (made, other) = match handle {
                Ok(handle) => {
                    let made = self.make(cluster);
                    match handle.join() {
                        Ok(other) => (made, other),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot start a thread for the attachments made meanwhile ({e}); attaching one by one"
                    );
                    let made = self.make(cluster);
                    (made, take().map(|work| work()))
                }
            };
            match other {
                Some(other) => (made, other),
                None => unreachable!("the work done meanwhile is taken exactly once"),
            }
        })
    }
}

/// Gives the calling thread (and the threads it starts, which inherit it) the lowest CPU
/// priority (nice 19). Best effort: at worst the work competes with the cluster network's plugin.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
        tracing::debug!("cannot lower the priority of the attachments made meanwhile: {e}");
    }
}

/// What [`Attacher::run`] did.
#[derive(Default)]
pub(super) struct Ran {
    /// How each started step ended (in the order they ended).
    pub made: Vec<Made>,
    /// The steps never started (after a failure).
    pub not_started: Vec<Step>,
    /// A batch of pending records that could not be written: the index of its first attachment
    /// and why.
    pub journal_failure: Option<(usize, CniError)>,
}

/// The outcome of all steps: the attachments added (in plan order) and, when something failed,
/// the failed ones (pending records, DEL best effort) and the failure to report: the one
/// earliest in the plan.
pub(super) struct Outcome {
    pub done: Vec<Done>,
    pub failing: Vec<(PathBuf, Record)>,
    pub failure: Option<(usize, String, CniError)>,
}

/// Sorts how the steps ended (and a journal failure) into an [`Outcome`].
pub(super) fn outcome(mut made: Vec<Made>, journal_failure: Option<(usize, CniError)>) -> Outcome {
    made.sort_by_key(Made::index);
    let mut out = Outcome {
        done: Vec::with_capacity(made.len()),
        failing: Vec::new(),
        failure: None,
    };
    for m in made {
        let index = m.index();
        let failure = match m {
            Made::Added(done) => {
                out.done.push(done);
                None
            }
            Made::Unrecorded { done, cause } => {
                out.done.push(done);
                Some(("journal".to_owned(), cause))
            }
            Made::Failed {
                path,
                record,
                delegate,
                cause,
            } => {
                out.failing.push((path, record));
                Some((delegate, cause))
            }
        };
        if let (None, Some((delegate, cause))) = (&out.failure, failure) {
            out.failure = Some((index, delegate, cause));
        }
    }
    if let Some((index, cause)) = journal_failure
        && out.failure.as_ref().is_none_or(|(i, _, _)| index < *i)
    {
        out.failure = Some((index, "journal".to_owned(), cause));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Invocation;
    use crate::plan::Attachment;
    use plexus_delegates::cni::CniResult;
    use serde_json::json;

    fn record(index: usize) -> Record {
        let att = Attachment::for_test(
            &format!("n{index}"),
            &format!("net{index}"),
            index == 0,
            json!({"type": "bridge"}),
        );
        Record::pending(index, att, Invocation::for_test())
    }

    fn added(index: usize) -> Made {
        Made::Added(Done {
            path: PathBuf::from(format!("/j/{index}")),
            record: record(index),
            result: CniResult::default(),
        })
    }

    fn failed(index: usize, why: &str) -> Made {
        Made::Failed {
            path: PathBuf::from(format!("/j/{index}")),
            record: record(index),
            delegate: "bridge".into(),
            cause: CniError::internal(why.to_owned()),
        }
    }

    #[test]
    fn outcome_is_in_plan_order_and_reports_the_earliest_failure() {
        // The overlapped attachments finished before the cluster network (index 0).
        let out = outcome(
            vec![added(2), failed(1, "second"), failed(0, "first")],
            None,
        );
        assert_eq!(
            out.done.iter().map(|d| d.record.index).collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(
            out.failing.iter().map(|f| f.1.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let (index, delegate, cause) = out.failure.expect("a failure");
        assert_eq!((index, delegate.as_str()), (0, "bridge"));
        assert!(cause.msg.contains("first"));

        let out = outcome(vec![added(1), added(0)], None);
        assert!(out.failure.is_none() && out.failing.is_empty());
        assert_eq!(
            out.done.iter().map(|d| d.record.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }
}
