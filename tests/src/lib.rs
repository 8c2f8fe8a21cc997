//! Shared fixtures for the end-to-end suites: network namespaces, binaries, reference plugins.
//!
//! - [`skip`]: skip helpers that print a reason, and fail instead under `PLEXUS_REQUIRE_KERNEL=1`.
//! - [`bins`]: our built binaries (`target/<profile>/<name>`) and the reference plugins.
//! - [`cni_call`]: run a plugin binary exactly as containerd does (only `CNI_*` + `PATH`).
//! - [`topology`]: a stand-in node (host netns with an uplink to a switch netns) and pod netns.
//! - [`snapshot`]: an interface's state as comparable data, and lease listings.
//! - [`normalize`]: make results comparable across runs (random MACs, sandbox paths).
//! - [`runtime_log`]: the parser for the captured runtime logs in `shared/testdata/runtime`.

#![allow(clippy::expect_used, clippy::panic)]

pub mod bins;
pub mod cni_call;
pub mod normalize;
pub mod runtime_log;
pub mod skip;
pub mod snapshot;
pub mod topology;

pub use bins::{plexus_bin, reference_bin};
pub use cni_call::{CniCall, CniOutput};
pub use plexus_delegates::netns::fixture::TestNetns;
pub use skip::{require_link_kind, require_root, skip};
pub use snapshot::{IfaceSnapshot, leases, links, snapshot};
pub use topology::Topology;
