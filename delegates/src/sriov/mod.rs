//! SR-IOV: a read-only model of PFs and VFs in sysfs ([`sysfs`]), the SR-IOV network device
//! plugin's VF selection ([`selectors`]), and the `sriov` delegate ([`SriovPlugin`]), which
//! accepts sriov-cni's configuration ([`config`]) and keeps a durable record per VF
//! ([`record`], [`store`]), which gives way to a tombstone ([`released`]) once the VF is back.

mod add;
mod check;
pub mod config;
mod del;
pub mod plugin;
pub mod record;
pub mod released;
mod restore;
pub mod selectors;
pub mod store;
pub mod sysfs;

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;

pub use plugin::SriovPlugin;
