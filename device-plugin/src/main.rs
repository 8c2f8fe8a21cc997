//! `plexus-device-plugin`: the SR-IOV device plugin daemon (see the library docs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use plexus_device_plugin::{Daemon, Settings, config};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Advertise SR-IOV VFs to kubelet as extended resources (sriov-network-device-plugin config).
#[derive(Debug, Parser)]
#[command(name = "plexus-device-plugin", version)]
struct Args {
    /// The resource pools: sriov-network-device-plugin `config.json` format.
    #[arg(
        long,
        env = "PLEXUS_DP_CONFIG",
        default_value = "/etc/pcidp/config.json"
    )]
    config: PathBuf,
    /// Root of the sysfs tree to read devices from.
    #[arg(long, env = "PLEXUS_DP_SYSFS_ROOT", default_value = "/sys")]
    sysfs_root: PathBuf,
    /// kubelet's device plugin dir: holds kubelet.sock and the plugin sockets.
    #[arg(
        long,
        env = "PLEXUS_DP_DEVICE_PLUGINS_DIR",
        default_value = "/var/lib/kubelet/device-plugins"
    )]
    device_plugins_dir: PathBuf,
    /// Where Allocate writes device-info files for the meta-plugin.
    #[arg(
        long,
        env = "PLEXUS_DP_DEVINFO_DIR",
        default_value = "/var/run/k8s.cni.cncf.io/devinfo/dp"
    )]
    devinfo_dir: PathBuf,
    /// Address for the Prometheus `/metrics` endpoint, or `off`.
    #[arg(long, env = "PLEXUS_DP_METRICS_ADDRESS", default_value = "0.0.0.0:9109",
          value_parser = parse_metrics_address)]
    metrics_address: MetricsAddress,
    /// How often sysfs is polled for VF, driver and link changes (milliseconds). A poll reads a
    /// cheap fingerprint and rescans every device only when it changed.
    #[arg(long, env = "PLEXUS_DP_POLL_INTERVAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    poll_interval_ms: u64,
    /// A full rescan of every device at least this often (milliseconds), for what the
    /// fingerprint does not cover (new PFs).
    #[arg(long, env = "PLEXUS_DP_FULL_SCAN_INTERVAL_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(50..=3_600_000))]
    full_scan_interval_ms: u64,
    /// How often the plugin sockets and kubelet.sock are checked for a kubelet restart
    /// (milliseconds).
    #[arg(long, env = "PLEXUS_DP_SOCKET_CHECK_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    socket_check_interval_ms: u64,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` takes precedence when set.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(Debug, Clone, Copy)]
struct MetricsAddress(Option<SocketAddr>);

fn parse_metrics_address(s: &str) -> Result<MetricsAddress, String> {
    if s.eq_ignore_ascii_case("off") || s.is_empty() {
        return Ok(MetricsAddress(None));
    }
    s.parse()
        .map(|a| MetricsAddress(Some(a)))
        .map_err(|e| format!("{s:?} is not an address like 0.0.0.0:9109 (or \"off\"): {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&args.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // colour codes only for a person at a terminal, not in container logs
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plexus-device-plugin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("plexus-device-plugin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let daemon = Daemon::start(Settings {
        config,
        sysfs_root: args.sysfs_root,
        plugin_dir: args.device_plugins_dir,
        devinfo_dir: args.devinfo_dir,
        metrics_addr: args.metrics_address.0,
        poll_interval: Duration::from_millis(args.poll_interval_ms),
        full_scan_interval: Duration::from_millis(args.full_scan_interval_ms),
        socket_check_interval: Duration::from_millis(args.socket_check_interval_ms),
    })
    .await?;
    let signal = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal, "shutting down");
    daemon.shutdown().await;
    Ok(())
}
