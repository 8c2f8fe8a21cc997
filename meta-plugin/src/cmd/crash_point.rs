//! Test-only fault injector: with `PLEXUS_TEST_SIGKILL_AT=<step>` in its environment, `plexus`
//! sends itself SIGKILL when an ADD reaches that step boundary, so the crash-safety tests
//! (`tests/crash_e2e.rs`) can stop a real process at every point where the journal, the kernel
//! and the status file disagree, and check that the following DEL (or ADD) still leaves nothing.
//!
//! A real SIGKILL, not an error return: no destructor, no rollback, no flush runs, exactly as
//! when the runtime's timeout or the OOM killer ends the process. Nothing sets the variable in
//! production; it is read once per process.
//!
//! The steps of an ADD, in order (`<i>` is the attachment's index in the plan, 0 = eth0):
//! - `locked`: the container's journal lock is held, nothing written yet;
//! - `pending:<i>`: attachment i's pending record is durable, its delegate not run;
//! - `delegate-added:<i>`: attachment i's delegate ADD succeeded, its record still pending;
//! - `recorded:<i>`: attachment i's record is updated (state `added`, with the result);
//! - `default-routes`: the default-route choices are applied;
//! - `network-status`: network-status is written (local mode: the status file), the ADD not
//!   yet marked complete in the journal.

use std::sync::OnceLock;

/// The environment variable naming the step to die at.
pub const ENV: &str = "PLEXUS_TEST_SIGKILL_AT";

fn configured() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Called at each step boundary of an ADD; kills the process when `step` is the configured one.
pub fn reached(step: &str) {
    if configured() == Some(step) {
        kill_self(step);
    }
}

/// [`reached`] for a per-attachment step: `reached_indexed("pending", 1)` is `pending:1`.
pub fn reached_indexed(step: &str, index: usize) {
    if let Some(at) = configured()
        && at.split_once(':') == Some((step, index.to_string().as_str()))
    {
        kill_self(at);
    }
}

fn kill_self(step: &str) {
    tracing::warn!(
        step,
        "{ENV}: test fault injector, sending SIGKILL to this process"
    );
    if let Err(e) = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGKILL) {
        tracing::error!(step, "{ENV}: cannot send SIGKILL to this process: {e}");
    }
}
