//! SR-IOV: a read-only model of PFs and VFs in sysfs ([`sysfs`]) and the SR-IOV network device
//! plugin's VF selection ([`selectors`]).

pub mod selectors;
pub mod sysfs;
