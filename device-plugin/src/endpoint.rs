//! One pool's socket in kubelet's device-plugins dir, for the daemon's lifetime:
//!
//! 1. listen on `<dir>/<socket name>` and serve the pool's [`PoolService`];
//! 2. register with `<dir>/kubelet.sock` (retried every check interval until it works);
//! 3. every check interval: when our socket file is gone or replaced (kubelet deletes every
//!    socket in the dir when it starts), stop serving and go back to 1; when `kubelet.sock` is a
//!    new file (kubelet restarted without touching ours), register again;
//! 4. on shutdown, stop serving and remove our socket file (only if it is still ours).
//!
//! Files are compared by (device, inode, change time), so a file re-created under the same name
//! is noticed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plexus_kubelet_api::deviceplugin::device_plugin_server::DevicePluginServer;
use plexus_kubelet_api::deviceplugin::registration_client::RegistrationClient;
use plexus_kubelet_api::deviceplugin::{KUBELET_SOCKET, RegisterRequest, VERSION};
use plexus_kubelet_api::unix;
use tokio::sync::watch;

use crate::naming::socket_name;
use crate::service::{OPTIONS, PoolService};

/// How long one Register call may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping server may take to finish its connections before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Registration with kubelet failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Connect(#[from] unix::UnixError),
    #[error("kubelet refused the registration: {0}")]
    Refused(tonic::Status),
    #[error("kubelet did not answer the registration within {0:?}")]
    Timeout(Duration),
}

/// Send kubelet the RegisterRequest of a pool whose socket is `endpoint` (a file name in the
/// device-plugins dir).
pub async fn register(
    kubelet_socket: &Path,
    endpoint: &str,
    resource_name: &str,
) -> Result<(), RegisterError> {
    let call = async {
        let channel = unix::connect(kubelet_socket).await?;
        RegistrationClient::new(channel)
            .register(RegisterRequest {
                version: VERSION.to_string(),
                endpoint: endpoint.to_string(),
                resource_name: resource_name.to_string(),
                options: Some(OPTIONS),
            })
            .await
            .map_err(RegisterError::Refused)?;
        Ok(())
    };
    tokio::time::timeout(REGISTER_TIMEOUT, call)
        .await
        .map_err(|_| RegisterError::Timeout(REGISTER_TIMEOUT))?
}

/// Identifies one file: (device, inode, change time). Inode numbers are reused at once when a
/// file is deleted and another created, so the change time (ns) tells the two apart.
type FileId = (u64, u64, i64, i64);

/// The [`FileId`] of `path`, `None` when it does not exist.
fn file_id(path: &Path) -> Option<FileId> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

/// Where a pool's endpoint lives and how often it checks on kubelet.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    pub plugin_dir: PathBuf,
    pub check_interval: Duration,
}

/// Why one serving generation ended.
enum Ended {
    Shutdown,
    SocketGone,
}

/// Run the endpoint of `service`'s pool until `shutdown` turns true.
pub async fn run(
    service: PoolService,
    settings: EndpointSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let resource = service.resource.full_name.clone();
    let name = socket_name(&service.resource.prefix, &service.resource.name);
    let socket = settings.plugin_dir.join(&name);
    let kubelet = settings.plugin_dir.join(KUBELET_SOCKET);
    let mut listen_failed = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let listener = match unix::listen(&socket) {
            Ok(l) => {
                listen_failed = false;
                l
            }
            Err(e) => {
                if !listen_failed {
                    tracing::warn!(%resource, error = %e, "cannot create the plugin socket; retrying");
                    listen_failed = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(settings.check_interval) => continue,
                    _ = crate::stopped(&mut shutdown) => return,
                }
            }
        };
        let ours = file_id(&socket);
        tracing::info!(%resource, socket = %socket.display(), "serving");
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut server = {
            let svc = PoolService {
                stop: stop_rx.clone(),
                ..service.clone()
            };
            let mut stop = stop_rx;
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(DevicePluginServer::new(svc))
                    .serve_with_incoming_shutdown(unix::incoming(listener), async move {
                        crate::stopped(&mut stop).await;
                    }),
            )
        };

        let mut registered_with: Option<FileId> = None;
        let mut kubelet_missing_logged = false;
        let ended = loop {
            if file_id(&socket) != ours {
                break Ended::SocketGone;
            }
            match file_id(&kubelet) {
                None => {
                    if !kubelet_missing_logged {
                        tracing::info!(%resource, path = %kubelet.display(), "waiting for kubelet's socket");
                        kubelet_missing_logged = true;
                    }
                }
                Some(id) if registered_with != Some(id) => {
                    kubelet_missing_logged = false;
                    match register(&kubelet, &name, &resource).await {
                        Ok(()) => {
                            tracing::info!(%resource, endpoint = %name, "registered with kubelet");
                            service.metrics.add_registration(&resource);
                            registered_with = Some(id);
                        }
                        Err(e) => {
                            tracing::warn!(%resource, error = %e, "registration failed; retrying")
                        }
                    }
                }
                Some(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(settings.check_interval) => {}
                _ = crate::stopped(&mut shutdown) => break Ended::Shutdown,
            }
        };

        let _ = stop_tx.send(true);
        if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
            server.abort();
        }
        match ended {
            Ended::Shutdown => {
                if file_id(&socket) == ours {
                    match std::fs::remove_file(&socket) {
                        Ok(()) => {
                            tracing::info!(%resource, socket = %socket.display(), "removed socket")
                        }
                        Err(e) => tracing::warn!(%resource, socket = %socket.display(), error = %e,
                            "cannot remove socket"),
                    }
                }
                return;
            }
            Ended::SocketGone => {
                tracing::warn!(%resource, socket = %socket.display(),
                    "plugin socket was removed (kubelet restarted?): re-creating it and registering again");
            }
        }
    }
}
