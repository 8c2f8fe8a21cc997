//! Test fixture: a netdevsim device (simulated SR-IOV PF with VFs that accept and report VF
//! settings over netlink, like a real NIC's driver) whose PF netdev lives in a [`TestNetns`].
//! Compiled for tests and with the `test-fixtures` feature. The host kernel here lacks
//! netdevsim; the VM's kernel has it (see `scripts/vm-suites.sh`, which runs tests named
//! `netdevsim`).

#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::fixture::{TestNetns, skip};

const BUS: &str = "/sys/bus/netdevsim";

/// The first device id of this crate's tests. Device ids are global to the kernel and test
/// binaries of several crates run at once, so another crate's tests pass a base of their own
/// to [`Netdevsim::with_id_base`], at least 16 000 away from this one.
pub const ID_BASE: u32 = 700;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether the kernel offers netdevsim (loading the module if needed); prints the skip reason
/// (or panics under `PLEXUS_REQUIRE_KERNEL=1`) when it does not.
pub fn available(test: &str) -> bool {
    let new_device = Path::new(BUS).join("new_device");
    if !new_device.exists() {
        let _ = Command::new("modprobe")
            .arg("netdevsim")
            .stderr(Stdio::null())
            .status();
    }
    new_device.exists() || skip(test, "kernel lacks netdevsim (no /sys/bus/netdevsim)")
}

/// A netdevsim device, deleted on drop.
#[derive(Debug)]
pub struct Netdevsim {
    id: u32,
    /// The PF netdev's name in the test namespace.
    pub pf: String,
}

impl Netdevsim {
    /// A device with one port and `vfs` VFs, its PF netdev created inside `t`, numbered from
    /// [`ID_BASE`]. `None` (after printing why, or panicking under `PLEXUS_REQUIRE_KERNEL=1`)
    /// when the kernel has no netdevsim.
    pub fn new(test: &str, t: &TestNetns, vfs: u32) -> Option<Netdevsim> {
        Self::with_id_base(test, t, vfs, ID_BASE)
    }

    /// [`Netdevsim::new`] numbering the device from `id_base` (see [`ID_BASE`]).
    pub fn with_id_base(test: &str, t: &TestNetns, vfs: u32, id_base: u32) -> Option<Netdevsim> {
        if !available(test) {
            return None;
        }
        let id = id_base + (std::process::id() % 1000) * 16 + NEXT.fetch_add(1, Ordering::Relaxed);
        // netdevsim creates the port netdev in the namespace of the writer
        t.netns()
            .run_in(|| std::fs::write(Path::new(BUS).join("new_device"), format!("{id} 1")))
            .expect("enter test netns")
            .unwrap_or_else(|e| panic!("netdevsim new_device {id}: {e}"));
        let mut dev = Netdevsim {
            id,
            pf: String::new(),
        };
        let numvfs = Path::new(BUS)
            .join("devices")
            .join(format!("netdevsim{id}"))
            .join("sriov_numvfs");
        std::fs::write(&numvfs, vfs.to_string())
            .unwrap_or_else(|e| panic!("{}: {e}", numvfs.display()));
        dev.pf = dev.find_pf(t);
        Some(dev)
    }

    /// The port netdev whose parent device is this netdevsim (`ip -d link` says `parentdev`);
    /// udev-less kernels create it asynchronously, so look for a while.
    fn find_pf(&self, t: &TestNetns) -> String {
        let parent = format!("parentdev netdevsim{} ", self.id);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = t.run_ok("ip", &["-d", "-o", "link", "show"]);
            if let Some(line) = out.lines().find(|l| l.contains(&parent)) {
                let name = line
                    .split(": ")
                    .nth(1)
                    .and_then(|n| n.split('@').next())
                    .expect("ip -o link line has a name");
                return name.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "netdevsim{}: no port netdev in {}: {out}",
                self.id,
                t.name()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netdevsim {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(Path::new(BUS).join("del_device"), self.id.to_string()) {
            eprintln!("netdevsim del_device {}: {e}", self.id);
        }
    }
}
