//! The installer's life: install the binaries, then reconcile every poll interval until a
//! signal, then clean up.

use super::atomic::remove_stale_temps;
use super::binaries::install_binaries;
use super::health::{self, Status};
use super::options::InstallConfig;
use super::reconcile::{Installer, Readiness};
use super::signals::Shutdown;
use super::{CONFLIST_NAME, InstallError};

/// Runs the installer until SIGTERM/SIGINT. Fails only on what a restart might fix and no pass
/// can: the binaries cannot be installed, or signals cannot be handled.
pub async fn run(config: InstallConfig) -> Result<(), InstallError> {
    // First, so that a SIGTERM at any later point leads to the cleanup below.
    let mut shutdown = Shutdown::listen()?;
    let status_file = config.status_file.clone();
    let (conflist, kubeconfig) = (config.conflist_local(), config.kubeconfig_local());
    let not_ready = |reason: &str| Status::not_ready(reason, conflist.clone(), kubeconfig.clone());
    record(&status_file, &not_ready("starting"));
    tracing::info!(
        host_root = %config.host_root.path().display(),
        cni_bin_dir = %config.cni_bin_dir.display(),
        cni_conf_dir = %config.cni_conf_dir.display(),
        kubeconfig = %config.kubeconfig.display(),
        api_server = %config.api_server.url(),
        poll_interval = ?config.poll_interval,
        "plexus install starting"
    );

    let bin_dir = config.bin_dir_local();
    install_binaries(&config.source_dir, &bin_dir, &config.binaries)?;
    let plugin = &config.plugin.plugin_type;
    if !bin_dir.join(plugin).is_file() {
        return Err(InstallError::MissingPluginBinary {
            name: plugin.clone(),
            source_dir: config.source_dir.clone(),
            bin_dir,
        });
    }
    let kubeconfig_dir = kubeconfig.parent().unwrap_or(std::path::Path::new("/"));
    let kubeconfig_name = kubeconfig
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `.<kubeconfig>.` also covers the token copy's temps (`<kubeconfig>.token`).
    let stale = remove_stale_temps(&config.conf_dir_local(), CONFLIST_NAME)
        .into_iter()
        .chain(remove_stale_temps(kubeconfig_dir, &kubeconfig_name));
    for path in stale {
        tracing::info!(path = %path.display(), "removed a temp file an earlier run left");
    }

    let interval = config.poll_interval;
    let leave = config.leave_config_on_exit;
    let mut installer = Installer::new(config);
    tracing::info!("watching the default network config and the service account token");
    let signal = loop {
        let readiness = installer.reconcile();
        record(&status_file, &status_of(&installer, readiness));
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            signal = shutdown.recv() => break signal,
        }
    };

    tracing::info!("{signal} received: shutting down");
    // Not ready from now on, before the file goes.
    record(&status_file, &not_ready("shutting down"));
    if leave {
        tracing::info!("--leave-config-on-exit: {CONFLIST_NAME} is left in place");
    } else if installer.remove_config()? {
        tracing::info!(
            path = %installer.config().conflist_local().display(),
            "removed {CONFLIST_NAME}: new pods get the default network only until Plexus is back"
        );
    }
    tracing::info!("plexus install stopped");
    Ok(())
}

fn status_of(installer: &Installer, readiness: Readiness) -> Status {
    let config = installer.config();
    match readiness {
        Readiness::Ready { default_network } => Status {
            ready: true,
            reason: None,
            conflist: config.conflist_local(),
            content: installer
                .written()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            default_network: Some(default_network),
            kubeconfig: config.kubeconfig_local(),
        },
        Readiness::NotReady(reason) => {
            Status::not_ready(reason, config.conflist_local(), config.kubeconfig_local())
        }
    }
}

/// A record that cannot be written only makes the probe fail; the installer goes on.
fn record(status_file: &std::path::Path, status: &Status) {
    if let Err(e) = health::record(status_file, status) {
        tracing::error!("cannot record the status for the health check: {e}");
    }
}
