//! GC: deletes the journaled and the orphaned attachments the runtime's
//! `cni.dev/valid-attachments` no longer lists (an orphan goes once its delegate DEL succeeds),
//! then forwards GC (with that list) to the cluster network. Failures are kept where they are
//! and reported.

use plexus_delegates::cni::netconf::NetConf;
use plexus_delegates::cni::{CniError, Command, Request};
use serde_json::{Map, Value};

use crate::journal::{Journal, Record};
use crate::kube::KubeApi;

use super::del::OnDelFailure;
use super::{MetaPlugin, del_container, finish, parse_config};

/// The stdin key of GC's list of attachments still in use.
const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";

impl<K: KubeApi> MetaPlugin<K> {
    pub(super) fn cmd_gc(&self, req: &Request) -> Result<(), CniError> {
        let config = parse_config(req)?;
        let mut errors = Vec::new();
        let header = NetConf::parse(&req.config)?;
        let valid = header.valid_attachments.clone().unwrap_or_default();
        let journal = Journal::new(&config.cni_dir);
        let mut containers = journal.containers()?;
        containers.extend(journal.orphaned_containers()?);
        containers.sort();
        containers.dedup();
        for container in containers {
            let keep = |r: &Record| {
                valid.iter().any(|v| {
                    v.container_id == r.invocation.container_id
                        && v.ifname == r.invocation.runtime_ifname
                })
            };
            match del_container(
                &journal,
                &container,
                None,
                |r| !keep(r),
                OnDelFailure::Keep,
                false,
            ) {
                Ok(report) => {
                    errors.extend(report.orphan_errors);
                    errors.extend(report.errors);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let raw: Value =
            serde_json::from_slice(&req.config).map_err(|e| CniError::decode(e.to_string()))?;
        let list = raw
            .get(VALID_ATTACHMENTS)
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        let mut extra = Map::new();
        extra.insert(VALID_ATTACHMENTS.to_owned(), list);
        if let Err(e) = self.forward_to_cluster(req, &config, Command::Gc, &extra) {
            errors.push(e.to_string());
        }
        finish(errors, Command::Gc.as_str())
    }
}
