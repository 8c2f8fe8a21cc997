//! Running one CNI binary exactly as a container runtime does: an empty environment plus the
//! `CNI_*` variables and `PATH`, the network config on stdin, the reply on stdout.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;

/// The `PATH` containerd passes to plugins.
pub const RUNTIME_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the runtime puts in the environment of a plugin, besides `CNI_COMMAND`.
#[derive(Debug, Clone)]
pub struct CniEnv {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub cni_path: String,
    pub cni_args: String,
}

/// One finished plugin process.
#[derive(Debug)]
pub struct Call {
    /// spawn → exit, as the runtime would see it.
    pub wall: Duration,
    /// The wall-clock time of day (UTC, since midnight) of the spawn, to place the plugin's
    /// own log lines (which carry that clock) on the bench's.
    pub spawned_at: Duration,
    /// user + system CPU of the process and every descendant it waited for (a plugin's IPAM).
    pub cpu: Duration,
    pub stdout: Vec<u8>,
}

/// The wall clock's time of day (UTC), as tracing's timestamps show it.
fn time_of_day() -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::new(now.as_secs() % 86_400, now.subsec_nanos())
}

fn children_cpu() -> Result<Duration> {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage(RUSAGE_CHILDREN)")?;
    let us = u.user_time().num_microseconds() + u.system_time().num_microseconds();
    Ok(Duration::from_micros(u64::try_from(us).unwrap_or(0)))
}

/// Executes `bin` for `verb` with exactly `env` and `stdin`; a failed plugin is an error that
/// shows its reply and stderr.
pub fn run(bin: &Path, verb: &str, env: &CniEnv, stdin: &[u8]) -> Result<Call> {
    let cpu_before = children_cpu()?;
    let start = Instant::now();
    let spawned_at = time_of_day();
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", RUNTIME_PATH)
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_NETNS", &env.netns)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_PATH", &env.cni_path)
        .env("CNI_ARGS", &env.cni_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    child
        .stdin
        .take()
        .context("the child's stdin")?
        .write_all(stdin)
        .with_context(|| format!("writing the config to {}", bin.display()))?;
    let out = child.wait_with_output()?;
    let wall = start.elapsed();
    let cpu = children_cpu()?.saturating_sub(cpu_before);
    if !out.status.success() {
        bail!(
            "{} {verb} (ifname {}) failed ({}): {}{}",
            bin.display(),
            env.ifname,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Call {
        wall,
        spawned_at,
        cpu,
        stdout: out.stdout,
    })
}
