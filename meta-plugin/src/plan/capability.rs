//! A selection's capability arguments, as libcni passes them: `runtimeConfig` keys (injected by
//! execution into the plugins whose `capabilities` declare them), `CNI_ARGS` pairs (`IP=`, `MAC=`,
//! as Multus sets them for IPAM and plugins that read CNI_ARGS) and `args.cni` (`cni-args`).

use plexus_crds::NetworkSelection;
use serde_json::{Map, Value};

/// The per-attachment arguments derived from a selection.
#[derive(Debug, Default, PartialEq)]
pub(super) struct CapabilityArgs {
    pub runtime_config: Map<String, Value>,
    pub cni_args: Vec<(String, String)>,
    pub args_cni: Option<Map<String, Value>>,
}

/// Maps a selection's keys to their runtimeConfig names: `ips`, `mac`, `portMappings`,
/// `bandwidth`, `infinibandGUID` (from `infiniband-guid`), `deviceID`. `ips` also becomes
/// `IP=<comma list>` and `mac` `MAC=<mac>` in CNI_ARGS. `ipam-claim-reference` has no libcni
/// capability and is not passed on.
pub(super) fn from_selection(sel: Option<&NetworkSelection>) -> CapabilityArgs {
    let Some(sel) = sel else {
        return CapabilityArgs::default();
    };
    let mut rc = Map::new();
    let mut cni_args = Vec::new();
    if !sel.ips.is_empty() {
        rc.insert(
            "ips".to_owned(),
            Value::Array(sel.ips.iter().cloned().map(Value::String).collect()),
        );
        cni_args.push(("IP".to_owned(), sel.ips.join(",")));
    }
    if let Some(mac) = &sel.mac {
        rc.insert("mac".to_owned(), Value::String(mac.clone()));
        cni_args.push(("MAC".to_owned(), mac.clone()));
    }
    if let Some(pm) = &sel.port_mappings {
        rc.insert("portMappings".to_owned(), pm.clone());
    }
    if let Some(bw) = &sel.bandwidth {
        rc.insert("bandwidth".to_owned(), bw.clone());
    }
    if let Some(guid) = &sel.infiniband_guid {
        rc.insert("infinibandGUID".to_owned(), Value::String(guid.clone()));
    }
    if let Some(dev) = &sel.device_id {
        rc.insert("deviceID".to_owned(), Value::String(dev.clone()));
    }
    CapabilityArgs {
        runtime_config: rc,
        cni_args,
        args_cni: sel.cni_args.clone(),
    }
}
