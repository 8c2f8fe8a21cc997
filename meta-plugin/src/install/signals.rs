//! The signals that stop the installer: SIGTERM (kubelet stopping the pod) and SIGINT.

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::InstallError;

/// Listens for SIGTERM and SIGINT from the moment it is created (a signal that arrives while
/// the installer is busy is kept until [`Shutdown::recv`] is awaited). Needs a tokio runtime.
#[derive(Debug)]
pub struct Shutdown {
    term: Signal,
    int: Signal,
}

impl Shutdown {
    pub fn listen() -> Result<Self, InstallError> {
        let listen = |kind| {
            signal(kind).map_err(|source| InstallError::Runtime {
                what: "installing the signal handlers",
                source,
            })
        };
        Ok(Shutdown {
            term: listen(SignalKind::terminate())?,
            int: listen(SignalKind::interrupt())?,
        })
    }

    /// Waits for one of the signals; returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
