//! From the runtime's request, the meta-plugin config, pod annotations and NADs to a validated
//! [`Plan`].
//!
//! - [`attachment`]: the plan types (the contract with execution and the journal).
//! - [`build_plan`]: the planner. Order: the cluster network (replaced by the pod's
//!   `v1.multus-cni.io/default-network` annotation), the extra inline `delegates[1..]`,
//!   `defaultNetworks` (not for pods in `systemNamespaces`), then the `k8s.v1.cni.cncf.io/networks`
//!   annotation in order (COMPAT §3).
//!
//! The pieces, one job each: `annotations` (where the pod's annotations come from), `nad_cache`
//! (each NAD fetched once per plan), `ifname` (interface names and duplicates), `capability`
//! (selection → runtimeConfig / CNI_ARGS / `args.cni`), `default_route` (one gateway per family),
//! `validate` (the whole plan, before any side effect).
//!
//! [`assign_devices`] is the second planning step of an ADD, after [`build_plan`]: the devices
//! kubelet allocated to the pod, handed out to the attachments whose NAD names a
//! `k8s.v1.cni.cncf.io/resourceName` (kubelet is asked only when one does).

mod annotations;
pub mod attachment;
mod build;
mod capability;
mod default_route;
mod devices;
mod ifname;
mod nad_cache;
mod validate;

#[cfg(test)]
mod devices_tests;
#[cfg(test)]
mod tests;

pub use annotations::{POD_ANNOTATIONS_KEY, pod_annotations_from_runtime_config};
pub use attachment::{Attachment, Delegate, Plan};
pub use build::{PlanInput, build_plan};
pub use devices::assign_devices;
