//! Host paths and where the installer reaches them.
//!
//! Every path the installer writes into a config (`clusterNetwork`, `kubeconfig`, `binDir`, ...)
//! is a path on the node, because the runtime runs the plugin on the node. The installer itself
//! runs in a container that sees the node's directories under a mount point (`/host` in the
//! DaemonSet: `/etc/cni/net.d` is mounted at `/host/etc/cni/net.d`). One prefix maps the first to
//! the second, so the two can never disagree; tests use a temp dir as the prefix.

use std::path::{Path, PathBuf};

/// Where the node's root filesystem appears to the installer (`/` when run on the node itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot(PathBuf);

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostRoot(root.into())
    }

    /// The prefix itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Where the installer reaches the node's absolute path `host`.
    pub fn local(&self, host: &Path) -> PathBuf {
        self.0.join(host.strip_prefix("/").unwrap_or(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_host_paths_under_the_prefix() {
        let root = HostRoot::new("/host");
        assert_eq!(
            root.local(Path::new("/etc/cni/net.d")),
            PathBuf::from("/host/etc/cni/net.d")
        );
        assert_eq!(
            HostRoot::new("/").local(Path::new("/opt/cni/bin")),
            PathBuf::from("/opt/cni/bin")
        );
    }
}
