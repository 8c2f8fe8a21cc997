//! The verbs of the meta-plugin: ADD, DEL, CHECK, STATUS and GC orchestration over the plan, the
//! journal and the delegates. [`MetaPlugin`] implements [`plexus_delegates::cni::Plugin`], so the
//! binary reuses the shared dispatch (version negotiation, reply in the config's version).
//!
//! Kubernetes calls are the only async work: they run on a current-thread tokio runtime owned by
//! the caller (`block_on` on the main thread). Delegates are synchronous and switch namespaces
//! on their own short-lived threads.

pub mod route;
pub mod status;

use std::path::PathBuf;
use std::time::Instant;

use plexus_delegates::cni::netconf::NetConf;
use plexus_delegates::cni::{CniError, CniResult, Command, ErrorCode, Plugin, Request};
use serde_json::{Map, Value};

use crate::config::{DEFAULT_READINESS_POLL, DEFAULT_READINESS_TIMEOUT, PlexusConfig};
use crate::exec::{self, Invocation, StepError};
use crate::journal::{ContainerJournal, Journal, Record, State};
use crate::kube::{KubeApi, PodEvent, PodRef};
use crate::plan::{Attachment, Delegate, PlanInput, build_plan};

/// The meta-plugin: its Kubernetes access (the API server or local mode) and the runtime that
/// drives it.
pub struct MetaPlugin<K> {
    /// `Err` when the API client could not be built; only verbs that need it fail.
    pub kube: Result<K, CniError>,
    pub rt: tokio::runtime::Runtime,
    /// The runtime's CNI config directory (searched for a `clusterNetwork` given by name).
    pub net_dir: PathBuf,
    /// Whether `kube` can GET pods (false in local mode: without runtime-passed annotations the
    /// sandbox gets the cluster network and `defaultNetworks` only).
    pub has_pods: bool,
}

impl<K: KubeApi> Plugin for MetaPlugin<K> {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.cmd_add(req)
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_del(req)
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_check(req)
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_status_gc(req, Command::Status)
    }
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        self.cmd_status_gc(req, Command::Gc)
    }
}

/// The pod the runtime names in `CNI_ARGS`.
pub fn pod_ref(req: &Request) -> PodRef {
    PodRef {
        namespace: req
            .args
            .get("K8S_POD_NAMESPACE")
            .unwrap_or_default()
            .to_owned(),
        name: req.args.get("K8S_POD_NAME").unwrap_or_default().to_owned(),
        uid: req
            .args
            .get("K8S_POD_UID")
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
    }
}

/// An attachment that was added: its record and result.
struct Done {
    path: PathBuf,
    record: Record,
    result: CniResult,
}

fn parse_config(req: &Request) -> Result<PlexusConfig, CniError> {
    PlexusConfig::parse(&req.config).map_err(CniError::from)
}

fn join_step_errors(errors: &[StepError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl<K: KubeApi> MetaPlugin<K> {
    fn kube(&self) -> Result<&K, CniError> {
        self.kube.as_ref().map_err(Clone::clone)
    }

    fn cmd_add(&self, req: &Request) -> Result<CniResult, CniError> {
        let started = Instant::now();
        let config = parse_config(req)?;
        let pod = pod_ref(req);
        if let Some(path) = &config.readiness_indicator_file {
            crate::config::wait_for_readiness(
                path,
                DEFAULT_READINESS_TIMEOUT,
                DEFAULT_READINESS_POLL,
            )?;
        }
        let kube = self.kube()?;
        let empty = Map::new();
        let annotations = crate::plan::pod_annotations_from_runtime_config(&config.runtime_config)
            .or((!self.has_pods).then_some(&empty));
        let input = PlanInput {
            config: &config,
            ifname: &req.ifname,
            pod: pod.clone(),
            pod_annotations: annotations,
            net_dir: &self.net_dir,
        };
        let t = Instant::now();
        let plan = match self.rt.block_on(build_plan(&input, kube)) {
            Ok(plan) => plan,
            Err(e) => {
                self.warn_plan_failed(&config, &pod, &e);
                return Err(e);
            }
        };
        tracing::info!(
            attachments = plan.attachments.len(),
            duration_us = t.elapsed().as_micros() as u64,
            "plan built"
        );
        let netns = req
            .netns
            .clone()
            .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD".to_owned()))?;

        let journal = Journal::new(&config.cni_dir);
        let cj = journal.lock(&req.container_id)?;
        let mut done: Vec<Done> = Vec::with_capacity(plan.attachments.len());
        for (index, att) in plan.attachments.iter().enumerate() {
            let inv = Invocation::new(req, &config.bin_dir, &config.runtime_config, att);
            let mut record = Record::pending(index, att.clone(), inv);
            let path = match cj.write(&record) {
                Ok(p) => p,
                Err(e) => {
                    let cause = CniError::from(e);
                    return Err(
                        self.fail_add(&config, &pod, &cj, done, None, att, "journal", cause)
                    );
                }
            };
            let t = Instant::now();
            match exec::add(att, &record.invocation) {
                Ok((result, _)) => {
                    tracing::info!(
                        network = %att.network,
                        ifname = %att.ifname,
                        delegate = att.delegate.first_type(),
                        duration_us = t.elapsed().as_micros() as u64,
                        "attached"
                    );
                    let version = exec::delegate_version(att)?;
                    record.state = State::Added;
                    record.result = Some(result.to_json(version));
                    if let Err(e) = cj.write(&record) {
                        let cause = CniError::from(e);
                        done.push(Done {
                            path,
                            record,
                            result,
                        });
                        let last = done.pop();
                        return Err(self.fail_add(
                            &config,
                            &pod,
                            &cj,
                            done,
                            last.map(|d| (d.path, d.record)),
                            att,
                            "journal",
                            cause,
                        ));
                    }
                    done.push(Done {
                        path,
                        record,
                        result,
                    });
                }
                Err(step) => {
                    let delegate = step.plugin.clone();
                    return Err(self.fail_add(
                        &config,
                        &pod,
                        &cj,
                        done,
                        Some((path, record)),
                        att,
                        &delegate,
                        step.error,
                    ));
                }
            }
        }

        // Default routes, then network-status with one request, then one Event.
        let atts: Vec<&Attachment> = done.iter().map(|d| &d.record.attachment).collect();
        if let Err(e) = route::apply(&netns, &atts) {
            let att = atts
                .iter()
                .find(|a| !a.default_route.is_empty())
                .map(|a| (*a).clone());
            if let Some(att) = att {
                return Err(self.fail_add(
                    &config,
                    &pod,
                    &cj,
                    done,
                    None,
                    &att,
                    "default-route",
                    e,
                ));
            }
            return Err(e);
        }
        let pairs: Vec<(&Attachment, &CniResult)> = done
            .iter()
            .map(|d| (&d.record.attachment, &d.result))
            .collect();
        let statuses = status::network_statuses(&pairs);
        let interfaces = status::added_interfaces(&pairs);
        if !pod.name.is_empty() {
            let t = Instant::now();
            if let Err(e) = self.rt.block_on(kube.patch_network_status(&pod, &statuses)) {
                let cause = CniError::from(e);
                let att = done[0].record.attachment.clone();
                return Err(self.fail_add(
                    &config,
                    &pod,
                    &cj,
                    done,
                    None,
                    &att,
                    "network-status",
                    cause,
                ));
            }
            tracing::info!(
                duration_us = t.elapsed().as_micros() as u64,
                "network-status written"
            );
            if config.events {
                let ev = PodEvent::added_interfaces(pod.clone(), &interfaces);
                if let Err(e) = self.rt.block_on(kube.post_event(&ev)) {
                    tracing::warn!("cannot post the AddedInterface event: {e}");
                }
            }
        }
        let cluster = done
            .iter()
            .find(|d| d.record.attachment.is_cluster)
            .or_else(|| done.first())
            .map(|d| d.result.clone())
            .unwrap_or_default();
        drop(cj);
        tracing::info!(
            duration_us = started.elapsed().as_micros() as u64,
            "ADD done"
        );
        Ok(cluster)
    }

    /// A plan that cannot be built because of what the user wrote (an annotation, a NAD, the
    /// config) gets the same Warning Event as a failed attachment, so `kubectl describe pod`
    /// shows why. Transient failures and a recreated pod (UID mismatch) get none.
    fn warn_plan_failed(&self, config: &PlexusConfig, pod: &PodRef, e: &CniError) {
        let users_to_fix = e.is(ErrorCode::InvalidConfig) || e.is(ErrorCode::IncompatibleVersion);
        if !(config.events && users_to_fix && !pod.name.is_empty()) {
            return;
        }
        let Ok(kube) = self.kube() else { return };
        let ev = PodEvent::add_failed(
            pod.clone(),
            "the pod's network selection",
            None,
            "plexus",
            &e.msg,
        );
        if let Err(post) = self.rt.block_on(kube.post_event(&ev)) {
            tracing::warn!("cannot post the failure event: {post}");
        }
    }

    /// Undo a failed ADD: the failing attachment (best effort), then the done ones in reverse;
    /// records go only when their DEL succeeded. Posts the Warning Event and returns one error
    /// naming the network, the delegate and the cause.
    #[allow(clippy::too_many_arguments)]
    fn fail_add(
        &self,
        config: &PlexusConfig,
        pod: &PodRef,
        cj: &ContainerJournal,
        done: Vec<Done>,
        failing: Option<(PathBuf, Record)>,
        att: &Attachment,
        delegate: &str,
        cause: CniError,
    ) -> CniError {
        tracing::error!(network = %att.network, ifname = %att.ifname, delegate, "ADD failed: {cause}; rolling back");
        let mut undo_errors = Vec::new();
        if let Some((path, record)) = failing {
            let result = record.cni_result().ok().flatten();
            let errs = exec::del(&record.attachment, &record.invocation, result.as_ref());
            if errs.is_empty() {
                if let Err(e) = cj.remove(&path) {
                    undo_errors.push(e.to_string());
                }
            } else {
                tracing::warn!(network = %att.network, "rollback of the failing attachment: {}", join_step_errors(&errs));
            }
        }
        for d in done.into_iter().rev() {
            let a = &d.record.attachment;
            let errs = exec::del(a, &d.record.invocation, Some(&d.result));
            if errs.is_empty() {
                if let Err(e) = cj.remove(&d.path) {
                    undo_errors.push(e.to_string());
                }
                tracing::info!(network = %a.network, ifname = %a.ifname, "rolled back");
            } else {
                undo_errors.push(format!(
                    "undoing {} ({}): {}",
                    a.network,
                    a.ifname,
                    join_step_errors(&errs)
                ));
            }
        }
        match cj.remove_if_empty() {
            Ok(_) => {}
            Err(e) => undo_errors.push(e.to_string()),
        }
        let msg = format!(
            "network {:?} (interface {}), delegate {:?}: {}",
            att.network, att.ifname, delegate, cause.msg
        );
        if config.events
            && !pod.name.is_empty()
            && let Ok(kube) = self.kube()
        {
            let ev = PodEvent::add_failed(
                pod.clone(),
                &att.network,
                Some(&att.ifname),
                delegate,
                &cause.msg,
            );
            if let Err(e) = self.rt.block_on(kube.post_event(&ev)) {
                tracing::warn!("cannot post the failure event: {e}");
            }
        }
        let mut details = cause.details.clone();
        if !undo_errors.is_empty() {
            if !details.is_empty() {
                details.push_str("; ");
            }
            details.push_str(&format!("rollback incomplete: {}", undo_errors.join("; ")));
        }
        CniError {
            code: cause.code,
            msg,
            details,
        }
    }

    fn cmd_del(&self, req: &Request) -> Result<(), CniError> {
        let config = parse_config(req)?;
        let journal = Journal::new(&config.cni_dir);
        if !journal.exists(&req.container_id) {
            tracing::info!("nothing journaled: DEL is a no-op");
            return Ok(());
        }
        let errors = del_container(&journal, &req.container_id, req.netns.clone(), |_| true)?;
        if errors.is_empty() && config.kubeconfig.is_none() {
            remove_local_status(&config, &pod_ref(req));
        }
        finish(errors, "DEL")
    }

    fn cmd_check(&self, req: &Request) -> Result<(), CniError> {
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
                Ok(v) if v < plexus_delegates::cni::CniVersion::V0_4_0 => {
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

    fn cmd_status_gc(&self, req: &Request, verb: Command) -> Result<(), CniError> {
        let config = parse_config(req)?;
        let mut errors = Vec::new();
        let mut extra = Map::new();
        if verb == Command::Gc {
            let header = NetConf::parse(&req.config)?;
            let valid = header.valid_attachments.clone().unwrap_or_default();
            let journal = Journal::new(&config.cni_dir);
            for container in journal.containers()? {
                let keep = |r: &Record| {
                    valid.iter().any(|v| {
                        v.container_id == r.invocation.container_id
                            && v.ifname == r.invocation.runtime_ifname
                    })
                };
                match del_container(&journal, &container, None, |r| !keep(r)) {
                    Ok(errs) => errors.extend(errs),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            let raw: Value =
                serde_json::from_slice(&req.config).map_err(|e| CniError::decode(e.to_string()))?;
            let list = raw
                .get("cni.dev/valid-attachments")
                .cloned()
                .unwrap_or(Value::Array(Vec::new()));
            extra.insert("cni.dev/valid-attachments".to_owned(), list);
        }
        // Forward to the cluster network.
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
            ));
        match cluster {
            Ok(cluster) => {
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
                if let Err(e) = exec::status_or_gc(verb, &att, &inv, &extra) {
                    if verb == Command::Status {
                        // STATUS reflects the cluster network's own code (50, 51, ...).
                        return Err(CniError {
                            code: e.error.code,
                            msg: format!("cluster network {:?}: {e}", att.network),
                            details: e.error.details,
                        });
                    }
                    errors.push(format!("cluster network {:?}: {e}", att.network));
                }
            }
            Err(e) => {
                if verb == Command::Status {
                    return Err(CniError::new(
                        ErrorCode::PluginNotAvailable,
                        format!("cluster network: {e}"),
                    ));
                }
                errors.push(format!("cluster network: {e}"));
            }
        }
        finish(errors, verb.as_str())
    }
}

fn finish(errors: Vec<String>, verb: &str) -> Result<(), CniError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::Io,
            format!(
                "{verb} failed for {} attachment(s): {}",
                errors.len(),
                errors.join("; ")
            ),
        ))
    }
}

/// Local mode keeps network-status in a file instead of on a pod: a finished DEL removes it, so
/// nothing of the sandbox is left.
fn remove_local_status(config: &PlexusConfig, pod: &PodRef) {
    let path = crate::local::LocalApi::from_config(config).status_path(pod);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
    }
}

/// DELs the journaled attachments of one container selected by `select`, in reverse, going on
/// after failures; removes each record whose delegate DEL succeeded and the directory when
/// empty. Returns the failures (a corrupt record is one, naming its file).
pub fn del_container(
    journal: &Journal,
    container_id: &str,
    netns: Option<PathBuf>,
    select: impl Fn(&Record) -> bool,
) -> Result<Vec<String>, CniError> {
    let cj = journal.lock(container_id)?;
    let mut errors = Vec::new();
    for entry in cj.read_all()?.into_iter().rev() {
        let record = match entry.record {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                errors.push(e.to_string());
                continue;
            }
        };
        if !select(&record) {
            continue;
        }
        let att = &record.attachment;
        let mut inv = record.invocation.clone();
        // The runtime's current view wins; the second containerd DEL has no netns at all.
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
            if let Err(e) = cj.remove(&entry.path) {
                errors.push(e.to_string());
            }
        } else {
            errors.push(format!(
                "network {:?} (interface {}): {}",
                att.network,
                att.ifname,
                join_step_errors(&errs)
            ));
        }
    }
    cj.remove_if_empty()?;
    Ok(errors)
}
