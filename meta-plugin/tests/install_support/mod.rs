//! Shared pieces of the `plexus install` tests: a fake node (temp dirs standing for the node's CNI
//! dirs), a service-account volume laid out as the kubelet lays it out, and the default-network
//! configs that real clusters' CNIs write.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plexus::install::InstallConfig;
use plexus::install::conflist::PluginSettings;
use plexus::install::kubeconfig::ApiServer;
use plexus::install::paths::HostRoot;

/// containerd's documented bridge config (`10-containerd-net.conflist`), dual-stack.
pub const BRIDGE: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "containerd-net",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "promiscMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [
          [{ "subnet": "10.88.0.0/16" }],
          [{ "subnet": "2001:4860:4860::/64" }]
        ],
        "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true }
    }
  ]
}
"#;

/// What kube-flannel's install-cni container copies to `10-flannel.conflist`.
pub const FLANNEL: &str = r#"{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
"#;

/// What Calico's install-cni writes to `10-calico.conflist` (it also drops `calico-kubeconfig`,
/// which has no config extension, next to it).
pub fn calico(mtu: u32) -> String {
    format!(
        r#"{{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {{
      "type": "calico",
      "log_level": "info",
      "log_file_path": "/var/log/calico/cni/cni.log",
      "datastore_type": "kubernetes",
      "nodename": "worker-1",
      "mtu": {mtu},
      "ipam": {{
          "type": "calico-ipam"
      }},
      "policy": {{
          "type": "k8s"
      }},
      "kubernetes": {{
          "kubeconfig": "/etc/cni/net.d/calico-kubeconfig"
      }}
    }},
    {{
      "type": "portmap",
      "snat": true,
      "capabilities": {{"portMappings": true}}
    }},
    {{
      "type": "bandwidth",
      "capabilities": {{"bandwidth": true}}
    }}
  ]
}}
"#
    )
}

/// A CA certificate in PEM form (its content is not checked by the installer beyond the PEM
/// header; the kube tests use a real CA).
pub const CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Q=\n-----END CERTIFICATE-----\n";

/// A projected service-account volume as the kubelet writes it: a timestamped dir holding the
/// files, `..data` pointing to it, and `token`/`ca.crt` pointing through `..data`. Rotation writes
/// a new timestamped dir and swaps `..data` with a rename, so readers see one version or the
/// other.
pub struct ServiceAccountVolume {
    pub dir: PathBuf,
    generation: u32,
}

impl ServiceAccountVolume {
    pub fn new(dir: &Path, token: &str, ca_pem: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut v = ServiceAccountVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.publish(token, ca_pem);
        std::os::unix::fs::symlink("..data/token", dir.join("token")).unwrap();
        std::os::unix::fs::symlink("..data/ca.crt", dir.join("ca.crt")).unwrap();
        std::os::unix::fs::symlink("..data/namespace", dir.join("namespace")).unwrap();
        v
    }

    /// Publishes a new version (the kubelet's atomic writer).
    pub fn publish(&mut self, token: &str, ca_pem: &str) {
        self.generation += 1;
        let ts = format!(
            "..2025_01_01_00_00_{:02}.{:09}",
            self.generation, self.generation
        );
        let data = self.dir.join(&ts);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("token"), token).unwrap();
        std::fs::write(data.join("ca.crt"), ca_pem).unwrap();
        std::fs::write(data.join("namespace"), "kube-system").unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&ts, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

/// A node stand-in: `root` plays the node's `/`, with `/etc/cni/net.d` and `/opt/cni/bin` below.
pub struct FakeNode {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub source: PathBuf,
    pub sa: ServiceAccountVolume,
}

pub const CONF_DIR: &str = "/etc/cni/net.d";
pub const BIN_DIR: &str = "/opt/cni/bin";
pub const KUBECONFIG: &str = "/etc/cni/net.d/plexus.d/plexus.kubeconfig";

impl FakeNode {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("host");
        std::fs::create_dir_all(root.join("etc/cni/net.d")).unwrap();
        std::fs::create_dir_all(root.join("opt/cni/bin")).unwrap();
        let source = tmp.path().join("image");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("plexus"), b"#!/bin/sh\n# plexus v2\n").unwrap();
        let sa = ServiceAccountVolume::new(&tmp.path().join("sa"), "token-1", CA_PEM);
        FakeNode {
            tmp,
            root,
            source,
            sa,
        }
    }

    /// The node's `/etc/cni/net.d` as the test reaches it.
    pub fn conf_dir(&self) -> PathBuf {
        self.root.join("etc/cni/net.d")
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("opt/cni/bin")
    }

    pub fn conflist(&self) -> PathBuf {
        self.conf_dir().join("00-plexus.conflist")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join(KUBECONFIG.trim_start_matches('/'))
    }

    pub fn status_file(&self) -> PathBuf {
        self.tmp.path().join("status.json")
    }

    pub fn write_conf(&self, name: &str, body: &str) {
        // As the CNIs' installers do: a temp file renamed into place.
        let tmp = self.conf_dir().join(format!(".{name}.writing"));
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, self.conf_dir().join(name)).unwrap();
    }

    pub fn remove_conf(&self, name: &str) {
        std::fs::remove_file(self.conf_dir().join(name)).unwrap();
    }

    /// The generated conflist, parsed.
    pub fn read_conflist(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.conflist()).unwrap()).unwrap()
    }

    /// The installer configuration the DaemonSet's defaults give, on this fake node.
    pub fn config(&self, api: ApiServer) -> InstallConfig {
        InstallConfig {
            host_root: HostRoot::new(&self.root),
            cni_bin_dir: BIN_DIR.into(),
            cni_conf_dir: CONF_DIR.into(),
            source_dir: self.source.clone(),
            binaries: vec!["plexus".into()],
            kubeconfig: KUBECONFIG.into(),
            service_account_dir: self.sa.dir.clone(),
            api_server: api,
            plugin: PluginSettings {
                network_name: "plexus-cni-network".into(),
                plugin_type: "plexus".into(),
                cni_version: None,
                cni_dir: "/var/lib/cni/multus".into(),
                conf_dir: None,
                log_file: None,
                log_level: None,
                log_to_stderr: None,
                namespace_isolation: None,
                overlap_cluster_network: None,
                global_namespaces: None,
                multus_namespace: None,
                readiness_indicator_file: None,
            },
            poll_interval: Duration::from_millis(20),
            leave_config_on_exit: false,
            status_file: self.status_file(),
        }
    }
}

pub fn api() -> ApiServer {
    ApiServer {
        host: "10.96.0.1".into(),
        port: 443,
    }
}

/// Waits for `cond` (an asynchronous process acting on files); fails the test with `what` after a
/// deadline far beyond what the condition needs on a loaded machine.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The mode bits of a file.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}
