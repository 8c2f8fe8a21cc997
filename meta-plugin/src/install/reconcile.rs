//! One pass of "make the node match": credentials first, then `00-plexus.conflist`.
//!
//! Every pass compares what should be on the node with what is, and writes only differences, so
//! it is idempotent and repairs drift from any cause: a rotated token, a rewritten or replaced
//! default network config, a deleted `00-plexus.conflist`. The [`Installer`] remembers only what
//! it needs for log messages (each change is logged once, not every pass) and the bytes it last
//! wrote (so that on exit it removes only its own file).
//!
//! When the default network's config disappears and no other config takes its place,
//! `00-plexus.conflist` is removed: a conflist delegating to a missing file would fail every pod
//! ADD, while an empty config dir makes the runtime report the node's network as not ready, which
//! is what it is. (Multus's thin entrypoint keeps its config and waits for the file to come back.)
//! It is written again as soon as a default network config appears.

use std::path::PathBuf;

use super::atomic::{ensure_content, remove_durably};
use super::conflist::HostRefs;
use super::default_network::{self, DefaultNetwork, discover};
use super::kubeconfig::{SECRET_MODE, ServiceAccount, render};
use super::options::InstallConfig;
use super::{CONFLIST_NAME, InstallError};

/// `00-plexus.conflist` is not a secret: it is readable like other CNI configs.
pub const CONFLIST_MODE: u32 = 0o644;

/// The outcome of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// `00-plexus.conflist` is in place and delegates to `default_network` (node path).
    Ready { default_network: PathBuf },
    /// It is not (the reason says why; an existing file may still be in place).
    NotReady(String),
}

/// The reconciler and what it remembers between passes.
#[derive(Debug)]
pub struct Installer {
    config: InstallConfig,
    /// The `00-plexus.conflist` bytes this process last wrote or found in place.
    written: Option<Vec<u8>>,
    default_file: Option<String>,
    skipped: Vec<String>,
    problem: Option<String>,
}

impl Installer {
    pub fn new(config: InstallConfig) -> Self {
        Installer {
            config,
            written: None,
            default_file: None,
            skipped: Vec::new(),
            problem: None,
        }
    }

    pub fn config(&self) -> &InstallConfig {
        &self.config
    }

    /// The `00-plexus.conflist` content this installer put in place, if any.
    pub fn written(&self) -> Option<&[u8]> {
        self.written.as_deref()
    }

    /// One pass. Errors make the node not ready; they are logged when they first occur.
    pub fn reconcile(&mut self) -> Readiness {
        let readiness = self
            .credentials()
            .and_then(|()| self.conflist())
            .unwrap_or_else(|e| Readiness::NotReady(e.to_string()));
        match &readiness {
            Readiness::NotReady(reason) if self.problem.as_deref() != Some(reason) => {
                tracing::warn!("not ready: {reason}");
                self.problem = Some(reason.clone());
            }
            Readiness::Ready { default_network } if self.problem.is_some() => {
                tracing::info!(default_network = %default_network.display(), "ready again");
                self.problem = None;
            }
            _ => {}
        }
        readiness
    }

    /// The token copy and the kubeconfig. The token is written first: the kubeconfig refers
    /// to it.
    fn credentials(&mut self) -> Result<(), InstallError> {
        let sa = ServiceAccount::read(&self.config.service_account_dir)?;
        let kubeconfig = self.config.kubeconfig_local();
        if let Some(dir) = kubeconfig.parent() {
            std::fs::create_dir_all(dir).map_err(|e| InstallError::io("creating", dir, e))?;
        }
        let token_host = self.config.token_file();
        let token_local = self.config.host_root.local(&token_host);
        let had_token = token_local.exists();
        if ensure_content(&token_local, sa.token.as_bytes(), SECRET_MODE)? {
            if had_token {
                tracing::info!(path = %token_host.display(), "service account token rotated: replaced the node's copy");
            } else {
                tracing::info!(path = %token_host.display(), "wrote the service account token (mode 0600)");
            }
        }
        let text = render(&self.config.api_server, &sa.ca_pem, &token_host);
        if ensure_content(&kubeconfig, &text, SECRET_MODE)? {
            tracing::info!(
                path = %self.config.kubeconfig.display(),
                server = %self.config.api_server.url(),
                "wrote the kubeconfig (mode 0600; tokenFile {})",
                token_host.display()
            );
        }
        Ok(())
    }

    fn conflist(&mut self) -> Result<Readiness, InstallError> {
        let conf_dir = self.config.conf_dir_local();
        let found = discover(&conf_dir, CONFLIST_NAME, &self.config.plugin.plugin_type)?;
        if found.skipped != self.skipped {
            for reason in found.skipped.iter().filter(|r| !self.skipped.contains(r)) {
                tracing::warn!("passed over a CNI config: {reason}");
            }
            self.skipped = found.skipped;
        }
        let path = self.config.conflist_local();
        let Some(network) = found.found else {
            if remove_durably(&path)? {
                tracing::warn!(
                    path = %path.display(),
                    previous = self.default_file.as_deref().unwrap_or("?"),
                    "the default network's config is gone and no other config took its place: removed {CONFLIST_NAME} (the runtime now sees no network config until one returns)"
                );
            }
            self.default_file = None;
            self.written = None;
            return Ok(Readiness::NotReady(format!(
                "no default network config in {} yet (the first .conf/.conflist/.json other than {CONFLIST_NAME})",
                self.config.cni_conf_dir.display()
            )));
        };
        let default_host = default_network::host_path(&self.config.cni_conf_dir, &network);
        let bytes = self.config.plugin.render(
            &network,
            &HostRefs {
                cluster_network: &default_host,
                kubeconfig: &self.config.kubeconfig,
                bin_dir: &self.config.cni_bin_dir,
            },
        )?;
        if ensure_content(&path, &bytes, CONFLIST_MODE)? {
            self.log_write(&network, &default_host);
        }
        self.default_file = Some(network.file_name);
        self.written = Some(bytes);
        Ok(Readiness::Ready {
            default_network: default_host,
        })
    }

    fn log_write(&self, network: &DefaultNetwork, default_host: &std::path::Path) {
        let caps: Vec<String> = default_network::capabilities(&network.config)
            .into_keys()
            .collect();
        let what = match &self.default_file {
            None => "wrote",
            Some(prev) if *prev == network.file_name => "default network config changed: rewrote",
            Some(_) => "default network moved to another file: rewrote",
        };
        tracing::info!(
            path = %self.config.conflist_local().display(),
            default_network = %default_host.display(),
            previous = self.default_file.as_deref().unwrap_or("-"),
            name = network.config.name().unwrap_or(""),
            cni_version = network.config.cni_version().unwrap_or(""),
            capabilities = ?caps,
            "{what} {CONFLIST_NAME}: eth0 is delegated to the default network"
        );
    }

    /// On exit: removes `00-plexus.conflist` if it still holds what this installer wrote (a
    /// newer installer's file, or an operator's, is left alone). Returns whether it removed it.
    pub fn remove_config(&mut self) -> Result<bool, InstallError> {
        let path = self.config.conflist_local();
        let Some(written) = self.written.take() else {
            return Ok(false);
        };
        match std::fs::read(&path) {
            Ok(current) if current == written => remove_durably(&path),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "{CONFLIST_NAME} was changed by someone else: left in place");
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(InstallError::io("reading", &path, e)),
        }
    }
}
