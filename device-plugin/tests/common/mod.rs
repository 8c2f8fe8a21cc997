//! A fake kubelet (the Registration service on a real unix socket in a temp dir, and the client
//! side kubelet uses to call each plugin back) and a test host, shared by the integration tests
//! and the benchmark.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plexus_kubelet_api::deviceplugin::device_plugin_client::DevicePluginClient;
use plexus_kubelet_api::deviceplugin::registration_server::{Registration, RegistrationServer};
use plexus_kubelet_api::deviceplugin::{
    Device, Empty, KUBELET_SOCKET, ListAndWatchResponse, RegisterRequest, VERSION,
};
use plexus_kubelet_api::unix;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// How long any single expected event may take before a test fails as hung. Not a performance
/// threshold: events normally arrive within a poll interval.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `fut`, or a panic naming `what` after [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

struct Recorder {
    tx: mpsc::UnboundedSender<RegisterRequest>,
}

#[tonic::async_trait]
impl Registration for Recorder {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        // kubelet refuses versions it does not speak
        if req.version != VERSION {
            return Err(Status::invalid_argument(format!(
                "unsupported version {:?}",
                req.version
            )));
        }
        let _ = self.tx.send(req);
        Ok(Response::new(Empty {}))
    }
}

/// kubelet's side of the device plugin API, on `<dir>/kubelet.sock`.
pub struct FakeKubelet {
    pub dir: PathBuf,
    registrations: mpsc::UnboundedReceiver<RegisterRequest>,
    tx: mpsc::UnboundedSender<RegisterRequest>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl FakeKubelet {
    /// Listen on `<dir>/kubelet.sock` (`dir` must exist).
    pub fn start(dir: &Path) -> Self {
        let (tx, registrations) = mpsc::unbounded_channel();
        let mut k = FakeKubelet {
            dir: dir.to_path_buf(),
            registrations,
            tx,
            server: None,
        };
        k.serve();
        k
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join(KUBELET_SOCKET)
    }

    fn serve(&mut self) {
        let listener = unix::listen(&self.socket()).unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let recorder = Recorder {
            tx: self.tx.clone(),
        };
        let handle = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(RegistrationServer::new(recorder))
                .serve_with_incoming_shutdown(unix::incoming(listener), async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        self.server = Some((stop_tx, handle));
    }

    /// The next RegisterRequest any plugin sent.
    pub async fn next_registration(&mut self) -> RegisterRequest {
        within("a Register call", self.registrations.recv())
            .await
            .expect("registration channel open")
    }

    /// The next `n` registrations, sorted by resource name.
    pub async fn registrations(&mut self, n: usize) -> Vec<RegisterRequest> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next_registration().await);
        }
        out.sort_by(|a, b| a.resource_name.cmp(&b.resource_name));
        out
    }

    /// Registrations received so far and not yet taken.
    pub fn pending_registrations(&mut self) -> Vec<RegisterRequest> {
        let mut out = Vec::new();
        while let Ok(r) = self.registrations.try_recv() {
            out.push(r);
        }
        out
    }

    /// Stop serving and remove kubelet.sock.
    pub async fn stop(&mut self) {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// What a kubelet restart looks like from the plugin side: kubelet.sock goes away, every
    /// other socket in the dir is deleted, and a new kubelet.sock appears.
    pub async fn restart(&mut self) {
        self.stop().await;
        for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
            use std::os::unix::fs::FileTypeExt;
            if e.file_type().unwrap().is_socket() {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        self.serve();
    }

    /// Only kubelet.sock is re-created (our sockets stay): a kubelet restart that did not
    /// clean the dir.
    pub async fn restart_keeping_plugin_sockets(&mut self) {
        self.stop().await;
        self.serve();
    }

    /// Dial a plugin back as kubelet does after Register.
    pub async fn plugin(&self, endpoint: &str) -> DevicePluginClient<Channel> {
        let channel = within(
            "connecting to the plugin",
            unix::connect(&self.dir.join(endpoint)),
        )
        .await
        .unwrap();
        DevicePluginClient::new(channel)
    }

    /// Open a ListAndWatch stream on the plugin at `endpoint`.
    pub async fn watch(&self, endpoint: &str) -> Watch {
        let mut client = self.plugin(endpoint).await;
        let stream = within("ListAndWatch", client.list_and_watch(Empty {}))
            .await
            .unwrap()
            .into_inner();
        Watch { stream }
    }
}

/// A ListAndWatch stream as kubelet reads it.
pub struct Watch {
    stream: tonic::Streaming<ListAndWatchResponse>,
}

impl Watch {
    /// The next update.
    pub async fn next(&mut self) -> Vec<Device> {
        within("a ListAndWatch update", self.stream.message())
            .await
            .expect("stream ok")
            .expect("stream not ended")
            .devices
    }

    /// Updates until one satisfies `pred`.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&[Device]) -> bool) -> Vec<Device> {
        within(what, async {
            loop {
                let d = self
                    .stream
                    .message()
                    .await
                    .expect("stream ok")
                    .expect("stream not ended")
                    .devices;
                if pred(&d) {
                    return d;
                }
            }
        })
        .await
    }

    /// Whether the stream has ended (the plugin closed it).
    pub async fn ended(&mut self) -> bool {
        matches!(
            within("the end of ListAndWatch", self.stream.message()).await,
            Ok(None) | Err(_)
        )
    }
}

/// Device IDs of `devices` whose health is `health`.
pub fn with_health(devices: &[Device], health: &str) -> Vec<String> {
    devices
        .iter()
        .filter(|d| d.health == health)
        .map(|d| d.id.clone())
        .collect()
}

pub fn ids(devices: &[Device]) -> Vec<String> {
    devices.iter().map(|d| d.id.clone()).collect()
}

use plexus_delegates::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};

pub const PF1: &str = "0000:3b:00.0";
pub const PF2: &str = "0000:3b:00.1";
pub const PF3: &str = "0000:af:00.0";
pub const NET: &str = "intel.com/sriov_net";
pub const DPDK: &str = "intel.com/sriov_dpdk";
pub const NET_SOCKET: &str = "plexus-intel.com_sriov_net.sock";
pub const DPDK_SOCKET: &str = "plexus-intel.com_sriov_dpdk.sock";

/// ens1f0 and ens1f1 (NUMA 0): 2 iavf VFs each; ens2f0 (NUMA 1): 2 iavf VFs and 2 vfio-pci VFs.
pub fn host() -> FakeSysfs {
    FakeSysfs::new()
        .add_pf("ens1f0", PF1, PfSpec::default().total_vfs(16))
        .add_vfs(2, VfSpec::kernel("iavf"))
        .add_pf("ens1f1", PF2, PfSpec::default().total_vfs(16))
        .add_vfs(2, VfSpec::kernel("iavf"))
        .add_pf("ens2f0", PF3, PfSpec::default().numa(1).total_vfs(16))
        .add_vfs(2, VfSpec::kernel("iavf"))
        .add_vfs(2, VfSpec::userspace("vfio-pci"))
}

/// Pools `sriov_net` (iavf VFs) and `sriov_dpdk` (vfio-pci VFs).
pub const CONFIG: &str = r#"{
  "resourceList": [
    {"resourceName": "sriov_net", "selectors": {"vendors": ["8086"], "drivers": ["iavf"]}},
    {"resourceName": "sriov_dpdk", "resourcePrefix": "intel.com",
     "selectors": [{"drivers": ["vfio-pci"], "pfNames": ["ens2f0#0-15"]}]}
  ]
}"#;

/// The VF at `index` of PF `pf`, as a device ID.
pub fn vf(fake: &FakeSysfs, pf: &str, index: u32) -> String {
    fake.vf_pci(pf, index).to_string()
}
