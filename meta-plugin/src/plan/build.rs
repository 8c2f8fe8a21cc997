//! [`build_plan`]: the cluster network, the extra inline delegates, `defaultNetworks`, then the
//! pod's `k8s.v1.cni.cncf.io/networks` selections, each resolved to a delegate config, named,
//! given its capability arguments and validated as a whole.

use std::path::Path;

use plexus_crds::{
    DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, NetworkSelection, SelectionError,
    parse_default_network_annotation, parse_networks_annotation,
};
use plexus_delegates::cni::CniError;
use serde_json::{Map, Value};

use super::ifname::IfnameRequest;
use super::nad_cache::NadCache;
use super::{Attachment, Delegate, Plan, annotations, capability, default_route, ifname, validate};
use crate::config::network::{from_nad, resolve_cluster_network, resolve_network};
use crate::config::{ClusterNetwork, ConfigError, PlexusConfig};
use crate::kube::{KubeApi, PodRef};

/// What planning needs from the request.
#[derive(Debug)]
pub struct PlanInput<'a> {
    pub config: &'a PlexusConfig,
    /// `CNI_IFNAME`: the cluster network's interface.
    pub ifname: &'a str,
    /// From CNI_ARGS `K8S_POD_NAMESPACE`/`K8S_POD_NAME`/`K8S_POD_UID` (empty when absent).
    pub pod: PodRef,
    /// `runtimeConfig["io.kubernetes.cri.pod-annotations"]` when the runtime passed it: then the
    /// pod is not fetched. `None` means one GET of the pod.
    ///
    /// Local mode (no API server, [`crate::local::LocalApi`]): when the runtime did not pass the
    /// annotations, the caller passes `Some(&Map::new())`: the pod then gets the cluster network,
    /// the extra delegates and `defaultNetworks` only (`LocalApi::get_pod` is an error).
    pub pod_annotations: Option<&'a Map<String, Value>>,
    /// The runtime's CNI conf dir (`/etc/cni/net.d`), searched for a `clusterNetwork` given by
    /// network name.
    pub net_dir: &'a Path,
}

/// One network of the plan before naming.
struct Entry {
    network: ClusterNetwork,
    /// The pod's selection, for networks the pod asked for (annotations).
    selection: Option<NetworkSelection>,
    /// How errors name this entry: `annotation k8s.v1.cni.cncf.io/networks entry 1 (ns/name)`.
    label: String,
}

/// Builds the validated attachment plan of one ADD.
///
/// Requests: at most one GET of the pod (none when `pod_annotations` is given or the request
/// names no pod) and one GET per distinct NAD. Errors are CNI errors: code 7 for a bad
/// annotation, a denied or unresolvable network, clashing interface names or default routes;
/// Kubernetes failures keep their own code (see [`crate::kube::KubeError::cni_code`]).
pub async fn build_plan<K: KubeApi>(input: &PlanInput<'_>, kube: &K) -> Result<Plan, CniError> {
    let cfg = input.config;
    let api = NadCache::new(kube);
    let dirs = cfg.search_dirs(input.net_dir);
    let pod_ns = input.pod.namespace.as_str();

    // Parse both annotations before the first NAD request: a bad annotation fails fast.
    let ann = annotations::load(input, &api).await?;
    let default_selection = match ann.default_network.as_deref() {
        Some(v) if !v.trim().is_empty() => {
            Some(parse_default_network_annotation(v).map_err(selection_error)?)
        }
        _ => None,
    };
    let selections = match ann.networks.as_deref() {
        Some(v) => parse_networks_annotation(v).map_err(selection_error)?,
        None => Vec::new(),
    };

    let mut entries: Vec<Entry> = Vec::new();

    // 1. The cluster network, or the pod's default-network annotation in its place.
    match default_selection {
        Some(sel) => {
            let ns = sel
                .namespace
                .clone()
                .unwrap_or_else(|| cfg.multus_namespace.clone());
            let label = format!(
                "annotation {DEFAULT_NETWORK_ANNOTATION} ({ns}/{})",
                sel.name
            );
            cfg.policy
                .check(pod_ns, &ns, &sel.name, DEFAULT_NETWORK_ANNOTATION)?;
            if let Some(i) = &sel.interface {
                tracing::warn!(
                    interface = %i,
                    "{label}: \"interface\" is ignored, the cluster network gets CNI_IFNAME"
                );
            }
            let network = fetch_nad(&api, &ns, &sel.name, &dirs.conf_dir)
                .await
                .map_err(|e| e.context(&label))?;
            entries.push(Entry {
                network,
                selection: Some(sel),
                label,
            });
        }
        None => {
            let network = resolve_cluster_network(
                &cfg.cluster_network,
                &cfg.multus_namespace,
                &dirs,
                &cfg.plugin_type,
                Some(&api),
            )
            .await?;
            let label = format!("clusterNetwork ({})", network.status_name());
            entries.push(Entry {
                network,
                selection: None,
                label,
            });
        }
    }

    // 2. `delegates[1..]`: Multus runs every delegate.
    for (i, conf) in cfg.extra_delegates.iter().enumerate() {
        let network = ClusterNetwork::Inline(conf.clone());
        let label = format!("delegates[{}] ({})", i + 1, network.status_name());
        entries.push(Entry {
            network,
            selection: None,
            label,
        });
    }

    // 3. `defaultNetworks`, except for pods in a system namespace.
    if cfg.policy.wants_default_networks(pod_ns) {
        for (i, r) in cfg.default_networks.iter().enumerate() {
            let network = resolve_network(
                "defaultNetworks",
                r,
                &cfg.multus_namespace,
                &dirs,
                &cfg.plugin_type,
                Some(&api),
            )
            .await
            .map_err(|e| CniError::from(e).context(format!("defaultNetworks[{i}]")))?;
            let label = format!("defaultNetworks[{i}] ({})", network.status_name());
            entries.push(Entry {
                network,
                selection: None,
                label,
            });
        }
    } else if !cfg.default_networks.is_empty() {
        tracing::debug!(
            namespace = pod_ns,
            "pod in a systemNamespaces namespace: defaultNetworks skipped"
        );
    }

    // 4. The networks annotation, in order.
    for (i, sel) in selections.into_iter().enumerate() {
        let ns = match &sel.namespace {
            Some(ns) => ns.clone(),
            None if pod_ns.is_empty() => {
                return Err(CniError::invalid_config(format!(
                    "annotation {NETWORKS_ANNOTATION}: entry {i} ({:?}) has no namespace and the runtime sent no K8S_POD_NAMESPACE",
                    sel.name
                )));
            }
            None => pod_ns.to_owned(),
        };
        let label = format!(
            "annotation {NETWORKS_ANNOTATION} entry {i} ({ns}/{})",
            sel.name
        );
        cfg.policy
            .check(pod_ns, &ns, &sel.name, NETWORKS_ANNOTATION)?;
        let network = fetch_nad(&api, &ns, &sel.name, &dirs.conf_dir)
            .await
            .map_err(|e| e.context(&label))?;
        entries.push(Entry {
            network,
            selection: Some(sel),
            label,
        });
    }

    let plan = assemble(input.ifname, entries)?;
    validate::plan(&plan)?;
    for a in &plan.attachments {
        tracing::debug!(
            network = %a.network,
            ifname = %a.ifname,
            delegate = a.delegate.first_type(),
            "planned attachment"
        );
    }
    Ok(plan)
}

/// Names the entries, checks the default-route requests and builds the attachments.
fn assemble(cluster_ifname: &str, entries: Vec<Entry>) -> Result<Plan, CniError> {
    let requests: Vec<IfnameRequest<'_>> = entries
        .iter()
        .map(|e| IfnameRequest {
            requested: e.selection.as_ref().and_then(|s| s.interface.as_deref()),
            label: &e.label,
        })
        .collect();
    let ifnames = ifname::assign(cluster_ifname, &requests)?;

    let routes: Vec<(&str, &[std::net::IpAddr])> = entries
        .iter()
        .filter_map(|e| {
            let sel = e.selection.as_ref()?;
            Some((e.label.as_str(), sel.default_route.as_slice()))
        })
        .collect();
    default_route::check(&routes)?;

    let attachments = entries
        .into_iter()
        .zip(ifnames)
        .enumerate()
        .map(|(idx, (entry, ifname))| {
            let caps = capability::from_selection(entry.selection.as_ref());
            let network = entry.network.status_name();
            let default_route = entry
                .selection
                .as_ref()
                .map(|s| s.default_route.clone())
                .unwrap_or_default();
            let (delegate, resource_name) = match entry.network {
                ClusterNetwork::Nad {
                    config,
                    resource_name,
                    ..
                } => (Delegate::from(config), resource_name),
                ClusterNetwork::File { config, .. } | ClusterNetwork::Inline(config) => {
                    (Delegate::from(config), None)
                }
            };
            Attachment {
                network,
                ifname,
                is_cluster: idx == 0,
                delegate,
                runtime_config: caps.runtime_config,
                cni_args: caps.cni_args,
                args_cni: caps.args_cni,
                default_route,
                resource_name,
            }
        })
        .collect();
    Ok(Plan { attachments })
}

/// One NAD (through the per-plan cache) resolved to its config (`spec.config`, or the `confDir`
/// file of its name).
async fn fetch_nad<K: KubeApi>(
    api: &NadCache<'_, K>,
    namespace: &str,
    name: &str,
    conf_dir: &Path,
) -> Result<ClusterNetwork, CniError> {
    let nad = api
        .get_nad(namespace, name)
        .await
        .map_err(|e| CniError::from(ConfigError::from(e)))?;
    Ok(from_nad(&nad, namespace, name, conf_dir)?)
}

fn selection_error(e: SelectionError) -> CniError {
    CniError::invalid_config(e.to_string())
}
