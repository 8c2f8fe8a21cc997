//! The Events an ADD posts: the one `AddedInterface` Event listing every attached interface, and
//! the Warning Event of a failure (a plan that cannot be built, an attachment that failed).
//! Posting is best effort: a failed post is logged, never the ADD's failure.

use plexus_delegates::cni::{CniError, ErrorCode};

use crate::config::PlexusConfig;
use crate::kube::{AddedInterface, KubeApi, PodEvent, PodRef};

use super::MetaPlugin;

impl<K: KubeApi> MetaPlugin<K> {
    /// A plan that cannot be built because of what the user wrote (an annotation, a NAD, the
    /// config) gets the same Warning Event as a failed attachment, so `kubectl describe pod`
    /// shows why. Transient failures and a recreated pod (UID mismatch) get none.
    pub(super) fn warn_plan_failed(&self, config: &PlexusConfig, pod: &PodRef, e: &CniError) {
        let users_to_fix = e.is(ErrorCode::InvalidConfig) || e.is(ErrorCode::IncompatibleVersion);
        if !users_to_fix {
            return;
        }
        self.post(
            config,
            pod,
            PodEvent::add_failed(
                pod.clone(),
                "the pod's network selection",
                None,
                "plexus",
                &e.msg,
            ),
        );
    }

    /// The Warning Event of an attachment that failed.
    pub(super) fn warn_add_failed(
        &self,
        config: &PlexusConfig,
        pod: &PodRef,
        network: &str,
        ifname: &str,
        delegate: &str,
        cause: &str,
    ) {
        self.post(
            config,
            pod,
            PodEvent::add_failed(pod.clone(), network, Some(ifname), delegate, cause),
        );
    }

    /// The one `AddedInterface` Event of a successful ADD.
    pub(super) fn post_added_interfaces(
        &self,
        config: &PlexusConfig,
        pod: &PodRef,
        interfaces: &[AddedInterface],
    ) {
        self.post(
            config,
            pod,
            PodEvent::added_interfaces(pod.clone(), interfaces),
        );
    }

    /// Posts `ev` when Events are on and the runtime named a pod; logs a failure.
    fn post(&self, config: &PlexusConfig, pod: &PodRef, ev: PodEvent) {
        if !config.events || pod.name.is_empty() {
            return;
        }
        let Ok(kube) = self.kube() else { return };
        if let Err(e) = self.rt.block_on(kube.post_event(&ev)) {
            tracing::warn!("cannot post the {} event: {e}", ev.reason);
        }
    }
}
