//! Where delegates get their netlink handles: the real kernel, or a shared in-memory fake.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::cni::{CniError, ErrorCode};
use crate::netlink::{FakeNetlink, FakeWorld, Netlink, NetlinkError, RtNetlink};
use crate::netns::NetNs;

/// Opening a network namespace's netlink handle failed.
#[derive(Debug)]
pub enum OpenError {
    /// The namespace path does not exist (any more): DEL treats this as done.
    NetnsGone(String),
    Other(CniError),
}

impl OpenError {
    pub fn into_cni(self) -> CniError {
        match self {
            OpenError::NetnsGone(path) => CniError::new(
                ErrorCode::Netns,
                format!("network namespace {path} does not exist"),
            ),
            OpenError::Other(e) => e,
        }
    }
}

/// Hands out netlink handles bound to the host namespace or to a container's.
pub trait NetlinkProvider: Send + Sync {
    fn host(&self) -> Result<Box<dyn Netlink>, CniError>;
    fn netns(&self, path: &Path) -> Result<Box<dyn Netlink>, OpenError>;
}

/// The real kernel through rtnetlink.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelNetlink;

impl NetlinkProvider for KernelNetlink {
    fn host(&self) -> Result<Box<dyn Netlink>, CniError> {
        let nl = RtNetlink::open(None).map_err(|e| netlink_error(&e))?;
        Ok(Box::new(nl))
    }

    fn netns(&self, path: &Path) -> Result<Box<dyn Netlink>, OpenError> {
        let ns = NetNs::open(path).map_err(|e| {
            if e.is_not_found() {
                OpenError::NetnsGone(path.display().to_string())
            } else {
                OpenError::Other(CniError::new(ErrorCode::Netns, e.to_string()))
            }
        })?;
        let nl = RtNetlink::open(Some(&ns)).map_err(|e| OpenError::Other(netlink_error(&e)))?;
        Ok(Box::new(nl))
    }
}

/// The recording fake: namespaces are keyed by path; `None` is the host.
#[derive(Clone)]
pub struct FakeProvider {
    pub world: Arc<Mutex<FakeWorld>>,
}

impl Default for FakeProvider {
    fn default() -> Self {
        FakeProvider {
            world: FakeWorld::shared(),
        }
    }
}

impl NetlinkProvider for FakeProvider {
    fn host(&self) -> Result<Box<dyn Netlink>, CniError> {
        Ok(Box::new(FakeNetlink::new(self.world.clone(), None)))
    }

    fn netns(&self, path: &Path) -> Result<Box<dyn Netlink>, OpenError> {
        let known = self
            .world
            .lock()
            .map(|w| w.has_netns(path))
            .unwrap_or(false);
        if !known {
            return Err(OpenError::NetnsGone(path.display().to_string()));
        }
        Ok(Box::new(FakeNetlink::new(
            self.world.clone(),
            Some(path.to_path_buf()),
        )))
    }
}

/// A netlink failure as a CNI error (code 100), keeping the kernel's words.
pub fn netlink_error(e: &NetlinkError) -> CniError {
    CniError::new(ErrorCode::Netlink, e.to_string())
}
