//! Talking to a running plugin on the calling thread: its stdin fed, its stdout kept, its
//! stderr copied through to ours (the head kept for error details), its exit noticed through a
//! pidfd, all in one `poll(2)` loop bounded by the deadline.
//!
//! No helper threads: a pod ADD executes a plugin or two, and a reader thread per pipe plus a
//! waiter thread per plugin were a measurable part of the meta-plugin's own time. The child is
//! reaped only after the pidfd said it exited, so until then its pid cannot be recycled and a
//! kill at the deadline reaches the plugin and nothing else.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// How much of stderr is kept for error details.
pub(super) const DETAIL_LIMIT: usize = 4096;

/// How long the output pipes are still read after the exit when the deadline is nearer: a
/// plugin exiting just before the deadline still has its output read.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// Without a pidfd (kernels before 5.3) the exit is checked this often.
const EXIT_CHECK_WITHOUT_PIDFD: Duration = Duration::from_millis(5);

/// What the plugin's run came to.
#[derive(Debug)]
pub(super) enum Ended {
    /// Exited, and both output pipes reached end-of-file.
    Finished {
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr_head: Vec<u8>,
    },
    /// Still running at the deadline. Not reaped: the caller kills and reaps it.
    Running,
    /// Exited, but something it left behind kept its stdout open past the deadline.
    StdoutHeld { status: ExitStatus },
}

/// Feeds `stdin` to the child, reads its output and waits for its exit, until `deadline`.
/// Takes the child's three pipes (all must be piped).
pub(super) fn talk(
    child: &mut Child,
    stdin: &[u8],
    plugin: &str,
    deadline: Instant,
) -> io::Result<Ended> {
    let mut input = child.stdin.take().map(|p| (p, 0usize));
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    for fd in [
        input.as_ref().map(|(p, _)| p.as_fd()),
        stdout.as_ref().map(|p| p.as_fd()),
        stderr.as_ref().map(|p| p.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    }
    if stdin.is_empty() {
        input = None;
    }
    let pidfd = pidfd_open(child.id());
    let mut status: Option<ExitStatus> = None;
    let mut limit = deadline;
    let mut out = Vec::new();
    let mut err_head = Vec::new();

    loop {
        if status.is_none()
            && pidfd.is_none()
            && let Some(s) = child.try_wait()?
        {
            status = Some(s);
            limit = limit.max(Instant::now() + DRAIN_AFTER_EXIT);
        }
        if let Some(status) = status
            && stdout.is_none()
            && stderr.is_none()
        {
            return Ok(Ended::Finished {
                status,
                stdout: out,
                stderr_head: err_head,
            });
        }
        let now = Instant::now();
        if now >= limit {
            return Ok(match status {
                None => Ended::Running,
                // Only stderr still open: what it said so far is enough.
                Some(status) if stdout.is_none() => Ended::Finished {
                    status,
                    stdout: out,
                    stderr_head: err_head,
                },
                Some(status) => Ended::StdoutHeld { status },
            });
        }
        let mut wait = limit - now;
        if status.is_none() && pidfd.is_none() {
            wait = wait.min(EXIT_CHECK_WITHOUT_PIDFD);
        }

        // The slots: stdin, stdout, stderr, pidfd (absent ones are not polled).
        let mut fds = Vec::with_capacity(4);
        let mut slots = [usize::MAX; 4];
        if let Some((pipe, _)) = &input {
            slots[0] = fds.len();
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(pipe) = &stdout {
            slots[1] = fds.len();
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
        }
        if let Some(pipe) = &stderr {
            slots[2] = fds.len();
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
        }
        if let (Some(fd), None) = (&pidfd, status) {
            slots[3] = fds.len();
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, poll_timeout(wait)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: [bool; 4] =
            std::array::from_fn(|i| slots[i] != usize::MAX && fds[slots[i]].any().unwrap_or(false));
        drop(fds);

        if ready[0]
            && let Some((pipe, written)) = &mut input
        {
            match pipe.write(&stdin[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A plugin may exit without reading its stdin (EPIPE): not our error to report.
                Err(_) => *written = stdin.len(),
            }
            if *written >= stdin.len() {
                // Closing the pipe is the plugin's end-of-file.
                input = None;
            }
        }
        if ready[1] && drain(stdout.as_mut(), |chunk| out.extend_from_slice(chunk))? {
            stdout = None;
        }
        if ready[2] {
            let closed = drain(stderr.as_mut(), |chunk| {
                let _ = io::stderr().write_all(chunk);
                let room = DETAIL_LIMIT.saturating_sub(err_head.len());
                err_head.extend_from_slice(&chunk[..chunk.len().min(room)]);
            })?;
            if closed {
                stderr = None;
                if !err_head.is_empty() {
                    tracing::debug!(plugin, stderr = %String::from_utf8_lossy(&err_head), "plugin stderr");
                }
            }
        }
        if ready[3] {
            // The pidfd is readable once the plugin exited: reaping cannot block now.
            status = Some(child.wait()?);
            limit = limit.max(Instant::now() + DRAIN_AFTER_EXIT);
        }
    }
}

/// Reads what is available from a non-blocking pipe into `sink`; true at end-of-file (or a
/// read error, after which nothing more can come).
fn drain(pipe: Option<&mut impl Read>, mut sink: impl FnMut(&[u8])) -> io::Result<bool> {
    let Some(pipe) = pipe else {
        return Ok(true);
    };
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => sink(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(true),
        }
    }
}

/// A pidfd for the (not yet reaped) child, or `None` where the kernel has none (before 5.3),
/// in which case the loop checks for the exit every few milliseconds instead.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

fn poll_timeout(wait: Duration) -> PollTimeout {
    // Rounded up, so the loop never spins on a sub-millisecond remainder.
    let ms = wait.as_micros().div_ceil(1000);
    PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
}
