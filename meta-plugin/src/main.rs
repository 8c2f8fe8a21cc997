//! `plexus`: the CNI meta-plugin binary the container runtime executes.
//!
//! env + stdin → [`Request`] → the shared verb dispatch over [`MetaPlugin`] → the one reply
//! writer. Logging follows the config (`logFile`, `logLevel`, `logToStderr`); stdin is never
//! logged.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use plexus::cmd::MetaPlugin;
use plexus::config::{DEFAULT_NET_DIR, PlexusConfig};
use plexus::kube::{ClientOptions, KubeClient};
use plexus::local::LocalApi;
use plexus_delegates::cni::plugin::Outcome;
use plexus_delegates::cni::reply::{to_reply_bytes, write_stdout};
use plexus_delegates::cni::{CniError, CniResult, CniVersion, Command, Plugin, Request, dispatch};

/// The initial stdin buffer: a configuration with pod annotations and a cluster network
/// inline is a few KiB; a larger one grows the buffer.
const STDIN_CAPACITY: usize = 16 * 1024;

/// Answers every verb with one error (a config that cannot be used), through the shared
/// dispatch so the reply has the config's version.
struct Failing(CniError);

impl Plugin for Failing {
    fn add(&self, _: &Request) -> Result<CniResult, CniError> {
        Err(self.0.clone())
    }
    fn del(&self, _: &Request) -> Result<(), CniError> {
        Err(self.0.clone())
    }
    fn check(&self, _: &Request) -> Result<(), CniError> {
        Err(self.0.clone())
    }
    fn status(&self, _: &Request) -> Result<(), CniError> {
        Err(self.0.clone())
    }
    fn gc(&self, _: &Request) -> Result<(), CniError> {
        Err(self.0.clone())
    }
}

fn init_logging(config: Option<&PlexusConfig>) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    let level = config
        .map(|c| c.log_level.tracing_level())
        .unwrap_or(tracing::Level::ERROR);
    let file = match config.and_then(|c| c.log_file.as_ref()) {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening logFile {}", path.display()))?,
            )
        }
        None => None,
    };
    let to_stderr = config.is_none_or(|c| c.log_to_stderr);
    let writer = match (file, to_stderr) {
        (Some(f), true) => BoxMakeWriter::new(std::sync::Mutex::new(f).and(std::io::stderr)),
        (Some(f), false) => BoxMakeWriter::new(std::sync::Mutex::new(f)),
        (None, true) => BoxMakeWriter::new(std::io::stderr),
        (None, false) => BoxMakeWriter::new(std::io::sink),
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn run(req: &Request) -> Outcome {
    if req.command == Command::Version {
        return dispatch(&Failing(CniError::internal("unused")), req);
    }
    let config = match PlexusConfig::parse(&req.config) {
        Ok(c) => c,
        Err(e) => {
            let _ = init_logging(None);
            return dispatch(&Failing(e.into()), req);
        }
    };
    if let Err(e) = init_logging(Some(&config)) {
        // The configured log file is unusable: still serve the request, logging to stderr.
        let _ = init_logging(None);
        tracing::error!("{e:#}");
    }
    let span = tracing::info_span!(
        "plexus",
        cmd = req.command.as_str(),
        pod = %req.pod_ref().unwrap_or_default(),
        container = %req.container_id,
        ifname = %req.ifname,
    );
    let _guard = span.enter();
    // One current-thread runtime for the async work (API server, kubelet PodResources). Local
    // mode needs its I/O and time drivers too (the kubelet lookup when a NAD names a
    // resourceName); building them costs ~35 µs more than a bare runtime (measured), which is
    // not worth a second construction path.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return dispatch(
                &Failing(CniError::internal(format!("cannot start the runtime: {e}"))),
                req,
            );
        }
    };
    let net_dir = std::env::var_os("PLEXUS_NET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_NET_DIR));
    match &config.kubeconfig {
        Some(path) => {
            let kube = rt
                .block_on(KubeClient::connect(Some(path), &ClientOptions::default()))
                .map_err(CniError::from);
            let plugin = MetaPlugin {
                kube,
                rt,
                net_dir,
                has_pods: true,
            };
            dispatch(&plugin, req)
        }
        None => {
            let plugin = MetaPlugin {
                kube: Ok(LocalApi::from_config(&config)),
                rt,
                net_dir,
                has_pods: false,
            };
            dispatch(&plugin, req)
        }
    }
}

fn main() -> ExitCode {
    // `plexus install ...`: the node DaemonSet's entrypoint. A container runtime never passes
    // arguments to a CNI plugin, so the CNI path below is reached exactly as before.
    if std::env::args_os().nth(1).is_some_and(|a| a == "install") {
        return install_main();
    }
    // Sized for a typical configuration, so it is read in one or two calls.
    let mut stdin = Vec::with_capacity(STDIN_CAPACITY);
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Err(e) => failure(CniError::io(format!("cannot read stdin: {e}"))),
        Ok(_) => match Request::parse(|k| std::env::var(k).ok(), stdin) {
            Ok(req) => run(&req),
            Err(e) => failure(e),
        },
    };
    write_stdout(&outcome.stdout);
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `plexus install`: clap-parsed flags, errors reported here.
fn install_main() -> ExitCode {
    use clap::Parser;
    let args = plexus::install::InstallArgs::parse_from(std::env::args_os().skip(1));
    match plexus::install::main(args).context("plexus install") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn failure(e: CniError) -> Outcome {
    Outcome {
        stdout: to_reply_bytes(&e.to_json(CniVersion::LATEST.as_str())),
        success: false,
    }
}
