//! CHECK: every journaled attachment, not only the cluster network; delegates older than 0.4.0
//! have no CHECK and are skipped, as libcni does.

use std::time::Instant;

use plexus_delegates::cni::{CniError, CniResult, CniVersion, ErrorCode, Request};

use crate::exec;
use crate::journal::{Journal, State};
use crate::kube::KubeApi;

use super::{MetaPlugin, finish, parse_config};

impl<K: KubeApi> MetaPlugin<K> {
    pub(super) fn cmd_check(&self, req: &Request) -> Result<(), CniError> {
        let config = parse_config(req)?;
        let journal = Journal::new(&config.cni_dir);
        if !journal.exists(&req.container_id) {
            return Err(CniError::new(
                ErrorCode::UnknownContainer,
                format!("nothing is journaled for container {}", req.container_id),
            ));
        }
        let cj = journal.lock(&req.container_id)?;
        let mut errors = Vec::new();
        if !cj.is_committed() {
            errors.push(format!(
                "the ADD of container {} did not complete",
                req.container_id
            ));
        }
        for entry in cj.read_all()? {
            let record = match entry.record {
                Ok(r) => r,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let att = &record.attachment;
            if record.state != State::Added {
                errors.push(format!(
                    "{} ({}): the ADD did not complete",
                    att.network, att.ifname
                ));
                continue;
            }
            match exec::delegate_version(att) {
                Ok(v) if v < CniVersion::V0_4_0 => {
                    tracing::debug!(network = %att.network, "CHECK skipped: delegate version {v}");
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    errors.push(format!("{} ({}): {e}", att.network, att.ifname));
                    continue;
                }
            }
            let mut inv = record.invocation.clone();
            if req.netns.is_some() {
                inv.netns = req.netns.clone();
            }
            let result = match record.cni_result() {
                Ok(Some(r)) => r,
                Ok(None) => CniResult::default(),
                Err(e) => {
                    errors.push(format!("{} ({}): {e}", att.network, att.ifname));
                    continue;
                }
            };
            let t = Instant::now();
            match exec::check(att, &inv, &result) {
                Ok(()) => {
                    tracing::info!(network = %att.network, ifname = %att.ifname, duration_us = t.elapsed().as_micros() as u64, "checked")
                }
                Err(e) => errors.push(format!(
                    "network {:?} (interface {}): {e}",
                    att.network, att.ifname
                )),
            }
        }
        finish(errors, "CHECK")
    }
}
