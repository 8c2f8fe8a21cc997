//! The device-plugin hand-off (COMPAT §6, §8): every attachment whose NAD has
//! `k8s.v1.cni.cncf.io/resourceName` gets one of the devices kubelet allocated to the pod for
//! that resource, in plan order (two NADs of the same resource get different devices). The
//! device ID goes into the delegate config as `deviceID` and `pciBusID` (top level of a conf,
//! every plugin of a conflist, as Multus does) and into the attachment's runtimeConfig as
//! `deviceID` (passed to plugins that declare the `deviceID` capability).

use std::collections::BTreeMap;

use plexus_delegates::cni::CniError;
use serde_json::{Map, Value};

use super::{Attachment, Delegate, Plan};
use crate::kube::PodRef;
use crate::podresources::{PodDevices, PodResourcesApi, pod_devices};

/// The delegate config keys the device ID is injected as.
const DEVICE_ID_KEYS: [&str; 2] = ["deviceID", "pciBusID"];
/// The runtimeConfig (capability) key.
const DEVICE_ID_CAPABILITY: &str = "deviceID";

/// Hands the pod's devices out to the attachments of `plan` that name a resource.
///
/// Asks kubelet once (see [`pod_devices`]), and not at all when no attachment names a resource.
/// Fails, leaving `plan` unchanged, when the runtime did not name the pod, when kubelet cannot
/// answer, or when the pod got fewer devices of a resource than attachments use it; each error
/// names the network, its interface and the resource.
pub async fn assign_devices<A: PodResourcesApi>(
    plan: &mut Plan,
    pod: &PodRef,
    api: &A,
) -> Result<(), CniError> {
    // Errors before the hand-off name the first attachment that needs a device.
    let Some((first_att, first)) = plan
        .attachments
        .iter()
        .find_map(|a| wanted_resource(a).map(|r| (describe(a), r.to_owned())))
    else {
        return Ok(());
    };
    if pod.namespace.is_empty() || pod.name.is_empty() {
        return Err(CniError::invalid_env(format!(
            "{first_att} needs a device of resource {first:?}, but the runtime sent no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS to ask kubelet which devices the pod got"
        )));
    }
    let devices = pod_devices(api, pod).await.map_err(|e| {
        CniError::new(
            e.cni_code(),
            format!("{first_att} needs a device of resource {first:?}: {e}"),
        )
    })?;
    hand_out(plan, pod, &devices)
}

/// Gives each attachment that names a resource the next unused device of that resource, in
/// plan order. Checks every resource first, so nothing is changed on error.
pub(super) fn hand_out(
    plan: &mut Plan,
    pod: &PodRef,
    devices: &PodDevices,
) -> Result<(), CniError> {
    let mut users: BTreeMap<&str, Vec<&Attachment>> = BTreeMap::new();
    for att in &plan.attachments {
        if let Some(resource) = wanted_resource(att) {
            users.entry(resource).or_default().push(att);
        }
    }
    for (resource, atts) in &users {
        let got = devices.devices(resource);
        if got.len() < atts.len() {
            return Err(too_few(pod, resource, got, atts, devices));
        }
    }

    let mut next: BTreeMap<String, usize> = BTreeMap::new();
    for att in &mut plan.attachments {
        let Some(resource) = wanted_resource(att).map(str::to_owned) else {
            continue;
        };
        let index = next.entry(resource.clone()).or_default();
        // Checked above: every resource has a device per attachment.
        let Some(device) = devices.devices(&resource).get(*index) else {
            continue;
        };
        *index += 1;
        inject(att, device);
        tracing::debug!(
            network = %att.network,
            ifname = %att.ifname,
            resource = %resource,
            device = %device,
            "device handed out"
        );
    }
    Ok(())
}

/// The resource an attachment needs a device of (an empty annotation names none).
fn wanted_resource(att: &Attachment) -> Option<&str> {
    att.resource_name
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
}

/// `network "ns/name" (interface net1)`.
fn describe(att: &Attachment) -> String {
    format!("network {:?} (interface {})", att.network, att.ifname)
}

fn too_few(
    pod: &PodRef,
    resource: &str,
    got: &[String],
    atts: &[&Attachment],
    devices: &PodDevices,
) -> CniError {
    let networks: Vec<String> = atts.iter().map(|a| describe(a)).collect();
    let got_text = if got.is_empty() {
        let others: Vec<&str> = devices.resources().collect();
        let others = if others.is_empty() {
            "kubelet reports no devices for the pod at all".to_owned()
        } else {
            format!("kubelet reports devices of {} only", others.join(", "))
        };
        format!("no device of resource {resource:?} ({others})")
    } else {
        format!(
            "{} device(s) of resource {resource:?} ({})",
            got.len(),
            got.join(", ")
        )
    };
    CniError::invalid_config(format!(
        "pod {pod} got {got_text}, but {} network(s) use it: {}; request {} of {resource:?} in the pod's container resources (requests/limits)",
        atts.len(),
        networks.join(", "),
        atts.len(),
    ))
}

/// Puts `device` into the delegate config and the attachment's runtimeConfig.
fn inject(att: &mut Attachment, device: &str) {
    if let Some(requested) = att
        .runtime_config
        .get(DEVICE_ID_CAPABILITY)
        .and_then(Value::as_str)
        .filter(|r| *r != device)
    {
        // Multus does the same: the device kubelet allocated wins over the selection's.
        tracing::warn!(
            network = %att.network,
            requested,
            device,
            "the selection's deviceID is replaced by the device kubelet allocated for the NAD's resourceName"
        );
    }
    match &mut att.delegate {
        Delegate::Conf(conf) => set_device_keys(conf, device),
        Delegate::ConfList(list) => {
            if let Some(Value::Array(plugins)) = list.get_mut("plugins") {
                for plugin in plugins.iter_mut().filter_map(Value::as_object_mut) {
                    set_device_keys(plugin, device);
                }
            }
        }
    }
    att.runtime_config.insert(
        DEVICE_ID_CAPABILITY.to_owned(),
        Value::String(device.to_owned()),
    );
}

fn set_device_keys(conf: &mut Map<String, Value>, device: &str) {
    for key in DEVICE_ID_KEYS {
        conf.insert(key.to_owned(), Value::String(device.to_owned()));
    }
}
