//! STATUS, and what STATUS and GC share: forwarding the verb to the cluster network (the
//! meta-plugin's readiness is the cluster network's).

use plexus_delegates::cni::{CniError, Command, ErrorCode, Request};
use serde_json::{Map, Value};

use crate::config::PlexusConfig;
use crate::exec::{self, Invocation};
use crate::kube::KubeApi;
use crate::plan::{Attachment, Delegate};

use super::{MetaPlugin, parse_config};

impl<K: KubeApi> MetaPlugin<K> {
    /// STATUS reflects the cluster network's own STATUS code (50, 51, ...).
    pub(super) fn cmd_status(&self, req: &Request) -> Result<(), CniError> {
        let config = parse_config(req)?;
        self.forward_to_cluster(req, &config, Command::Status, &Map::new())
    }

    /// Runs `verb` (STATUS or GC) on the cluster network; `extra` keys are added to its stdin.
    /// The error keeps the cluster network's code; a cluster network that cannot be resolved is
    /// "plugin not available" (50).
    pub(super) fn forward_to_cluster(
        &self,
        req: &Request,
        config: &PlexusConfig,
        verb: Command,
        extra: &Map<String, Value>,
    ) -> Result<(), CniError> {
        let kube = self.kube().ok();
        let dirs = config.search_dirs(self.net_dir.clone());
        let cluster = self
            .rt
            .block_on(crate::config::network::resolve_cluster_network(
                &config.cluster_network,
                &config.multus_namespace,
                &dirs,
                &config.plugin_type,
                kube,
            ))
            .map_err(|e| {
                CniError::new(
                    ErrorCode::PluginNotAvailable,
                    format!("cluster network: {e}"),
                )
            })?;
        let att = Attachment {
            network: cluster.status_name(),
            ifname: String::new(),
            is_cluster: true,
            delegate: Delegate::from(cluster.config().clone()),
            runtime_config: Map::new(),
            cni_args: Vec::new(),
            args_cni: None,
            default_route: Vec::new(),
            resource_name: None,
        };
        let inv = Invocation::new(req, &config.bin_dir, &Map::new(), &att);
        exec::status_or_gc(verb, &att, &inv, extra).map_err(|e| CniError {
            code: e.error.code,
            msg: format!("cluster network {:?}: {e}", att.network),
            details: e.error.details,
        })
    }
}
