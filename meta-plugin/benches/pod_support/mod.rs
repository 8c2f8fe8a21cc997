//! The pieces of the pod benchmark (`benches/pod.rs`): the simulated node and pods, running a
//! CNI binary as a runtime does, the two sides measured (Plexus and the floor), reading Plexus's
//! log, and the statistics.

pub mod exec;
pub mod floor;
pub mod log;
pub mod networks;
pub mod plexus_side;
pub mod record;
pub mod report;
pub mod sandbox;
pub mod stats;
pub mod topology;
