//! `readinessindicatorfile`: the cluster network's "I am ready" file (Flannel's `subnet.env`,
//! Calico's config, ...). An ADD waits for it, polling, for a bounded time, then fails with CNI
//! code 11 (try again later) so the runtime retries the sandbox.

use std::path::Path;
use std::time::{Duration, Instant};

use super::ConfigError;

/// Waits until `path` exists, checking every `poll` for at most `timeout` (checked once at
/// least, so a zero timeout is a plain check). Blocking: call it before starting async work or
/// from a blocking thread.
pub fn wait_for_readiness(
    path: &Path,
    timeout: Duration,
    poll: Duration,
) -> Result<(), ConfigError> {
    let start = Instant::now();
    loop {
        if path.exists() {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            tracing::error!(path = %path.display(), ?waited, "readiness indicator file missing");
            return Err(ConfigError::NotReady {
                path: path.to_path_buf(),
                waited,
            });
        }
        std::thread::sleep(poll.min(timeout - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_delegates::cni::{CniError, ErrorCode};

    #[test]
    fn existing_file_is_ready_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("ready");
        std::fs::write(&f, "").unwrap();
        wait_for_readiness(&f, Duration::ZERO, Duration::from_millis(1)).unwrap();
    }

    #[test]
    fn missing_file_fails_with_try_again_later() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("never");
        let e = wait_for_readiness(&f, Duration::ZERO, Duration::from_millis(1)).unwrap_err();
        assert!(e.to_string().contains("readinessindicatorfile"), "{e}");
        assert!(e.to_string().contains("never"), "{e}");
        let cni: CniError = e.into();
        assert!(cni.is(ErrorCode::TryAgainLater));
    }

    #[test]
    fn file_appearing_while_waiting_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("later");
        let g = f.clone();
        // The writer finishes before the (generous) bound whatever the scheduling.
        let writer = std::thread::spawn(move || std::fs::write(g, "").unwrap());
        wait_for_readiness(&f, Duration::from_secs(60), Duration::from_millis(5)).unwrap();
        writer.join().unwrap();
    }
}
