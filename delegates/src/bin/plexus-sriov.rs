//! `plexus-sriov`: the sriov delegate as a standalone CNI plugin, taking sriov-cni's
//! configuration. Logs go where the configuration's `logFile`/`logLevel` say (as sriov-cni's
//! do), else to stderr filtered by `PLEXUS_LOG`. `PLEXUS_SYSFS_ROOT` and
//! `PLEXUS_SRIOV_STATE_DIR` move sysfs and the state directory (tests, containers).

use std::fs::OpenOptions;
use std::process::ExitCode;
use std::sync::Mutex;

use plexus_delegates::cni::config::parse_config;
use plexus_delegates::cni::plugin::run_main_with;
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
    run_main_with(&SriovPlugin::from_env(), init_logging)
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
