//! Which attachments an ADD makes while the cluster network's plugin runs.
//!
//! The cluster network is nearly always an executed binary (bridge, Calico, Cilium, flannel),
//! and executing it is most of a pod ADD's time; the built-in delegates (macvlan, ipvlan,
//! SR-IOV) run in this process. So with `overlapClusterNetwork` (the default) the ADD makes the
//! built-in attachments that follow the cluster network on a second, low-priority thread while
//! the cluster network's chain runs, then goes on with the rest one by one. containerd does the same
//! for its own networks (go-cni attaches them in parallel); Multus goes one by one.
//!
//! Only attachments that cannot interact with the cluster network's plugin are made
//! meanwhile: the first of the others, and everything after it, waits. What the built-ins
//! change in the pod is their own link, its addresses and its per-interface sysctls, so the
//! outcome cannot depend on timing, with two exceptions that are excluded:
//! - a master in the pod (`linkInContainer`), which may be an interface the cluster network is
//!   creating;
//! - IPAM routes: two attachments adding the same route (most often a default route) conflict,
//!   and which of the two fails must not depend on which finished first.
//!
//! Everything else keeps its order: the journal records, the results, network-status and the
//! Event list the attachments in plan order, the default-route handling runs after all of
//! them, and a failure rolls back every attachment made, in reverse plan order.

use serde_json::Value;

use crate::exec::{is_builtin, plugin_type};
use crate::plan::Attachment;

/// How many attachments after the first (`attachments[1..=n]`) are made while the first one's
/// plugin runs: 0 unless the first is the cluster network and is executed, then the leading
/// run of attachments that [`independent_of_cluster`] allows.
pub(super) fn overlapped_count(attachments: &[Attachment], enabled: bool) -> usize {
    let Some(first) = attachments.first() else {
        return 0;
    };
    if !enabled || !first.is_cluster || all_builtin(first) {
        return 0;
    }
    attachments[1..]
        .iter()
        .take_while(|a| independent_of_cluster(a))
        .count()
}

/// Whether every plugin of the attachment's chain runs in this process.
fn all_builtin(att: &Attachment) -> bool {
    att.delegate
        .plugins()
        .iter()
        .all(|p| is_builtin(plugin_type(p)))
}

/// Whether the attachment can be made while the cluster network's plugin runs (see the module
/// documentation).
fn independent_of_cluster(att: &Attachment) -> bool {
    !att.is_cluster
        && all_builtin(att)
        && att.delegate.plugins().iter().all(|p| {
            let in_container = p.get("linkInContainer").and_then(Value::as_bool) == Some(true);
            let routes = p
                .get("ipam")
                .and_then(|i| i.get("routes"))
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            !in_container && !routes
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::Delegate;

    fn att(network: &str, is_cluster: bool, conf: Value) -> Attachment {
        Attachment::for_test(network, "net1", is_cluster, conf)
    }

    fn bridge_cluster() -> Attachment {
        att(
            "cbr0",
            true,
            json!({"type": "bridge", "ipam": {"type": "host-local"}}),
        )
    }

    fn macvlan(extra: Value) -> Attachment {
        let mut conf = json!({"type": "macvlan", "master": "eth0", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}});
        if let (Value::Object(c), Value::Object(e)) = (&mut conf, extra) {
            for (k, v) in e {
                c.insert(k, v);
            }
        }
        att("default/m", false, conf)
    }

    #[test]
    fn built_ins_after_an_executed_cluster_network_overlap_it() {
        let plan = [bridge_cluster(), macvlan(json!({})), macvlan(json!({}))];
        assert_eq!(overlapped_count(&plan, true), 2);
        assert_eq!(overlapped_count(&plan, false), 0, "turned off");
    }

    #[test]
    fn the_first_attachment_that_could_interact_ends_the_overlap() {
        let routes = json!({"ipam": {"type": "host-local", "subnet": "10.1.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}});
        let in_pod = json!({"linkInContainer": true});
        let exec_nad = att("default/b", false, json!({"type": "bridge"}));
        for (stopper, why) in [
            (macvlan(routes), "IPAM routes"),
            (macvlan(in_pod), "master in the pod"),
            (exec_nad, "an executed plugin"),
        ] {
            let plan = [
                bridge_cluster(),
                macvlan(json!({})),
                stopper,
                macvlan(json!({})),
            ];
            assert_eq!(overlapped_count(&plan, true), 1, "{why}");
        }
        // An empty routes list adds nothing.
        let plan = [
            bridge_cluster(),
            macvlan(json!({"ipam": {"type": "host-local", "routes": []}})),
        ];
        assert_eq!(overlapped_count(&plan, true), 1);
    }

    #[test]
    fn nothing_overlaps_a_built_in_cluster_network_or_a_chain_with_an_executed_plugin() {
        let builtin_cluster = att("m", true, json!({"type": "macvlan", "master": "eth0"}));
        assert_eq!(
            overlapped_count(&[builtin_cluster, macvlan(json!({}))], true),
            0
        );
        let Value::Object(list) = json!({"name": "m", "plugins": [
            {"type": "macvlan", "master": "eth0"}, {"type": "tuning"}
        ]}) else {
            panic!()
        };
        let mut chained = macvlan(json!({}));
        chained.delegate = Delegate::ConfList(list);
        assert_eq!(overlapped_count(&[bridge_cluster(), chained], true), 0);
        assert_eq!(overlapped_count(&[], true), 0);
    }
}
