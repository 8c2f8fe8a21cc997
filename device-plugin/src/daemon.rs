//! The daemon: the sysfs poll loop, one [`endpoint`](crate::endpoint) per pool, `/metrics`.
//!
//! sysfs attributes raise no inotify events on a real host, so the VFs, their drivers and the PFs'
//! link states are polled. Each poll computes a cheap [`fingerprint`] of what can change; only
//! when it differs from the last one (or the full-scan interval has passed) is every device read
//! again. A new inventory is published to the gRPC services only when it differs from the last
//! one, and each ListAndWatch stream sends only when its own pool changed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plexus_delegates::sriov::selectors::DpConfig;
use plexus_delegates::sriov::sysfs::{Sysfs, SysfsError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::endpoint::{self, EndpointSettings};
use crate::fingerprint::fingerprint;
use crate::inventory::{self, Inventory, Shared};
use crate::metrics::{self, Metrics};
use crate::service::{PoolService, Resource};

/// Everything the daemon is told at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: DpConfig,
    /// `/sys` on a host; a fake tree in tests.
    pub sysfs_root: PathBuf,
    /// kubelet's device-plugins dir (`/var/lib/kubelet/device-plugins`).
    pub plugin_dir: PathBuf,
    /// Where device-info files go (`/var/run/k8s.cni.cncf.io/devinfo/dp`).
    pub devinfo_dir: PathBuf,
    /// `None`: no metrics listener.
    pub metrics_addr: Option<SocketAddr>,
    /// How often sysfs is polled (a fingerprint; a full scan when it changed).
    pub poll_interval: Duration,
    /// A full scan at least this often even when no fingerprint changed (new PFs, anything the
    /// fingerprint does not cover).
    pub full_scan_interval: Duration,
    /// How often each endpoint checks its socket and kubelet's.
    pub socket_check_interval: Duration,
}

/// The daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot read SR-IOV devices under sysfs root {}: {source}", root.display())]
    Discovery {
        root: PathBuf,
        #[source]
        source: SysfsError,
    },
    #[error("kubelet device-plugins dir {} does not exist or is not a directory", path.display())]
    NoPluginDir { path: PathBuf },
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the initial discovery task failed: {0}")]
    Task(String),
}

/// A running daemon; [`Daemon::shutdown`] stops it and removes its sockets.
#[derive(Debug)]
pub struct Daemon {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    metrics_addr: Option<SocketAddr>,
    inventory: watch::Receiver<Shared>,
    metrics: Arc<Metrics>,
}

impl Daemon {
    /// Discover the pools, bind `/metrics`, start serving and registering every pool.
    pub async fn start(settings: Settings) -> Result<Daemon, DaemonError> {
        if !settings.plugin_dir.is_dir() {
            return Err(DaemonError::NoPluginDir {
                path: settings.plugin_dir.clone(),
            });
        }
        let sysfs = Sysfs::new(&settings.sysfs_root);
        let config = Arc::new(settings.config.clone());
        let first = {
            let (sysfs, config) = (sysfs.clone(), Arc::clone(&config));
            let started = Instant::now();
            let inv =
                tokio::task::spawn_blocking(move || inventory::discover(&sysfs, &config, None))
                    .await
                    .map_err(|e| DaemonError::Task(e.to_string()))?
                    .map_err(|source| DaemonError::Discovery {
                        root: settings.sysfs_root.clone(),
                        source,
                    })?;
            tracing::info!(elapsed = ?started.elapsed(), "initial discovery done");
            inv
        };
        for (resource, devices) in &first.pools {
            let healthy = devices.iter().filter(|d| d.is_healthy()).count();
            tracing::info!(%resource, devices = devices.len(), healthy, "pool discovered");
        }
        for b in &first.broken {
            tracing::warn!(error = %b, "unreadable SR-IOV device left out of every pool");
        }
        let (inv_tx, inv_rx) = watch::channel(Arc::new(first));
        let resources: Vec<Resource> = config.resources.iter().map(Resource::from).collect();
        let names: Vec<String> = resources.iter().map(|r| r.full_name.clone()).collect();
        let metrics = Arc::new(Metrics::new(&names, inv_rx.clone()));
        let listener = match settings.metrics_addr {
            Some(addr) => Some(
                metrics::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let metrics_addr = match &listener {
            Some(l) => l.local_addr().ok(),
            None => None,
        };

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(poll(
            sysfs.clone(),
            config,
            inv_tx,
            Arc::clone(&metrics),
            (settings.poll_interval, settings.full_scan_interval),
            shutdown_rx.clone(),
        )));
        let endpoint_settings = EndpointSettings {
            plugin_dir: settings.plugin_dir.clone(),
            check_interval: settings.socket_check_interval,
        };
        for resource in resources {
            let (_, never_stop) = watch::channel(false);
            let service = PoolService {
                resource: Arc::new(resource),
                inventory: inv_rx.clone(),
                sysfs: sysfs.clone(),
                devinfo_dir: settings.devinfo_dir.clone(),
                metrics: Arc::clone(&metrics),
                // each serving generation of the endpoint replaces it with its own
                stop: never_stop,
            };
            tasks.push(tokio::spawn(endpoint::run(
                service,
                endpoint_settings.clone(),
                shutdown_rx.clone(),
            )));
        }
        if let (Some(listener), Some(addr)) = (listener, metrics_addr) {
            tracing::info!(%addr, "serving /metrics");
            tasks.push(tokio::spawn(metrics::serve(
                listener,
                Arc::clone(&metrics),
                shutdown_rx,
            )));
        }
        Ok(Daemon {
            shutdown: shutdown_tx,
            tasks,
            metrics_addr,
            inventory: inv_rx,
            metrics,
        })
    }

    /// The bound metrics address (the real port when the setting said port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The current inventory, updated after every poll that changed it.
    pub fn inventory(&self) -> watch::Receiver<Shared> {
        self.inventory.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stop every task; each endpoint removes its socket file.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        tracing::info!("stopped");
    }
}

/// What one poll found.
enum Pass {
    /// The fingerprint is the one of the last full scan.
    Unchanged,
    Scanned {
        inventory: Inventory,
        fingerprint: u64,
        took: Duration,
    },
}

/// Poll every `intervals.0`, scan fully when the fingerprint changed or `intervals.1` passed,
/// publish when the inventory changed.
async fn poll(
    sysfs: Sysfs,
    config: Arc<DpConfig>,
    tx: watch::Sender<Shared>,
    metrics: Arc<Metrics>,
    (interval, full_interval): (Duration, Duration),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last_error: Option<String> = None;
    // None: the first poll scans fully
    let mut last_fingerprint: Option<u64> = None;
    let mut last_full = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
        let previous: Shared = tx.borrow().clone();
        let due = last_full.elapsed() >= full_interval;
        let result = {
            let (sysfs, config, previous) =
                (sysfs.clone(), Arc::clone(&config), Arc::clone(&previous));
            tokio::task::spawn_blocking(move || {
                // taken before the scan: a change during the scan shows at the next poll
                let fp = fingerprint(&sysfs, &previous.pfs);
                if !due && last_fingerprint == Some(fp) {
                    return Ok(Pass::Unchanged);
                }
                let started = Instant::now();
                inventory::discover(&sysfs, &config, Some(&previous)).map(|inventory| {
                    Pass::Scanned {
                        inventory,
                        fingerprint: fp,
                        took: started.elapsed(),
                    }
                })
            })
            .await
        };
        let next = match result {
            Ok(Ok(Pass::Unchanged)) => {
                metrics.poll(None);
                continue;
            }
            Ok(Ok(Pass::Scanned {
                inventory,
                fingerprint,
                took,
            })) => {
                metrics.poll(Some(took));
                last_fingerprint = Some(fingerprint);
                last_full = Instant::now();
                inventory
            }
            Ok(Err(e)) => {
                metrics.poll(None);
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!(error = %msg, "discovery failed; keeping the last inventory");
                    last_error = Some(msg);
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery task failed");
                continue;
            }
        };
        last_error = None;
        if next == *previous {
            continue;
        }
        log_changes(&previous, &next);
        tx.send_replace(Arc::new(next));
    }
}

fn log_changes(before: &Inventory, after: &Inventory) {
    for resource in after.pools.keys() {
        let c = inventory::changes(before, after, resource);
        if c.is_empty() {
            continue;
        }
        // one line per reason: a PF link flip affects all its VFs at once
        let mut by_reason: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (pci, why) in &c.now_unhealthy {
            by_reason
                .entry(why.to_string())
                .or_default()
                .push(pci.to_string());
        }
        for (reason, devices) in by_reason {
            tracing::warn!(%resource, %reason, count = devices.len(), ?devices, "devices unhealthy");
        }
        if !c.now_healthy.is_empty() {
            tracing::info!(%resource, count = c.now_healthy.len(),
                devices = ?c.now_healthy.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "devices healthy again");
        }
        if !c.added.is_empty() || !c.removed.is_empty() {
            tracing::info!(%resource, added = ?c.added.iter().map(ToString::to_string).collect::<Vec<_>>(),
                removed = ?c.removed.iter().map(ToString::to_string).collect::<Vec<_>>(),
                devices = after.pool(resource).len(), "pool changed");
        }
    }
    if before.broken != after.broken {
        for b in after.broken.iter().filter(|b| !before.broken.contains(b)) {
            tracing::warn!(error = %b, "unreadable SR-IOV device left out of every pool");
        }
    }
}
