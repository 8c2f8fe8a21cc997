//! The three networks every bench pod gets, as configs: eth0 from the cluster network (the
//! reference bridge + host-local), net1/net2 from two macvlan NADs (host-local) on the node's
//! uplink. Each side gets its own bridge, subnets and IPAM directory so neither sees the
//! other's leases.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::topology::UPLINK;

/// The cluster network's name (the conflist's `name`).
pub const CLUSTER: &str = "cbr0";
/// The NADs, in the order the pod annotation names them (→ net1, net2).
pub const NADS: [&str; 2] = ["storage", "backup"];
pub const NAD_NAMESPACE: &str = "default";
pub const CNI_VERSION: &str = "1.0.0";

pub struct Networks {
    /// The bridge device the cluster network creates in the node namespace.
    pub bridge: String,
    /// The second octet of every subnet of this side: 10.<octet>.<0|1|2>.0/24.
    pub octet: u8,
    pub ipam_dir: PathBuf,
}

impl Networks {
    /// The cluster network's one plugin, as written in its conflist.
    pub fn bridge_plugin(&self) -> Value {
        json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.subnet(0)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": self.ipam_dir,
            },
        })
    }

    /// The cluster network's conflist, as it sits in the runtime's net.d.
    pub fn cluster_conflist(&self) -> Value {
        json!({"cniVersion": CNI_VERSION, "name": CLUSTER, "plugins": [self.bridge_plugin()]})
    }

    /// `spec.config` of NAD `index` (no `name`: the NAD's name is injected, as Multus does).
    pub fn macvlan_config(&self, index: usize) -> Value {
        json!({
            "cniVersion": CNI_VERSION,
            "type": "macvlan",
            "master": UPLINK,
            "mode": "bridge",
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.subnet(index + 1)}]],
                "dataDir": self.ipam_dir,
            },
        })
    }

    /// Both NADs as one multi-document YAML manifest, what `kubectl apply -f` takes.
    pub fn nad_manifests(&self) -> String {
        NADS.iter()
            .enumerate()
            .map(|(i, name)| {
                // The config is JSON without single quotes, so a single-quoted YAML scalar
                // holds it verbatim.
                format!(
                    "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n\
                     metadata:\n  name: {name}\n  namespace: {NAD_NAMESPACE}\n\
                     spec:\n  config: '{}'\n",
                    self.macvlan_config(i)
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    /// Subnet `k`: 0 for eth0, 1 and 2 for the NADs.
    pub fn subnet(&self, k: usize) -> String {
        format!("10.{}.{k}.0/24", self.octet)
    }

    /// The address prefix a lease from subnet `k` starts with.
    pub fn address_prefix(&self, k: usize) -> String {
        format!("10.{}.{k}.", self.octet)
    }
}

/// The first address of a CNI result, if any.
pub fn first_address(result: &Value) -> Option<&str> {
    result["ips"].as_array()?.first()?["address"].as_str()
}
