//! The Plexus meta-plugin: the `plexus` CNI binary a container runtime executes for every pod
//! sandbox, and the library behind it.
//!
//! - [`config`]: the meta-plugin's own network configuration (Multus-compatible keys), the
//!   cluster-network resolution, the namespace rules and the readiness indicator file.
//! - [`kube`]: Kubernetes access (pod, NADs, network-status, Events) behind the [`kube::KubeApi`]
//!   trait, with the real kube-rs client.
//! - [`install`]: `plexus install`, the node DaemonSet's entrypoint (binaries, kubeconfig,
//!   `00-plexus.conflist`, kept current until SIGTERM).

pub mod cmd;
pub mod config;
pub mod devinfo;
pub mod exec;
pub mod install;
pub mod journal;
pub mod kube;
pub mod local;
pub mod plan;
pub mod podresources;
