//! The flags of `plexus install`. Every flag can also be set by its environment variable, so the
//! DaemonSet can configure the installer and its `--health` probe with one `env:` list.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Parser};

use super::binaries::{DEFAULT_BINARIES, check_binary_name};
use super::conflist::PluginSettings;
use super::health::{self, DEFAULT_STATUS_FILE};
use super::kubeconfig::{ApiServer, DEFAULT_SERVICE_ACCOUNT_DIR};
use super::options::InstallConfig;
use super::paths::HostRoot;
use super::{InstallError, logging, run};
use crate::config::{DEFAULT_BIN_DIR, DEFAULT_CNI_DIR, DEFAULT_NET_DIR};

/// The kubeconfig's place, relative to the CNI config dir, unless `--kubeconfig` says otherwise.
pub const DEFAULT_KUBECONFIG_IN_CONF_DIR: &str = "plexus.d/plexus.kubeconfig";

/// Installs Plexus on this node and keeps its config current (the node DaemonSet's entrypoint).
///
/// Copies the binaries into the node's CNI bin dir, writes a kubeconfig from this pod's service
/// account, waits for the cluster's default network config, writes 00-plexus.conflist delegating
/// eth0 to it, and keeps both current until SIGTERM, when it removes 00-plexus.conflist.
#[derive(Debug, Clone, Parser)]
#[command(name = "plexus install", bin_name = "plexus install", version)]
pub struct InstallArgs {
    /// Check the running installer's status and exit: 0 when 00-plexus.conflist is in place as the
    /// installer wrote it, 1 otherwise (with the reason on stderr). For the readiness probe.
    #[arg(long)]
    pub health: bool,

    /// Where the node's root filesystem is mounted in this container; the paths below are the
    /// node's and are reached under it.
    #[arg(long, env = "PLEXUS_HOST_ROOT", default_value = "/host")]
    pub host_root: PathBuf,

    /// The node's CNI bin dir.
    #[arg(long, env = "PLEXUS_CNI_BIN_DIR", default_value = DEFAULT_BIN_DIR)]
    pub cni_bin_dir: PathBuf,

    /// The node's CNI config dir (the default network's config is found, and 00-plexus.conflist
    /// written, here).
    #[arg(long, env = "PLEXUS_CNI_CONF_DIR", default_value = DEFAULT_NET_DIR)]
    pub cni_conf_dir: PathBuf,

    /// Where the binaries to install are in this container [default: the directory of this
    /// executable].
    #[arg(long, env = "PLEXUS_SOURCE_DIR")]
    pub source_dir: Option<PathBuf>,

    /// The binaries to install, comma-separated; those missing from the source dir are skipped.
    #[arg(
        long,
        env = "PLEXUS_BINARIES",
        value_delimiter = ',',
        default_values_t = DEFAULT_BINARIES.map(String::from)
    )]
    pub binaries: Vec<String>,

    /// The kubeconfig to write for the plugin (node path); the token is copied next to it as
    /// <kubeconfig>.token [default: <cni-conf-dir>/plexus.d/plexus.kubeconfig].
    #[arg(long, env = "PLEXUS_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// This pod's service account (token and ca.crt).
    #[arg(long, env = "PLEXUS_SERVICE_ACCOUNT_DIR", default_value = DEFAULT_SERVICE_ACCOUNT_DIR)]
    pub service_account_dir: PathBuf,

    /// The API server host written into the kubeconfig.
    #[arg(long, env = "KUBERNETES_SERVICE_HOST")]
    pub kube_server_host: Option<String>,

    /// The API server port written into the kubeconfig.
    #[arg(long, env = "KUBERNETES_SERVICE_PORT")]
    pub kube_server_port: Option<u16>,

    /// The conflist's network name.
    #[arg(
        long,
        env = "PLEXUS_NETWORK_NAME",
        default_value = "plexus-cni-network"
    )]
    pub network_name: String,

    /// The conflist's cniVersion [default: the default network's].
    #[arg(long, env = "PLEXUS_CNI_VERSION")]
    pub cni_version: Option<String>,

    /// cniDir: the plugin's journal and state (node path).
    #[arg(long, env = "PLEXUS_CNI_DIR", default_value = DEFAULT_CNI_DIR)]
    pub cni_dir: PathBuf,

    /// confDir: where configs of NAD-less networks are (node path) [plugin default].
    #[arg(long, env = "PLEXUS_CONF_DIR")]
    pub conf_dir: Option<PathBuf>,

    /// multusNamespace [plugin default: kube-system].
    #[arg(long, env = "PLEXUS_MULTUS_NAMESPACE")]
    pub multus_namespace: Option<String>,

    /// namespaceIsolation [plugin default: false].
    #[arg(long, env = "PLEXUS_NAMESPACE_ISOLATION", num_args = 0..=1, default_missing_value = "true")]
    pub namespace_isolation: Option<bool>,

    /// overlapClusterNetwork: make the built-in attachments while the cluster network's plugin
    /// runs [plugin default: true].
    #[arg(long, env = "PLEXUS_OVERLAP_CLUSTER_NETWORK", num_args = 0..=1, default_missing_value = "true")]
    pub overlap_cluster_network: Option<bool>,

    /// globalNamespaces, comma-separated [plugin default: default].
    #[arg(long, env = "PLEXUS_GLOBAL_NAMESPACES")]
    pub global_namespaces: Option<String>,

    /// readinessindicatorfile (node path) [plugin default: none].
    #[arg(long, env = "PLEXUS_READINESS_INDICATOR_FILE")]
    pub readiness_indicator_file: Option<PathBuf>,

    /// logFile of the plugin (node path) [plugin default: none].
    #[arg(long, env = "PLEXUS_PLUGIN_LOG_FILE")]
    pub plugin_log_file: Option<PathBuf>,

    /// logLevel of the plugin: debug, verbose, error, panic (or trace, info, warn)
    /// [plugin default: error].
    #[arg(long, env = "PLEXUS_PLUGIN_LOG_LEVEL")]
    pub plugin_log_level: Option<String>,

    /// logToStderr of the plugin [plugin default: true].
    #[arg(long, env = "PLEXUS_PLUGIN_LOG_TO_STDERR", num_args = 0..=1, default_missing_value = "true")]
    pub plugin_log_to_stderr: Option<bool>,

    /// How often the default network config and the token are checked, in milliseconds.
    #[arg(long, env = "PLEXUS_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,

    /// Leave 00-plexus.conflist in place on SIGTERM (pods keep getting Plexus while it is down).
    #[arg(
        long,
        env = "PLEXUS_LEAVE_CONFIG_ON_EXIT",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true"
    )]
    pub leave_config_on_exit: bool,

    /// The status record the installer keeps and --health reads (in this container).
    #[arg(long, env = "PLEXUS_STATUS_FILE", default_value = DEFAULT_STATUS_FILE)]
    pub status_file: PathBuf,

    /// The installer's own log level: trace, debug, info, warn, error.
    #[arg(long, env = "PLEXUS_INSTALL_LOG_LEVEL", default_value = "info")]
    pub log_level: tracing::Level,
}

fn flag_err(flag: &'static str, value: impl std::fmt::Display, reason: &str) -> InstallError {
    InstallError::Flag {
        flag,
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

fn node_path(flag: &'static str, p: &Path) -> Result<PathBuf, InstallError> {
    if !p.is_absolute() {
        return Err(flag_err(
            flag,
            p.display(),
            "must be an absolute path on the node",
        ));
    }
    Ok(p.to_path_buf())
}

fn node_path_opt(flag: &'static str, p: &Option<PathBuf>) -> Result<Option<PathBuf>, InstallError> {
    p.as_deref().map(|p| node_path(flag, p)).transpose()
}

impl InstallArgs {
    /// Validates the flags into the installer's configuration.
    pub fn into_config(self) -> Result<InstallConfig, InstallError> {
        let cni_conf_dir = node_path("cni-conf-dir", &self.cni_conf_dir)?;
        let cni_bin_dir = node_path("cni-bin-dir", &self.cni_bin_dir)?;
        let kubeconfig = match &self.kubeconfig {
            Some(k) => node_path("kubeconfig", k)?,
            None => cni_conf_dir.join(DEFAULT_KUBECONFIG_IN_CONF_DIR),
        };
        if self.binaries.is_empty() {
            return Err(flag_err("binaries", "", "name at least one binary"));
        }
        for b in &self.binaries {
            check_binary_name(b).map_err(|r| flag_err("binaries", b, &r))?;
        }
        let source_dir = match self.source_dir {
            Some(d) => d,
            None => std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
                .ok_or_else(|| {
                    flag_err(
                        "source-dir",
                        "",
                        "not given and this executable's directory is unknown",
                    )
                })?,
        };
        let host = self
            .kube_server_host
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| {
                flag_err(
                    "kube-server-host",
                    "",
                    "not given and KUBERNETES_SERVICE_HOST is not set (is this running in a pod?)",
                )
            })?;
        let port = self.kube_server_port.ok_or_else(|| {
            flag_err(
                "kube-server-port",
                "",
                "not given and KUBERNETES_SERVICE_PORT is not set (is this running in a pod?)",
            )
        })?;
        if self.poll_interval_ms == 0 {
            return Err(flag_err("poll-interval-ms", 0, "must be at least 1"));
        }
        let network_name = self.network_name.trim().to_owned();
        if network_name.is_empty() {
            return Err(flag_err(
                "network-name",
                &self.network_name,
                "must not be empty",
            ));
        }
        let plugin = PluginSettings {
            network_name,
            plugin_type: "plexus".to_owned(),
            cni_version: self.cni_version.filter(|v| !v.trim().is_empty()),
            cni_dir: node_path("cni-dir", &self.cni_dir)?,
            conf_dir: node_path_opt("conf-dir", &self.conf_dir)?,
            log_file: node_path_opt("plugin-log-file", &self.plugin_log_file)?,
            log_level: self.plugin_log_level,
            log_to_stderr: self.plugin_log_to_stderr,
            namespace_isolation: self.namespace_isolation,
            overlap_cluster_network: self.overlap_cluster_network,
            global_namespaces: self.global_namespaces,
            multus_namespace: self.multus_namespace,
            readiness_indicator_file: node_path_opt(
                "readiness-indicator-file",
                &self.readiness_indicator_file,
            )?,
        };
        let config = InstallConfig {
            host_root: HostRoot::new(self.host_root),
            cni_bin_dir,
            cni_conf_dir,
            source_dir,
            binaries: self.binaries,
            kubeconfig,
            service_account_dir: self.service_account_dir,
            api_server: ApiServer { host, port },
            plugin,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            leave_config_on_exit: self.leave_config_on_exit,
            status_file: self.status_file,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `plexus install`: the health check, or the installer until SIGTERM.
pub fn main(args: InstallArgs) -> Result<(), InstallError> {
    if args.health {
        let summary = health::check(&args.status_file)?;
        eprintln!("{summary}");
        return Ok(());
    }
    logging::init(args.log_level);
    let config = args.into_config()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| InstallError::Runtime {
            what: "starting the async runtime",
            source,
        })?;
    let result = rt.block_on(run(config));
    if let Err(e) = &result {
        tracing::error!("plexus install failed: {e}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<InstallConfig, InstallError> {
        let mut args = vec![
            "install",
            "--kube-server-host",
            "10.96.0.1",
            "--kube-server-port",
            "443",
            "--source-dir",
            "/img",
        ];
        args.extend_from_slice(extra);
        InstallArgs::try_parse_from(args).unwrap().into_config()
    }

    #[test]
    fn defaults_are_the_daemonset_layout() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.host_root, HostRoot::new("/host"));
        assert_eq!(
            c.conflist_local(),
            PathBuf::from("/host/etc/cni/net.d/00-plexus.conflist")
        );
        assert_eq!(c.bin_dir_local(), PathBuf::from("/host/opt/cni/bin"));
        assert_eq!(
            c.kubeconfig,
            PathBuf::from("/etc/cni/net.d/plexus.d/plexus.kubeconfig")
        );
        assert_eq!(
            c.token_file(),
            PathBuf::from("/etc/cni/net.d/plexus.d/plexus.kubeconfig.token")
        );
        assert_eq!(c.binaries, DEFAULT_BINARIES.map(String::from).to_vec());
        assert_eq!(c.api_server.url(), "https://10.96.0.1:443");
        assert_eq!(c.poll_interval, Duration::from_secs(1));
        assert!(!c.leave_config_on_exit);
        assert_eq!(c.plugin.cni_dir, PathBuf::from(DEFAULT_CNI_DIR));
        assert_eq!(c.plugin.namespace_isolation, None);
        assert_eq!(c.plugin.overlap_cluster_network, None);
    }

    #[test]
    fn flags_with_and_without_values() {
        let c = parse(&[
            "--leave-config-on-exit",
            "--namespace-isolation",
            "--plugin-log-to-stderr",
            "false",
            "--binaries",
            "plexus,plexus-sriov",
        ])
        .unwrap();
        assert!(c.leave_config_on_exit);
        assert_eq!(c.plugin.namespace_isolation, Some(true));
        assert_eq!(c.plugin.log_to_stderr, Some(false));
        assert_eq!(c.binaries, vec!["plexus", "plexus-sriov"]);
        let c = parse(&["--leave-config-on-exit", "false"]).unwrap();
        assert!(!c.leave_config_on_exit);
        let c = parse(&["--overlap-cluster-network", "false"]).unwrap();
        assert_eq!(c.plugin.overlap_cluster_network, Some(false));
    }

    #[test]
    fn bad_values_name_the_flag_and_value() {
        let e = parse(&["--cni-conf-dir", "etc/cni"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--cni-conf-dir \"etc/cni\": must be an absolute path on the node"
        );
        let e = parse(&["--binaries", "plexus,../x"]).unwrap_err();
        assert!(e.to_string().starts_with("--binaries \"../x\""), "{e}");
        let e = parse(&["--plugin-log-level", "loud"]).unwrap_err();
        assert!(
            e.to_string().contains("logLevel") && e.to_string().contains("loud"),
            "{e}"
        );
        let e = parse(&["--multus-namespace", "Bad_NS"]).unwrap_err();
        assert!(e.to_string().contains("multusNamespace"), "{e}");
        let e = parse(&["--poll-interval-ms", "0"]).unwrap_err();
        assert!(e.to_string().starts_with("--poll-interval-ms"), "{e}");
        let e =
            InstallArgs::try_parse_from(["install", "--kube-server-port", "https"]).unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
    }
}
