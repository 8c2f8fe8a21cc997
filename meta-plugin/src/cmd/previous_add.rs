//! An ADD of a container the journal already knows.
//!
//! The CNI spec forbids a runtime to ADD the same container twice without a DEL in between, but
//! an ADD that was killed (timeout, OOM, node agent restart) leaves records and no completion
//! mark, and the runtime may then retry the ADD before any DEL. So:
//! - the earlier ADD completed (the journal's completion mark): the new ADD is refused with a
//!   clear error (code 104, the interfaces exist) and changes nothing; the runtime must DEL first;
//! - the earlier ADD was interrupted: what it left is undone first (its records' delegate DELs,
//!   in reverse, and the local-mode status file), then the new ADD proceeds; if that undo fails,
//!   the ADD fails before attaching anything and the records stay for the runtime's DEL.
//!
//! Without this, the new ADD would overwrite the earlier records and leak what they described.

use plexus_delegates::cni::{CniError, ErrorCode, Request};

use crate::config::PlexusConfig;
use crate::journal::ContainerJournal;
use crate::kube::{KubeApi, PodRef};

use super::MetaPlugin;
use super::del::{OnDelFailure, del_records, remove_local_status};

impl<K: KubeApi> MetaPlugin<K> {
    /// Called with the container's journal lock held, before the first record of this ADD.
    pub(super) fn clear_previous_add(
        &self,
        config: &PlexusConfig,
        pod: &PodRef,
        cj: &ContainerJournal,
        req: &Request,
    ) -> Result<(), CniError> {
        let entries = cj.read_all()?;
        if entries.is_empty() {
            return Ok(());
        }
        if cj.is_committed() {
            let attached: Vec<String> = entries
                .iter()
                .map(|e| match &e.record {
                    Ok(r) => format!("{} ({})", r.attachment.ifname, r.attachment.network),
                    Err(_) => e.path.display().to_string(),
                })
                .collect();
            return Err(CniError::new(
                ErrorCode::InterfaceExists,
                format!(
                    "container {} is already attached: {}: an earlier ADD completed and no DEL followed; the runtime must DEL the container before adding it again (nothing was changed)",
                    req.container_id,
                    attached.join(", ")
                ),
            ));
        }
        tracing::warn!(
            records = entries.len(),
            "an earlier ADD of this container was interrupted: undoing what it left first"
        );
        let errors = del_records(cj, req.netns.clone(), |_| true, OnDelFailure::Keep, false)?;
        if !errors.is_empty() {
            return Err(CniError::new(
                ErrorCode::Io,
                format!(
                    "an earlier ADD of container {} was interrupted and what it left cannot be undone, so nothing was attached (a DEL retries): {}",
                    req.container_id,
                    errors.join("; ")
                ),
            ));
        }
        if config.kubeconfig.is_none() {
            remove_local_status(config, pod, &req.container_id);
        }
        Ok(())
    }
}
