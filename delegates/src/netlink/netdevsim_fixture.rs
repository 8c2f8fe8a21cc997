//! Test fixture: a netdevsim device (simulated SR-IOV PF with VFs that accept and report VF
//! settings) whose PF netdev lives in a [`TestNetns`]. The host kernel here lacks netdevsim;
//! the VM's kernel has it (see `scripts/vm-suites.sh`, which runs tests named `netdevsim`).

#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::fixture::{TestNetns, skip};

const BUS: &str = "/sys/bus/netdevsim";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A netdevsim device, deleted on drop.
#[derive(Debug)]
pub(crate) struct Netdevsim {
    id: u32,
    /// The PF netdev's name in the test namespace.
    pub pf: String,
}

impl Netdevsim {
    /// A device with one port and `vfs` VFs, its PF netdev created inside `t`. `None` (after
    /// printing why, or panicking under `PLEXUS_REQUIRE_KERNEL=1`) when the kernel has no
    /// netdevsim.
    pub fn new(test: &str, t: &TestNetns, vfs: u32) -> Option<Netdevsim> {
        if !Path::new(BUS).join("new_device").exists() {
            let _ = Command::new("modprobe").arg("netdevsim").status();
        }
        if !Path::new(BUS).join("new_device").exists() {
            skip(test, "kernel lacks netdevsim");
            return None;
        }
        let id = 700 + (std::process::id() % 1000) * 16 + NEXT.fetch_add(1, Ordering::Relaxed);
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

    /// The port netdev whose parent device is this netdevsim (`ip -d link` says `parentdev`).
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
