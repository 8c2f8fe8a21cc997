//! The attachment plan: every network a sandbox gets, fully resolved before the first side
//! effect. Planning produces it (from config, pod annotations and NADs); execution and the
//! journal consume it. Nothing in here is fetched again later: DEL runs from the journaled copy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One network to attach to the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `<ns>/<nad>` for NAD networks; the CNI `name` for a file-based or inline cluster network.
    /// This is what network-status reports as `name`.
    pub network: String,
    /// The interface name in the sandbox (`CNI_IFNAME` for the cluster network, else
    /// `net<idx>` or the selection's `interface`).
    pub ifname: String,
    /// The cluster network: its result is the one printed to the runtime, and it is the entry
    /// network-status marks `default: true`.
    pub is_cluster: bool,
    /// The delegate network configuration as it will be handed over: a single plugin conf
    /// (has `type`) or a conflist (has `plugins`), with `name` and `cniVersion` resolved.
    pub delegate: Delegate,
    /// Capability arguments from the selection, keyed as libcni's runtimeConfig keys (`ips`,
    /// `mac`, `portMappings`, `bandwidth`, `infinibandGUID`, `deviceID`). Execution injects each
    /// into the plugins whose `capabilities` declare it, like libcni.
    pub runtime_config: Map<String, Value>,
    /// `CNI_ARGS` pairs added for this attachment (`IP=`, `MAC=`), after the runtime's own.
    pub cni_args: Vec<(String, String)>,
    /// Merged into every plugin's `args.cni` (the selection's `cni-args`; the annotation wins).
    pub args_cni: Option<Map<String, Value>>,
    /// Gateways this attachment owns the default route through (the selection's
    /// `default-route`); empty for all but at most one attachment per address family.
    pub default_route: Vec<IpAddr>,
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`, for the device-plugin hand-off.
    pub resource_name: Option<String>,
}

#[cfg(test)]
impl Attachment {
    /// A test attachment of `network` on `ifname` with one plugin conf (an object), and
    /// nothing else set.
    pub fn for_test(network: &str, ifname: &str, is_cluster: bool, conf: Value) -> Self {
        let Value::Object(conf) = conf else {
            panic!("a plugin conf is an object: {conf}")
        };
        Attachment {
            network: network.into(),
            ifname: ifname.into(),
            is_cluster,
            delegate: Delegate::Conf(conf),
            runtime_config: Map::new(),
            cni_args: vec![],
            args_cni: None,
            default_route: vec![],
            resource_name: None,
        }
    }
}

/// A delegate network configuration, kept as JSON so that every key the user wrote reaches the
/// plugin unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "lowercase")]
pub enum Delegate {
    Conf(Map<String, Value>),
    ConfList(Map<String, Value>),
}

impl Delegate {
    /// The plugin confs in chain order (one for a conf).
    pub fn plugins(&self) -> Vec<&Map<String, Value>> {
        match self {
            Delegate::Conf(c) => vec![c],
            Delegate::ConfList(l) => l
                .get("plugins")
                .and_then(Value::as_array)
                .map(|ps| ps.iter().filter_map(Value::as_object).collect())
                .unwrap_or_default(),
        }
    }

    /// The network `name`.
    pub fn name(&self) -> &str {
        let (Delegate::Conf(m) | Delegate::ConfList(m)) = self;
        m.get("name").and_then(Value::as_str).unwrap_or_default()
    }

    /// The first plugin's `type` (what logs and events name as "the delegate").
    pub fn first_type(&self) -> &str {
        self.plugins()
            .first()
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

impl From<plexus_crds::nad::NadConfig> for Delegate {
    fn from(c: plexus_crds::nad::NadConfig) -> Self {
        match c {
            plexus_crds::nad::NadConfig::Conf(m) => Delegate::Conf(m),
            plexus_crds::nad::NadConfig::ConfList(m) => Delegate::ConfList(m),
        }
    }
}

/// Everything one ADD attaches, in order: the cluster network first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub attachments: Vec<Attachment>,
}
