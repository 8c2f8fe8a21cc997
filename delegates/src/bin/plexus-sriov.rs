//! `plexus-sriov`: the sriov delegate as a standalone CNI plugin, taking sriov-cni's
//! configuration. Logs go where the configuration's `logFile`/`logLevel` say (as sriov-cni's
//! do), else to stderr filtered by `PLEXUS_LOG`. `PLEXUS_SYSFS_ROOT` and
//! `PLEXUS_SRIOV_STATE_DIR` move sysfs and the state directory (tests, containers).

use std::fs::OpenOptions;
use std::io::Read;
use std::process::ExitCode;
use std::sync::Mutex;

use plexus_delegates::cni::config::parse_config;
use plexus_delegates::cni::plugin::Outcome;
use plexus_delegates::cni::reply::{to_reply_bytes, write_stdout};
use plexus_delegates::cni::{CniError, CniVersion, Request, dispatch};
use plexus_delegates::sriov::SriovPlugin;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Default, Deserialize)]
struct LogConfig {
    #[serde(rename = "logLevel", default)]
    log_level: String,
    #[serde(rename = "logFile", default)]
    log_file: String,
}

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    init_logging(&stdin);
    let outcome = match read {
        Err(e) => failure(CniError::io(format!("cannot read stdin: {e}"))),
        Ok(_) => match Request::parse(|k| std::env::var(k).ok(), stdin) {
            Ok(req) => dispatch(&SriovPlugin::from_env(), &req),
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

fn failure(e: CniError) -> Outcome {
    tracing::error!(code = e.code, "{e}");
    Outcome {
        stdout: to_reply_bytes(&e.to_json(CniVersion::LATEST.as_str())),
        success: false,
    }
}

/// sriov-cni's levels (panic, error, warning, info, debug) as tracing filters; `PLEXUS_LOG`
/// wins, the default is warnings.
fn filter(level: &str) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_env("PLEXUS_LOG") {
        return f;
    }
    let directive = match level.to_ascii_lowercase().as_str() {
        "panic" | "error" => "error",
        "info" => "info",
        "debug" => "debug",
        _ => "warn",
    };
    EnvFilter::new(directive)
}

fn init_logging(stdin: &[u8]) {
    let conf: LogConfig = parse_config(stdin).unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&conf.log_level))
        .with_ansi(false);
    if !conf.log_file.is_empty() {
        match OpenOptions::new()
            .create(true)
            .append(true)
            .open(&conf.log_file)
        {
            Ok(file) => {
                let _ = builder.with_writer(Mutex::new(file)).try_init();
                return;
            }
            Err(e) => {
                let _ = builder.with_writer(std::io::stderr).try_init();
                tracing::warn!("logFile {}: {e}; logging to stderr", conf.log_file);
                return;
            }
        }
    }
    let _ = builder.with_writer(std::io::stderr).try_init();
}
