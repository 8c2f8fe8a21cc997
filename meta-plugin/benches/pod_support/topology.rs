//! The simulated node and its pods: named network namespaces (`ip netns`), deleted on drop even
//! when the bench fails, and what is checked in them after each verb.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};

/// The uplink the macvlan networks hang off, inside the node namespace.
pub const UPLINK: &str = "up0";

/// Runs a setup command; its stdout, or an error with its stderr.
pub fn sh(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace created with `ip netns add`, deleted on drop.
pub struct NamedNetns {
    name: String,
    path: PathBuf,
}

impl NamedNetns {
    pub fn add(name: String) -> Result<Self> {
        sh("ip", &["netns", "add", &name])?;
        let path = Path::new("/run/netns").join(&name);
        Ok(NamedNetns { name, path })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Link names inside, without the `@peer` suffix.
    pub fn links(&self) -> Result<Vec<String>> {
        let out = sh("ip", &["-n", &self.name, "-o", "link", "show"])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .collect())
    }

    /// Fails unless the namespace holds exactly `expected` (in any order).
    pub fn expect_links(&self, expected: &[&str], when: &str) -> Result<()> {
        let mut have = self.links()?;
        have.sort();
        let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        if have != want {
            bail!(
                "{when}: netns {} has links {have:?}, expected {want:?}",
                self.name
            );
        }
        Ok(())
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        if let Err(e) = sh("ip", &["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// The node: a namespace with a veth pair whose end `up0` is the macvlan master. The calling
/// thread moves into it, so every plugin the bench executes inherits it, as plugins inherit
/// the runtime's namespace on a real node, without `ip netns exec` in the timed path.
pub fn enter_node(name: String) -> Result<NamedNetns> {
    let node = NamedNetns::add(name)?;
    let n = node.name().to_owned();
    sh(
        "ip",
        &[
            "-n", &n, "link", "add", UPLINK, "type", "veth", "peer", "name", "up0p",
        ],
    )?;
    for link in ["lo", UPLINK, "up0p"] {
        sh("ip", &["-n", &n, "link", "set", link, "up"])?;
    }
    let file =
        File::open(node.path()).with_context(|| format!("opening {}", node.path().display()))?;
    setns(file, CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns into {}", node.path().display()))?;
    Ok(node)
}

/// host-local leases left under `ipam_dir` (files named like IP addresses), as `<net>/<ip>`.
pub fn leases(ipam_dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let Ok(nets) = std::fs::read_dir(ipam_dir) else {
        return Ok(out);
    };
    for net in nets {
        let net = net?;
        for f in std::fs::read_dir(net.path())? {
            let name = f?.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                out.push(format!("{}/{name}", net.file_name().to_string_lossy()));
            }
        }
    }
    Ok(out)
}
