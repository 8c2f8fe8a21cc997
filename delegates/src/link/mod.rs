//! Shared machinery of the delegates that create one virtual link on a master interface.

pub mod attach;
pub mod iface;
pub mod plugin;
pub mod provider;

pub use attach::{
    ADDRESS_SYSCTLS, AddressSource, LinkExpectation, LinkPlan, attach, check, detach, join_errors,
};
pub use provider::{FakeProvider, KernelNetlink, NetlinkProvider, OpenError};

#[cfg(test)]
mod tests;
