//! Retrying a container's orphaned attachments (records moved out of its journal after their
//! delegate DEL failed, see [`super::del`]): their delegate DEL again, in reverse, and each
//! orphan file removed once that succeeded. GC does this for every container not in use; a DEL
//! of the same container does it first.

use std::path::PathBuf;

use crate::journal::{ContainerJournal, Record};

use super::detach::detach_record;

/// Retries the orphans of a locked container selected by `select`. Failed and corrupt orphans
/// stay; returns their failures, each naming the orphan file (also logged).
pub(super) fn retry_orphans(
    cj: &ContainerJournal,
    netns: Option<PathBuf>,
    select: impl Fn(&Record) -> bool,
) -> Vec<String> {
    let entries = match cj.read_orphans() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("{e}");
            return vec![e.to_string()];
        }
    };
    let mut errors = Vec::new();
    for entry in entries.into_iter().rev() {
        let record = match entry.record {
            Ok(r) if select(&r) => r,
            Ok(_) => continue,
            Err(e) => {
                let msg = format!("orphan: {e}: it stays until removed by hand");
                tracing::warn!("{msg}");
                errors.push(msg);
                continue;
            }
        };
        let att = &record.attachment;
        let orphan = entry.path.display();
        match detach_record(&record, netns.clone()) {
            Ok(()) => match cj.remove_orphan(&entry.path) {
                Ok(()) => tracing::info!(
                    network = %att.network,
                    ifname = %att.ifname,
                    %orphan,
                    "orphaned attachment deleted, its orphan file removed"
                ),
                Err(e) => errors.push(e.to_string()),
            },
            Err(f) => {
                tracing::warn!(
                    network = %att.network,
                    ifname = %att.ifname,
                    delegate = att.delegate.first_type(),
                    %orphan,
                    "DEL of an orphaned attachment failed again, the orphan file stays for GC: {}",
                    f.cause
                );
                errors.push(format!(
                    "orphaned network {:?} (interface {}) of container {}: {}; the orphan file {orphan} stays for the next GC",
                    att.network, att.ifname, record.invocation.container_id, f.cause
                ));
            }
        }
    }
    errors
}
