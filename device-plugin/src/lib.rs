//! `plexus-device-plugin`: advertises SR-IOV VFs to kubelet as extended resources, one resource per
//! pool of the sriov-network-device-plugin config (COMPAT.md §8).
//!
//! - [`config`] reads the config file (the selectors themselves live in
//!   `plexus_delegates::sriov::selectors`).
//! - [`inventory`] turns one sysfs pass into pools of devices with health and NUMA node.
//! - [`service`] is the kubelet `DevicePlugin` gRPC service of one pool; [`policy`] chooses
//!   preferred allocations, [`allocate`] builds Allocate answers and [`devinfo`] writes the
//!   device-info files.
//! - [`endpoint`] owns one pool's socket: serve, register with kubelet, re-create and re-register
//!   when kubelet restarts.
//! - [`daemon`] ties it together: the sysfs poll loop (cheap [`fingerprint`]s, full scans when
//!   they change), every endpoint, [`metrics`].
//! - [`naming`] has the names other components rely on (env vars, file names).

pub mod allocate;
pub mod config;
pub mod daemon;
pub mod devinfo;
pub mod endpoint;
pub mod fingerprint;
pub mod inventory;
pub mod metrics;
pub mod naming;
pub mod policy;
pub mod service;

pub use daemon::{Daemon, DaemonError, Settings};

/// Resolves once `stop` is (or becomes) true, or its sender is gone.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here rather than in a caller's future.
    let _ = stop.wait_for(|s| *s).await;
}
