//! The measured side: the built `plexus` binary in local mode, configured as a node would be
//! (the cluster network's conflist in a net.d, the NADs as YAML manifests in a `nadDir`) and
//! called as containerd calls it, the pod's annotations in
//! `runtimeConfig["io.kubernetes.cri.pod-annotations"]`. Every call's log is read back for the
//! split between delegate time and Plexus's own time.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::exec::{self, Call};
use super::log::{AddLog, DelLog, parse_add, parse_del};
use super::networks::{self, Networks};
use super::sandbox::Sandbox;
use super::topology;

/// Where the reference plugins are: Plexus's `binDir` and the runtime's `CNI_PATH`.
pub const REF_DIR: &str = "/usr/lib/cni";

pub struct PlexusSide {
    bin: PathBuf,
    pub nets: Networks,
    cni_dir: PathBuf,
    log_path: PathBuf,
    config: Vec<u8>,
}

/// One pod's ADD and DEL through Plexus.
pub struct PlexusCycle {
    pub add: Call,
    pub add_log: AddLog,
    pub del: Call,
    pub del_log: DelLog,
}

impl PlexusSide {
    /// Writes the node's files under `dir` and the config the runtime will pass.
    /// `overlap`: the config's `overlapClusterNetwork`.
    pub fn new(bin: &Path, dir: &Path, nets: Networks, overlap: bool) -> Result<PlexusSide> {
        let net_d = dir.join("net.d");
        let nad_dir = dir.join("nads");
        for d in [&net_d, &nad_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let conflist = net_d.join("10-bridge.conflist");
        std::fs::write(&conflist, nets.cluster_conflist().to_string())?;
        std::fs::write(nad_dir.join("macvlan.yaml"), nets.nad_manifests())?;
        let cni_dir = dir.join("plexus");
        let log_path = dir.join("plexus.log");
        let config = json!({
            "cniVersion": networks::CNI_VERSION,
            "name": "plexus",
            "type": "plexus",
            "clusterNetwork": conflist,
            "nadDir": nad_dir,
            "cniDir": cni_dir,
            "binDir": REF_DIR,
            "logFile": log_path,
            // Multus's name for info: the level of the per-step lines the split is read from.
            "logLevel": "verbose",
            "logToStderr": false,
            "overlapClusterNetwork": overlap,
            "capabilities": {"io.kubernetes.cri.pod-annotations": true},
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {
                "k8s.v1.cni.cncf.io/networks": networks::NADS.join(","),
                "kubernetes.io/config.source": "api",
                "kubernetes.io/config.seen": "2026-11-24T00:53:03.000000000Z",
            }},
        });
        Ok(PlexusSide {
            bin: bin.to_path_buf(),
            nets,
            cni_dir,
            log_path,
            config: serde_json::to_vec(&config)?,
        })
    }

    fn take_log(&self) -> Result<String> {
        let text = std::fs::read_to_string(&self.log_path)
            .with_context(|| format!("reading {}", self.log_path.display()))?;
        // plexus opens the file in append mode on every call: truncating it between calls
        // leaves exactly one call's lines in it.
        std::fs::File::create(&self.log_path)?;
        Ok(text)
    }

    /// ADD then DEL of one sandbox, each checked (untimed) for what it must leave behind.
    pub fn cycle(&self, sb: &Sandbox) -> Result<PlexusCycle> {
        let env = sb.env("eth0", REF_DIR);
        let add = exec::run(&self.bin, "ADD", &env, &self.config)?;
        let add_log = parse_add(&self.take_log()?)?;
        self.verify_add(sb, &add.stdout)?;

        let del = exec::run(&self.bin, "DEL", &env, &self.config)?;
        let del_log = parse_del(&self.take_log()?)?;
        sb.netns.expect_links(&["lo"], "after the plexus DEL")?;
        let journal = self.cni_dir.join(&sb.container_id);
        if journal.exists() {
            bail!("the plexus DEL left its journal {}", journal.display());
        }
        Ok(PlexusCycle {
            add,
            add_log,
            del,
            del_log,
        })
    }

    fn verify_add(&self, sb: &Sandbox, reply: &[u8]) -> Result<()> {
        let v: Value = serde_json::from_slice(reply).context("the plexus ADD reply")?;
        let eth0 = networks::first_address(&v).unwrap_or_default();
        if !eth0.starts_with(&self.nets.address_prefix(0)) {
            bail!(
                "the plexus ADD reply has no eth0 address in {}: {v}",
                self.nets.subnet(0)
            );
        }
        sb.netns
            .expect_links(&["lo", "eth0", "net1", "net2"], "after the plexus ADD")?;
        // Local mode writes network-status beside the journal: the NADs' addresses are there.
        let status_path = self
            .cni_dir
            .join("status")
            .join(format!("default_{}.json", sb.pod_name));
        let status = std::fs::read_to_string(&status_path)
            .with_context(|| format!("reading {}", status_path.display()))?;
        for k in 1..=networks::NADS.len() {
            if !status.contains(&self.nets.address_prefix(k)) {
                bail!(
                    "network-status lacks an address in {}: {status}",
                    self.nets.subnet(k)
                );
            }
        }
        Ok(())
    }

    /// After the run: no lease left.
    pub fn check_clean(&self) -> Result<()> {
        let left = topology::leases(&self.nets.ipam_dir)?;
        if !left.is_empty() {
            bail!("plexus side: leases left after the run: {left:?}");
        }
        Ok(())
    }
}
