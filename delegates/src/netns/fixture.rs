//! Test fixtures: throw-away persistent network namespaces (like `ip netns add`), root checks and
//! kernel feature probes. Compiled for tests and with the `test-fixtures` feature.

#![allow(clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use super::NetNs;
use crate::netlink::{
    IpvlanFlags, IpvlanMode, MacvlanMode, Netlink, NewLink, NewLinkKind, RtNetlink,
};

/// Directory holding persistent named namespaces (iproute2's `NETNS_RUN_DIR`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

static SETUP_LOCK: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A uniquely named persistent network namespace under `/run/netns`, deleted (unmounted and
/// removed) on drop, including when the test panics.
#[derive(Debug)]
pub struct TestNetns {
    name: String,
    path: PathBuf,
    ns: Option<NetNs>,
}

impl TestNetns {
    /// Create `/run/netns/<prefix>-<pid>-<n>`. Panics on failure (tests only).
    pub fn new(prefix: &str) -> Self {
        Self::try_new(prefix).expect("creating test network namespace")
    }

    /// Fallible [`TestNetns::new`].
    pub fn try_new(prefix: &str) -> io::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let path = Path::new(NETNS_RUN_DIR).join(&name);
        {
            let _guard = SETUP_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ensure_run_dir_shared()?;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
        }
        // From here on, Drop cleans up.
        let mut me = Self {
            name,
            path,
            ns: None,
        };
        let target = me.path.clone();
        std::thread::scope(|s| {
            s.spawn(move || -> io::Result<()> {
                unshare(CloneFlags::CLONE_NEWNET)?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    Some("none"),
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                Ok(())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?;
        me.ns = Some(NetNs::open(&me.path).map_err(io::Error::other)?);
        Ok(me)
    }

    /// The namespace name (file name under `/run/netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace path (`/run/netns/<name>`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An open handle on the namespace.
    pub fn netns(&self) -> &NetNs {
        self.ns.as_ref().expect("test netns is open")
    }

    /// Run a command inside the namespace (the child is forked from a thread in the namespace,
    /// like `ip netns exec` minus the mount-namespace tricks).
    pub fn run(&self, cmd: &str, args: &[&str]) -> io::Result<Output> {
        self.netns()
            .run_in(|| Command::new(cmd).args(args).output())
            .map_err(io::Error::other)?
    }

    /// [`TestNetns::run`], panicking unless the command succeeds; returns its stdout.
    pub fn run_ok(&self, cmd: &str, args: &[&str]) -> String {
        let out = self
            .run(cmd, args)
            .unwrap_or_else(|e| panic!("running {cmd} {args:?} in {}: {e}", self.name));
        assert!(
            out.status.success(),
            "{cmd} {args:?} in netns {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        self.ns = None;
        match umount2(&self.path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => eprintln!("umount {}: {e}", self.path.display()),
        }
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            eprintln!("removing {}: {e}", self.path.display());
        }
    }
}

/// Make `/run/netns` a shared mount point, as iproute2 does, so namespace bind mounts propagate
/// to other mount namespaces.
fn ensure_run_dir_shared() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_RUN_DIR)?;
    let mut bound = false;
    loop {
        match mount(
            Some("none"),
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if !bound => {
                mount(
                    Some(NETNS_RUN_DIR),
                    NETNS_RUN_DIR,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )?;
                bound = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Environment variable that turns skips into failures (set where the kernel has everything).
pub const REQUIRE_KERNEL_ENV: &str = "PLEXUS_REQUIRE_KERNEL";

/// Print `skipping <test>: <reason>` and return false; panics instead under
/// `PLEXUS_REQUIRE_KERNEL=1`, so a suite cannot silently pass by skipping.
pub fn skip(test: &str, reason: &str) -> bool {
    if std::env::var(REQUIRE_KERNEL_ENV).is_ok_and(|v| v == "1") {
        panic!("{test}: would skip ({reason}), but {REQUIRE_KERNEL_ENV}=1 requires it to run");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

/// True when running as euid 0; otherwise prints `skipping <test>: needs root` and returns false.
pub fn require_root(test: &str) -> bool {
    nix::unistd::geteuid().is_root() || skip(test, "needs root")
}

/// Whether the kernel can create links of `kind` (`veth`, `macvlan`, `ipvlan`, `bridge`, `dummy`,
/// `vlan`...), probed once per process by creating one in a throw-away namespace. Needs root;
/// returns false without it.
pub fn kernel_has_link_kind(kind: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = cache.get(kind) {
        return *v;
    }
    let v = probe_link_kind(kind).unwrap_or(false);
    cache.insert(kind.to_owned(), v);
    v
}

/// [`kernel_has_link_kind`], printing `skipping <test>: kernel lacks <kind>` when it is missing.
pub fn require_link_kind(test: &str, kind: &str) -> bool {
    kernel_has_link_kind(kind) || skip(test, &format!("kernel lacks {kind}"))
}

fn probe_link_kind(kind: &str) -> Option<bool> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let t = TestNetns::try_new("plx-probe").ok()?;
    let nl = RtNetlink::open(Some(t.netns())).ok()?;
    let needs_parent = matches!(kind, "macvlan" | "ipvlan");
    let parent_index = if needs_parent {
        nl.create_link(&NewLink::new(
            "probe-p0",
            NewLinkKind::Veth {
                peer_name: "probe-p1".to_owned(),
            },
        ))
        .ok()?;
        nl.link("probe-p0").ok()??.index
    } else {
        0
    };
    let link_kind = match kind {
        "veth" => NewLinkKind::Veth {
            peer_name: "probe1".to_owned(),
        },
        "macvlan" => NewLinkKind::Macvlan {
            parent_index,
            mode: MacvlanMode::Bridge,
            bc_queue_len: None,
        },
        "ipvlan" => NewLinkKind::Ipvlan {
            parent_index,
            mode: IpvlanMode::L2,
            flags: IpvlanFlags::Bridge,
        },
        other => return Some(nl.create_link_of_kind("probe0", other).is_ok()),
    };
    Some(nl.create_link(&NewLink::new("probe0", link_kind)).is_ok())
}
