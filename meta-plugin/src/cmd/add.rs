//! ADD: plan, then (under the container's journal lock, after dealing with an earlier ADD of
//! the same container, [`super::previous_add`]) for each attachment a durable pending record,
//! the delegate ADD and the record update; then default routes, network-status with one request,
//! the completion mark and one Event. Any failure undoes everything ([`super::rollback`]); a
//! crash leaves records a DEL (or the next ADD) undoes. Each step boundary is a
//! [`crash_point`].

use std::time::Instant;

use plexus_delegates::cni::{CniError, CniResult, Request};
use serde_json::Map;

use crate::config::{DEFAULT_READINESS_POLL, DEFAULT_READINESS_TIMEOUT};
use crate::exec::{self, Invocation};
use crate::journal::{Journal, Record, State};
use crate::kube::KubeApi;
use crate::plan::{Attachment, PlanInput, build_plan};

use super::rollback::{Done, Failure};
use super::{MetaPlugin, crash_point, network_status, parse_config, pod_ref, route};

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
        crash_point::reached("locked");
        self.clear_previous_add(&config, &pod, &cj, req)?;
        let mut done: Vec<Done> = Vec::with_capacity(plan.attachments.len());
        for (index, att) in plan.attachments.iter().enumerate() {
            // Read before any side effect of this attachment: the record update needs it.
            let version = match exec::delegate_version(att) {
                Ok(v) => v,
                Err(cause) => {
                    let failure = Failure {
                        att,
                        delegate: att.delegate.first_type(),
                        cause,
                    };
                    return Err(self.fail_add(&config, &pod, &cj, done, None, failure));
                }
            };
            let inv = Invocation::new(req, &config.bin_dir, &config.runtime_config, att);
            let mut record = Record::pending(index, att.clone(), inv);
            let path = match cj.write(&record) {
                Ok(p) => p,
                Err(e) => {
                    let failure = Failure {
                        att,
                        delegate: "journal",
                        cause: e.into(),
                    };
                    return Err(self.fail_add(&config, &pod, &cj, done, None, failure));
                }
            };
            crash_point::reached_indexed("pending", index);
            let t = Instant::now();
            let result = match exec::add(att, &record.invocation) {
                Ok((result, _)) => result,
                Err(step) => {
                    let failure = Failure {
                        att,
                        delegate: &step.plugin,
                        cause: step.error.clone(),
                    };
                    return Err(self.fail_add(
                        &config,
                        &pod,
                        &cj,
                        done,
                        Some((path, record)),
                        failure,
                    ));
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
            let written = cj.write(&record);
            done.push(Done {
                path,
                record,
                result,
            });
            if let Err(e) = written {
                let failure = Failure {
                    att,
                    delegate: "journal",
                    cause: e.into(),
                };
                return Err(self.fail_add(&config, &pod, &cj, done, None, failure));
            }
            crash_point::reached_indexed("recorded", index);
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
                return Err(self.fail_add(&config, &pod, &cj, done, None, failure));
            }
            return Err(e);
        }
        crash_point::reached("default-routes");
        let pairs: Vec<(&Attachment, &CniResult)> = done
            .iter()
            .map(|d| (&d.record.attachment, &d.result))
            .collect();
        let statuses = network_status::network_statuses(&pairs);
        let interfaces = network_status::added_interfaces(&pairs);
        if !pod.name.is_empty() {
            let t = Instant::now();
            if let Err(e) = self.rt.block_on(kube.patch_network_status(&pod, &statuses)) {
                return Err(self.fail_add_after_attaching(
                    &config,
                    &pod,
                    &cj,
                    done,
                    "network-status",
                    e.into(),
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
