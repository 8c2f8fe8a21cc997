//! A netdevsim device (a simulated SR-IOV PF whose VFs accept and report VF settings over
//! netlink, like a real NIC's driver) with its PF netdev created in a test namespace. The host
//! kernel here lacks netdevsim; the VM's has it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use plexus_delegates::netns::fixture::{TestNetns, skip};

const BUS: &str = "/sys/bus/netdevsim";

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

/// A netdevsim device with one port and some VFs, deleted on drop.
#[derive(Debug)]
pub struct Netdevsim {
    id: u32,
    /// The PF netdev's name in the namespace it was created in.
    pub pf: String,
}

impl Netdevsim {
    /// A device with `vfs` VFs whose PF netdev is created inside `ns`. Call [`available`]
    /// first.
    pub fn new(ns: &TestNetns, vfs: u32) -> Netdevsim {
        // ids are global to the kernel: keep clear of the delegates crate's fixture (700 + ...)
        let id = 20_000 + (std::process::id() % 1000) * 16 + NEXT.fetch_add(1, Ordering::Relaxed);
        // netdevsim creates the port netdev in the namespace of the writer
        ns.netns()
            .run_in(|| std::fs::write(Path::new(BUS).join("new_device"), format!("{id} 1")))
            .expect("enter the node netns")
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
        dev.pf = dev.find_pf(ns);
        dev
    }

    /// The port netdev whose parent device is this netdevsim (`ip -d link` says `parentdev`);
    /// udev-less kernels create it asynchronously, so look for a while.
    fn find_pf(&self, ns: &TestNetns) -> String {
        let parent = format!("parentdev netdevsim{} ", self.id);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = ns.run_ok("ip", &["-d", "-o", "link", "show"]);
            if let Some(line) = out.lines().find(|l| l.contains(&parent)) {
                let name = line
                    .split(": ")
                    .nth(1)
                    .and_then(|n| n.split('@').next())
                    .expect("an ip -o link line has a name");
                return name.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "netdevsim{}: no port netdev in {}: {out}",
                self.id,
                ns.name()
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
