//! Everything that performs one attachment: the CNI wire layer, network namespaces, netlink,
//! IPAM and the built-in macvlan, ipvlan and SR-IOV VF delegates. The meta-plugin calls these
//! in-process; the `plexus-macvlan`, `plexus-ipvlan` and `plexus-sriov` binaries expose the same
//! code to any CNI runtime.

pub mod cni;
pub mod ipam;
pub mod ipvlan;
pub mod link;
pub mod macvlan;
pub mod netlink;
pub mod netns;
pub mod sriov;
