//! The local-mode test bed shared by the end-to-end suites that run the real `plexus` binary as
//! containerd does (env + stdin), in real network namespaces: a "node" namespace with a veth
//! uplink (`up0`), a "pod" namespace, the reference bridge (+ host-local) as the cluster network
//! and macvlan NADs on `up0`. Everything else (NAD manifests, journal, leases, scripts) lives in
//! one temp dir. Needs root and the reference plugins in `/usr/lib/cni`; [`Env::new`] skips with
//! the reason otherwise.
//!
//! Each suite uses part of it; the rest would be dead code in that test crate.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use plexus_delegates::netns::fixture::TestNetns;
use serde_json::{Value, json};

use crate::pod_state;

/// The reference CNI plugins (Debian's containernetworking-plugins).
pub const REF_BIN: &str = "/usr/lib/cni";
/// The journal of a completed ADD of eth0, net1 and net2: a pending and an added record each,
/// the completion mark and the lock.
pub const COMPLETED_JOURNAL: [&str; 8] = [
    "0-eth0.json",
    "1-net1.json",
    "2-net2.json",
    "added-0-eth0.json",
    "added-1-net1.json",
    "added-2-net2.json",
    "committed",
    "lock",
];

/// The pod the runtime names in CNI_ARGS.
pub const POD: &str = "pod1";

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub node: TestNetns,
    pub pod: TestNetns,
    pub bridge: String,
}

impl Env {
    pub fn new(test: &str) -> Option<Env> {
        let (node, pod) = pod_state::uplinked_node(test, "px")?;
        let tmp = tempfile::tempdir().unwrap();
        let bridge = format!("pxbr{}", std::process::id() % 100000);
        let e = Env {
            tmp,
            node,
            pod,
            bridge,
        };
        e.write_files();
        Some(e)
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn write_files(&self) {
        std::fs::create_dir_all(self.p("nads")).unwrap();
        std::fs::create_dir_all(self.p("net.d")).unwrap();
        std::fs::create_dir_all(self.p("bin")).unwrap();
        let conflist = json!({
            "cniVersion": "1.0.0", "name": "cbr0",
            "plugins": [{
                "type": "bridge", "bridge": self.bridge, "isGateway": true,
                "ipam": {"type": "host-local", "dataDir": self.p("ipam"),
                         "ranges": [[{"subnet": "10.99.0.0/24"}]],
                         "routes": [{"dst": "0.0.0.0/0"}]}
            }]
        });
        std::fs::write(self.p("net.d/10-bridge.conflist"), conflist.to_string()).unwrap();
        for (name, master, subnet) in [
            ("macvlan-a", "up0", "10.98.1.0/24"),
            ("macvlan-b", "up0", "10.98.2.0/24"),
            ("macvlan-bad", "nosuchlink0", "10.98.3.0/24"),
        ] {
            self.write_nad(name, "macvlan", master, subnet);
        }
    }

    /// A NAD manifest `nads/<name>.json` for a macvlan-like plugin `plugin_type` on `master`,
    /// host-local IPAM on `subnet`.
    pub fn write_nad(&self, name: &str, plugin_type: &str, master: &str, subnet: &str) {
        let config = json!({
            "cniVersion": "1.0.0", "name": name, "type": plugin_type, "master": master,
            "mode": "bridge",
            "ipam": {"type": "host-local", "dataDir": self.p("ipam"), "ranges": [[{"subnet": subnet}]]}
        });
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"config": config.to_string()}
        });
        std::fs::write(self.p(&format!("nads/{name}.json")), nad.to_string()).unwrap();
    }

    /// An executable test delegate `bin/<name>` (a shell script).
    pub fn write_script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.p(&format!("bin/{name}"));
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The meta-plugin config: local mode, the bridge conflist as the cluster network, the pod
    /// annotations passed by the runtime with `networks` as the selection.
    pub fn config(&self, networks: &str) -> String {
        self.config_json(networks).to_string()
    }

    /// [`Env::config`] as JSON, to change keys.
    pub fn config_json(&self, networks: &str) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": "plexus", "type": "plexus",
            "clusterNetwork": self.p("net.d/10-bridge.conflist"),
            "cniDir": self.p("cni"), "binDir": REF_BIN, "nadDir": self.p("nads"),
            "logLevel": "debug", "logFile": self.p("plexus.log"), "logToStderr": false,
            "capabilities": {"io.kubernetes.cri.pod-annotations": true},
            "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {
                "k8s.v1.cni.cncf.io/networks": networks,
                "kubernetes.io/config.source": "api"
            }}
        })
    }

    /// Starts plexus inside the node namespace, like containerd on that node (env + stdin),
    /// with `extra_env` added; stdout and stderr are piped.
    pub fn spawn_plexus(
        &self,
        verb: &str,
        cid: &str,
        netns: Option<&Path>,
        stdin: &str,
        extra_env: &[(&str, &str)],
    ) -> Child {
        let bin = env!("CARGO_BIN_EXE_plexus");
        let stdin = stdin.to_owned();
        self.node
            .netns()
            .run_in(|| {
                let mut cmd = Command::new(bin);
                cmd.env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("CNI_COMMAND", verb)
                    .env("CNI_CONTAINERID", cid)
                    .env("CNI_IFNAME", "eth0")
                    .env("CNI_PATH", REF_BIN)
                    .env(
                        "CNI_ARGS",
                        format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={POD};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=0f3a6c1e-1111-4222-8333-944455556666"),
                    )
                    .env("CNI_NETNS", netns.map(|p| p.display().to_string()).unwrap_or_default())
                    .envs(extra_env.iter().copied())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = cmd.spawn().unwrap();
                child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
                child
            })
            .unwrap()
    }

    /// Runs plexus to the end, like containerd.
    pub fn plexus(&self, verb: &str, cid: &str, netns: Option<&Path>, stdin: &str) -> Output {
        self.plexus_env(verb, cid, netns, stdin, &[])
    }

    /// [`Env::plexus`] with `extra_env`.
    pub fn plexus_env(
        &self,
        verb: &str,
        cid: &str,
        netns: Option<&Path>,
        stdin: &str,
        extra_env: &[(&str, &str)],
    ) -> Output {
        self.spawn_plexus(verb, cid, netns, stdin, extra_env)
            .wait_with_output()
            .unwrap()
    }

    pub fn pod_links(&self) -> Vec<String> {
        pod_state::pod_links(&self.pod)
    }

    /// Links in the node namespace other than the uplink pair, `lo` and the cluster bridge
    /// (which the reference bridge plugin keeps): host veth ends, stray macvlans.
    pub fn stray_node_links(&self) -> Vec<String> {
        pod_state::pod_links(&self.node)
            .into_iter()
            .filter(|l| !["lo", "up0", "up0p", self.bridge.as_str()].contains(&l.as_str()))
            .collect()
    }

    pub fn addr(&self, ifname: &str) -> String {
        pod_state::addr(&self.pod, ifname)
    }

    /// Leases left by host-local (files named like IPs).
    pub fn leases(&self) -> Vec<String> {
        pod_state::leases(&self.p("ipam"))
    }

    /// The journal directory of a container.
    pub fn journal_dir(&self, cid: &str) -> PathBuf {
        self.p("cni").join(cid)
    }

    /// The file names in a container's journal directory, sorted.
    pub fn journal_files(&self, cid: &str) -> Vec<String> {
        sorted_names(&self.journal_dir(cid))
    }

    /// The local-mode network-status file of the pod.
    pub fn status_path(&self) -> PathBuf {
        self.p(&format!("cni/status/default_{POD}.json"))
    }

    /// The file naming the sandbox that owns [`Env::status_path`].
    pub fn status_owner_path(&self) -> PathBuf {
        self.p(&format!("cni/status/default_{POD}.owner"))
    }

    /// The orphan directory of a container (records whose delegate DEL failed).
    pub fn orphan_dir(&self, cid: &str) -> PathBuf {
        self.p("cni/orphans").join(cid)
    }

    /// The file names in a container's orphan directory, sorted.
    pub fn orphan_files(&self, cid: &str) -> Vec<String> {
        sorted_names(&self.orphan_dir(cid))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.p("plexus.log")).unwrap_or_default()
    }

    /// Asserts that nothing of the sandbox `cid` is left: no link in the pod but `lo`, no stray
    /// link in the node, no lease, no journal or orphan directory, no status file (nor its
    /// owner record).
    pub fn assert_nothing_left(&self, cid: &str, when: &str) {
        assert_eq!(
            self.pod_links(),
            vec!["lo"],
            "{when}: links left in the pod"
        );
        assert!(
            self.stray_node_links().is_empty(),
            "{when}: links left in the node: {:?}",
            self.stray_node_links()
        );
        assert!(
            self.leases().is_empty(),
            "{when}: leases left: {:?}",
            self.leases()
        );
        assert!(
            !self.journal_dir(cid).exists(),
            "{when}: journal left: {:?}",
            self.journal_files(cid)
        );
        assert!(
            !self.orphan_dir(cid).exists(),
            "{when}: orphans left: {:?}",
            self.orphan_files(cid)
        );
        assert!(
            !self.status_path().exists(),
            "{when}: network-status file left"
        );
        assert!(
            !self.status_owner_path().exists(),
            "{when}: network-status owner record left"
        );
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The file names in `dir`, sorted (none when it does not exist).
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
