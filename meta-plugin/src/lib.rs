//! The Plexus meta-plugin, as a library for now: the orchestration (attachment planning, the
//! journal, ADD/DEL/CHECK/STATUS/GC) and the `plexus` binary come later, tracked by the
//! meta-plugin issue. Until they land this crate ships no binary, so nothing can mistake it for a
//! working plugin.
//!
//! - [`config`]: the meta-plugin's own network configuration (Multus-compatible keys), the
//!   cluster-network resolution, the namespace rules and the readiness indicator file.
//! - [`kube`]: Kubernetes access (pod, NADs, network-status, Events) behind the [`kube::KubeApi`]
//!   trait, with the real kube-rs client.

pub mod config;
pub mod kube;
pub mod plan;
