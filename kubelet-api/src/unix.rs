//! gRPC over unix sockets, both ways. kubelet speaks HTTP/2 gRPC on unix sockets only; tonic's
//! transport takes a custom connector for the client side and an incoming stream for the server.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint};

/// Why a unix-socket channel or listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UnixError {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A gRPC channel to the server listening on `path`. The URI is required by tonic but unused:
/// every connection goes to the socket.
pub async fn connect(path: &Path) -> Result<Channel, UnixError> {
    let socket = path.to_path_buf();
    // A syntactically valid placeholder authority; the connector ignores it.
    let endpoint = Endpoint::from_static("http://kubelet.invalid");
    endpoint
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| UnixError::Connect {
            path: path.to_path_buf(),
            source,
        })
}

/// Binds a listener on `path`, replacing a stale socket file left by an earlier run (a live
/// server would still hold its own inode; kubelet does the same when it restarts).
pub fn listen(path: &Path) -> Result<UnixListener, UnixError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(UnixError::Listen {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    UnixListener::bind(path).map_err(|source| UnixError::Listen {
        path: path.to_path_buf(),
        source,
    })
}

/// The incoming-connection stream tonic's `Server::serve_with_incoming` takes.
pub fn incoming(
    listener: UnixListener,
) -> impl futures_core::Stream<Item = std::io::Result<UnixStream>> {
    tokio_stream::wrappers::UnixListenerStream::new(listener)
}
