//! The `sriov` delegate: where it finds sysfs, netlink and its state, and the CNI verbs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::store::StateStore;
use super::sysfs::Sysfs;
use super::{add, check, del};
use crate::cni::{CniError, CniResult, NetConf, Plugin, Request};
use crate::link::{KernelNetlink, NetlinkProvider};

/// Environment variable naming the sysfs root (default `/sys`).
pub const SYSFS_ROOT_ENV: &str = "PLEXUS_SYSFS_ROOT";
/// Environment variable naming the state directory (default [`DEFAULT_STATE_DIR`]).
pub const STATE_DIR_ENV: &str = "PLEXUS_SRIOV_STATE_DIR";
/// Where VF records and locks live by default (beside sriov-cni's `/var/lib/cni/sriov`, not in
/// it: the formats differ).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/plexus-sriov";
/// The calling thread's network namespace: where a VF goes back to. Delegates run in the host
/// namespace (namespace switches happen on short-lived threads of their own).
pub const HOST_NETNS: &str = "/proc/self/ns/net";

/// How long ADD waits for the VF to report carrier before answering anyway.
const CARRIER_WAIT: Duration = Duration::from_millis(500);
/// How long DEL waits for a VF to reappear in the host after its netns was destroyed (the
/// kernel dismantles namespaces asynchronously).
const RETURN_WAIT: Duration = Duration::from_secs(2);

/// The sriov delegate.
#[derive(Clone)]
pub struct SriovPlugin {
    /// Netlink handles for the VF netdev: the host's and the pods'.
    pub netdevs: Arc<dyn NetlinkProvider>,
    /// Netlink handle for the PFs (its `host()`); the same kernel as `netdevs` in production.
    pub pfs: Arc<dyn NetlinkProvider>,
    /// The namespace a VF netdev is moved back to.
    pub host_netns: PathBuf,
    pub sysfs: Sysfs,
    pub state: StateStore,
    pub carrier_wait: Duration,
    pub return_wait: Duration,
}

impl std::fmt::Debug for SriovPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SriovPlugin")
            .field("host_netns", &self.host_netns)
            .field("sysfs", &self.sysfs)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SriovPlugin {
    /// A plugin over one netlink provider (PFs and netdevs alike), reading sysfs under
    /// `sysfs_root` and keeping records in `state_dir`.
    pub fn new(
        netlink: Arc<dyn NetlinkProvider>,
        sysfs_root: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        SriovPlugin {
            netdevs: netlink.clone(),
            pfs: netlink,
            host_netns: PathBuf::from(HOST_NETNS),
            sysfs: Sysfs::new(sysfs_root),
            state: StateStore::new(state_dir),
            carrier_wait: CARRIER_WAIT,
            return_wait: RETURN_WAIT,
        }
    }

    /// The real kernel, with the sysfs root and state directory from [`SYSFS_ROOT_ENV`] and
    /// [`STATE_DIR_ENV`] (defaults `/sys` and [`DEFAULT_STATE_DIR`]).
    pub fn from_env() -> Self {
        let var = |k: &str, default: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        Self::new(
            Arc::new(KernelNetlink),
            var(SYSFS_ROOT_ENV, "/sys"),
            var(STATE_DIR_ENV, DEFAULT_STATE_DIR),
        )
    }

    /// Use `pfs` for the PF-side VF settings.
    pub fn with_pfs(mut self, pfs: Arc<dyn NetlinkProvider>) -> Self {
        self.pfs = pfs;
        self
    }

    /// Move VF netdevs back to `path` instead of the calling thread's namespace.
    pub fn with_host_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.host_netns = path.into();
        self
    }
}

/// Every log line of one call carries the pod, container, interface and network.
fn span(verb: &str, req: &Request) -> tracing::span::EnteredSpan {
    let network = NetConf::parse(&req.config)
        .map(|c| c.name)
        .unwrap_or_default();
    tracing::info_span!(
        "sriov",
        verb,
        pod = req.pod_ref().unwrap_or_default(),
        container = %req.container_id,
        ifname = %req.ifname,
        network,
    )
    .entered()
}

impl Plugin for SriovPlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let _span = span("ADD", req);
        add::add(self, req)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let _span = span("DEL", req);
        del::del(self, req)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        let _span = span("CHECK", req);
        check::check(self, req)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        let _span = span("STATUS", req);
        check::status(self, req)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        let _span = span("GC", req);
        del::gc(self, req)
    }
}
