//! ADD: plan (then hand out the devices kubelet gave the pod to the NADs that name a
//! `resourceName`), then, under the container's journal lock and after dealing with an earlier
//! ADD of the same container ([`super::previous_add`]): the pending records of every attachment,
//! made durable before the first side effect (with an [`super::overlap`], the cluster network's
//! first and the others' while its plugin runs); then for each attachment its device-info file
//! (copied from the device plugin's), the delegate ADD and the record update
//! ([`super::attach`]); then default routes, network-status with one request (carrying the device-info), the
//! completion mark and one Event. Any failure undoes everything ([`super::rollback`], and the
//! records of attachments not reached are dropped); a crash leaves records a DEL (or the next
//! ADD) undoes: the DEL of an attachment whose delegate never ran finds nothing to delete. Each
//! step boundary is a [`crash_point`].

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Instant;

use plexus_delegates::cni::{CniError, CniResult, Request};
use serde_json::{Map, Value};

use crate::config::{DEFAULT_READINESS_POLL, DEFAULT_READINESS_TIMEOUT};
use crate::devinfo::{CNI_DEVICE_INFO_FILE_CAPABILITY, DeviceInfoDir};
use crate::exec::{self, Invocation};
use crate::journal::{ContainerJournal, Journal, Record};
use crate::kube::KubeApi;
use crate::plan::{Attachment, PlanInput, assign_devices, build_plan};
use crate::podresources::KubeletPodResources;

use super::attach::{Attacher, Outcome, outcome};
use super::rollback::Failure;
use super::{MetaPlugin, crash_point, network_status, overlap, parse_config, pod_ref, route};

impl<K: KubeApi> MetaPlugin<K> {
    pub(super) fn cmd_add(&self, req: &Request) -> Result<CniResult, CniError> {
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
        // kubelet is asked (and its socket opened) only when some NAD names a resourceName.
        let kubelet = KubeletPodResources::new(&config.pod_resources_socket);
        let planned = self.rt.block_on(async {
            let mut plan = build_plan(&input, kube).await?;
            assign_devices(&mut plan, &input.pod, &kubelet).await?;
            Ok::<_, CniError>(plan)
        });
        let plan = match planned {
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
        crash_point::reached("locked");
        self.clear_previous_add(&config, &pod, &cj, req)?;
        let devinfo = DeviceInfoDir::new(&config.device_info_dir);
        // Every record is built (and each delegate's version read) before any is written.
        let mut versions = Vec::with_capacity(plan.attachments.len());
        let mut records = Vec::with_capacity(plan.attachments.len());
        for (index, att) in plan.attachments.iter().enumerate() {
            match exec::delegate_version(att) {
                Ok(v) => versions.push(v),
                Err(cause) => {
                    let failure = Failure {
                        att,
                        delegate: att.delegate.first_type(),
                        cause,
                    };
                    return Err(self.fail_add(&config, &pod, &cj, Vec::new(), Vec::new(), failure));
                }
            }
            let devinfo_file = devinfo.attachment_file(&req.container_id, att);
            let inv = Invocation::new(
                req,
                &config.bin_dir,
                &with_device_info_file(&config.runtime_config, devinfo_file.as_deref()),
                att,
            );
            let mut record = Record::pending(index, att.clone(), inv);
            record.device_info_file = devinfo_file;
            records.push(record);
        }
        // Every record is durable before its attachment's delegate runs (with an overlap, the
        // cluster network's first and the others' while its plugin runs).
        let overlapped =
            overlap::overlapped_count(&plan.attachments, config.overlap_cluster_network);
        let attacher = Attacher {
            cj: &cj,
            devinfo: &devinfo,
            container_id: &req.container_id,
        };
        let ran = attacher.run(records.into_iter().zip(versions).collect(), overlapped);
        let Outcome {
            done,
            failing,
            failure,
        } = outcome(ran.made, ran.journal_failure);
        if let Some((index, delegate, cause)) = failure {
            drop_never_run(&cj, ran.not_started.into_iter().map(|s| s.path));
            let failure = Failure {
                att: &plan.attachments[index],
                delegate: &delegate,
                cause,
            };
            return Err(self.fail_add(&config, &pod, &cj, done, failing, failure));
        }

        // Default routes, then network-status with one request, then one Event.
        let atts: Vec<&Attachment> = done.iter().map(|d| &d.record.attachment).collect();
        if let Err(e) = route::apply(&netns, &atts) {
            let att = atts
                .iter()
                .find(|a| !a.default_route.is_empty())
                .map(|a| (*a).clone());
            if let Some(att) = att {
                let failure = Failure {
                    att: &att,
                    delegate: "default-route",
                    cause: e,
                };
                return Err(self.fail_add(&config, &pod, &cj, done, Vec::new(), failure));
            }
            return Err(e);
        }
        crash_point::reached("default-routes");
        let pairs: Vec<(&Attachment, &CniResult)> = done
            .iter()
            .map(|d| (&d.record.attachment, &d.result))
            .collect();
        let mut statuses = network_status::network_statuses(&pairs);
        for (status, d) in statuses.iter_mut().zip(&done) {
            status.device_info = network_status::device_info(&d.record);
        }
        let interfaces = network_status::added_interfaces(&pairs);
        if !pod.name.is_empty() {
            let t = Instant::now();
            let claimed = if config.kubeconfig.is_none() {
                // Local mode: the status file is the pod's; record that this sandbox wrote it.
                crate::local::LocalApi::from_config(&config)
                    .claim_status(&pod, &req.container_id)
                    .map_err(CniError::from)
            } else {
                Ok(())
            };
            let written = match claimed {
                Ok(()) => self
                    .rt
                    .block_on(kube.patch_network_status(&pod, &statuses))
                    .map_err(CniError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                return Err(self.fail_add_after_attaching(
                    &config,
                    &pod,
                    &cj,
                    done,
                    "network-status",
                    e,
                ));
            }
            tracing::info!(
                duration_us = t.elapsed().as_micros() as u64,
                "network-status written"
            );
        }
        crash_point::reached("network-status");
        if let Err(e) = cj.mark_committed() {
            return Err(self.fail_add_after_attaching(
                &config,
                &pod,
                &cj,
                done,
                "journal",
                e.into(),
            ));
        }
        if !pod.name.is_empty() {
            self.post_added_interfaces(&config, &pod, &interfaces);
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
}

/// Removes the pending records of attachments whose delegate never ran (those after the one
/// that failed): nothing of theirs exists, so unlike the rollback of the others no delegate DEL
/// is needed. A record that cannot be removed stays for the runtime's DEL, for which it is
/// harmless.
fn drop_never_run(cj: &ContainerJournal, paths: impl Iterator<Item = PathBuf>) {
    for path in paths {
        if let Err(e) = cj.remove(&path) {
            tracing::warn!("{e}: the runtime's DEL removes it");
        }
    }
}

/// The runtimeConfig handed to an attachment's plugins: the configuration's, plus the path of
/// its device-info file under the `CNIDeviceInfoFile` capability when it has one (injected only
/// into plugins that declare that capability).
fn with_device_info_file<'a>(
    runtime_config: &'a Map<String, Value>,
    file: Option<&std::path::Path>,
) -> Cow<'a, Map<String, Value>> {
    match file {
        None => Cow::Borrowed(runtime_config),
        Some(path) => {
            let mut rc = runtime_config.clone();
            rc.insert(
                CNI_DEVICE_INFO_FILE_CAPABILITY.to_owned(),
                Value::String(path.display().to_string()),
            );
            Cow::Owned(rc)
        }
    }
}
