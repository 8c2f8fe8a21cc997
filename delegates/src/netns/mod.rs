//! Network namespaces: an owned handle ([`NetNs`]), running code inside one on a short-lived
//! dedicated thread ([`NetNs::run_in`]), and per-namespace sysctl writes ([`write_sysctl`]).
//!
//! Namespace switches never happen on the calling thread (or on async worker threads): every
//! [`NetNs::run_in`] spawns a fresh thread, `setns(CLONE_NEWNET)`s it and lets it exit afterwards,
//! so no thread ever goes back to a pool while sitting in the wrong namespace.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixture;

/// Path of the calling thread's own network namespace.
pub const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// Errors opening or entering a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The netns path does not exist (CNI DEL treats this as success).
    #[error("network namespace {} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// The path exists but is not an nsfs file (not a network namespace).
    #[error("{} is not a network namespace (not on nsfs)", path.display())]
    NotNetns { path: PathBuf },
    /// Opening or inspecting the path failed for another reason.
    #[error("cannot open network namespace {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    /// `setns(CLONE_NEWNET)` failed.
    #[error("cannot enter network namespace {}: {source}", path.display())]
    Enter { path: PathBuf, source: Errno },
    /// The helper thread could not be spawned.
    #[error("cannot spawn a thread to enter network namespace {}: {source}", path.display())]
    Spawn { path: PathBuf, source: io::Error },
}

impl NetnsError {
    /// True for [`NetnsError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Errors writing a sysctl under `/proc/sys`.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The sysctl does not exist: e.g. `net/ipv6/...` when IPv6 is disabled, or a per-interface
    /// key for an interface that is not in this namespace. Callers may choose to ignore it.
    #[error("sysctl {key} does not exist")]
    NotFound { key: String },
    /// The key is not a relative slash-separated path (`net/ipv4/conf/eth0/arp_notify`).
    #[error("invalid sysctl key {key:?}")]
    InvalidKey { key: String },
    /// The write failed.
    #[error("cannot write {value:?} to sysctl {key}: {source}")]
    Write {
        key: String,
        value: String,
        source: io::Error,
    },
}

impl SysctlError {
    /// True when the key does not exist (e.g. IPv6 disabled).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// An open network namespace. Owns the file descriptor; the namespace stays alive while the
/// handle exists.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
    path: PathBuf,
}

impl NetNs {
    /// Open the network namespace at `path` (a `/proc/<pid>/ns/net` file or an nsfs bind mount
    /// such as `/run/netns/<name>`).
    ///
    /// Returns [`NetnsError::NotFound`] when the path does not exist and
    /// [`NetnsError::NotNetns`] when it is not on nsfs.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetnsError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => NetnsError::NotFound {
                path: path.to_path_buf(),
            },
            _ => NetnsError::Open {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let st = fstatfs(&file).map_err(|e| NetnsError::Open {
            path: path.to_path_buf(),
            source: io::Error::from(e),
        })?;
        if st.filesystem_type() != NSFS_MAGIC {
            return Err(NetnsError::NotNetns {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            fd: OwnedFd::from(file),
            path: path.to_path_buf(),
        })
    }

    /// The network namespace of the calling thread.
    pub fn current() -> Result<Self, NetnsError> {
        Self::open(THREAD_SELF_NETNS)
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same namespace (duplicated fd).
    pub fn try_clone(&self) -> Result<Self, NetnsError> {
        let fd = self.fd.try_clone().map_err(|source| NetnsError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(Self {
            fd,
            path: self.path.clone(),
        })
    }

    /// Run `f` on a freshly spawned thread that has entered this namespace. The thread exits when
    /// `f` returns. A panic in `f` is propagated to the caller.
    pub fn run_in<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("plexus-netns".to_owned())
                .spawn_scoped(scope, || {
                    setns(&self.fd, CloneFlags::CLONE_NEWNET).map_err(|source| {
                        NetnsError::Enter {
                            path: self.path.clone(),
                            source,
                        }
                    })?;
                    Ok(f())
                })
                .map_err(|source| NetnsError::Spawn {
                    path: self.path.clone(),
                    source,
                })?;
            match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Write `value` to `/proc/sys/<key>` in the calling thread's network namespace (call it inside
/// [`NetNs::run_in`] to target another namespace). `key` is slash-separated, e.g.
/// `net/ipv4/conf/eth0/arp_notify` (interface names may contain dots, so the dotted form is not
/// accepted).
pub fn write_sysctl(key: &str, value: &str) -> Result<(), SysctlError> {
    write_sysctl_at(Path::new("/proc/sys"), key, value)
}

/// [`write_sysctl`] under an arbitrary root instead of `/proc/sys` (for tests).
pub fn write_sysctl_at(root: &Path, key: &str, value: &str) -> Result<(), SysctlError> {
    let rel = Path::new(key);
    let valid = !key.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !valid {
        return Err(SysctlError::InvalidKey {
            key: key.to_owned(),
        });
    }
    let path = root.join(rel);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SysctlError::NotFound {
                key: key.to_owned(),
            },
            _ => SysctlError::Write {
                key: key.to_owned(),
                value: value.to_owned(),
                source,
            },
        })?;
    io::Write::write_all(&mut &file, value.as_bytes()).map_err(|source| SysctlError::Write {
        key: key.to_owned(),
        value: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::fixture::{TestNetns, require_root};
    use super::*;

    #[test]
    fn open_missing_is_not_found() {
        let err = NetNs::open("/nonexistent/plexus/netns").expect_err("must fail");
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn open_regular_file_is_not_netns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ns");
        std::fs::write(&p, b"").expect("write");
        let err = NetNs::open(&p).expect_err("must fail");
        assert!(matches!(err, NetnsError::NotNetns { .. }), "{err}");
        assert!(err.to_string().contains(&p.display().to_string()));
    }

    #[test]
    fn current_and_run_in() {
        let ns = NetNs::current().expect("current netns");
        assert_eq!(ns.path(), Path::new(THREAD_SELF_NETNS));
        let caller = std::thread::current().id();
        let (same_ns, other_thread) = ns
            .run_in(|| {
                let here = std::fs::read_link(THREAD_SELF_NETNS).ok();
                let main = std::fs::read_link("/proc/self/ns/net").ok();
                (here == main, std::thread::current().id() != caller)
            })
            .expect("run_in");
        assert!(same_ns);
        assert!(other_thread);
        let clone = ns.try_clone().expect("clone");
        assert_eq!(clone.path(), ns.path());
    }

    #[test]
    fn run_in_propagates_panic() {
        let ns = NetNs::current().expect("current netns");
        let r = std::panic::catch_unwind(|| ns.run_in(|| panic!("boom")));
        assert!(r.is_err());
    }

    #[test]
    fn sysctl_key_validation_and_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", "/etc/passwd", "net/../../etc", "./net"] {
            let err = write_sysctl_at(dir.path(), bad, "1").expect_err(bad);
            assert!(
                matches!(err, SysctlError::InvalidKey { .. }),
                "{bad}: {err}"
            );
        }
        let err = write_sysctl_at(dir.path(), "net/ipv6/conf/eth0/ndisc_notify", "1")
            .expect_err("missing");
        assert!(err.is_not_found(), "{err}");
        std::fs::create_dir_all(dir.path().join("net/ipv4/conf/eth0.100")).expect("mkdir");
        std::fs::write(dir.path().join("net/ipv4/conf/eth0.100/arp_notify"), "0").expect("w");
        write_sysctl_at(dir.path(), "net/ipv4/conf/eth0.100/arp_notify", "1").expect("write");
        let v = std::fs::read_to_string(dir.path().join("net/ipv4/conf/eth0.100/arp_notify"))
            .expect("read");
        assert_eq!(v, "1");
    }

    #[test]
    fn netns_run_in_enters_test_namespace() {
        if !require_root("netns_run_in_enters_test_namespace") {
            return;
        }
        let t = TestNetns::new("plx-nsrun");
        let ns = NetNs::open(t.path()).expect("open test netns");
        let inside = ns
            .run_in(|| std::fs::read_link(THREAD_SELF_NETNS).ok())
            .expect("run_in");
        let host = std::fs::read_link("/proc/self/ns/net").ok();
        assert!(inside.is_some());
        assert_ne!(inside, host, "thread did not switch netns");
        // The caller's thread is untouched.
        assert_eq!(std::fs::read_link(THREAD_SELF_NETNS).ok(), host);
        // sysctl written inside the namespace lands there, not on the host.
        ns.run_in(|| write_sysctl("net/ipv4/conf/lo/arp_notify", "1"))
            .expect("run_in")
            .expect("write sysctl");
        let out = t.run_ok("cat", &["/proc/sys/net/ipv4/conf/lo/arp_notify"]);
        assert_eq!(out.trim(), "1");
        let missing = ns
            .run_in(|| write_sysctl("net/ipv4/conf/nosuchif0/arp_notify", "1"))
            .expect("run_in")
            .expect_err("missing interface");
        assert!(missing.is_not_found());
    }

    #[test]
    fn test_netns_is_removed_on_drop_even_after_panic() {
        if !require_root("test_netns_is_removed_on_drop_even_after_panic") {
            return;
        }
        let path = std::panic::catch_unwind(|| {
            let t = TestNetns::new("plx-nsdrop");
            let p = t.path().to_path_buf();
            assert!(p.exists());
            std::panic::panic_any(p);
        })
        .expect_err("panicked")
        .downcast::<PathBuf>()
        .expect("payload");
        assert!(!path.exists(), "{} left behind", path.display());
        let err = NetNs::open(&*path).expect_err("gone");
        assert!(err.is_not_found());
    }
}
