//! The device-plugin hand-off against a fake kubelet serving the PodResources API on a real unix
//! socket: planning an ADD for a pod with SR-IOV NADs (type `sriov`, `resourceName` annotation)
//! yields the VFs kubelet reports for the pod, with `Get` and with the `List` fallback; the
//! device plugin's device-info reaches the network-status entry.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use plexus::cmd::network_status::network_statuses;
use plexus::config::PlexusConfig;
use plexus::devinfo::DeviceInfoDir;
use plexus::kube::PodRef;
use plexus::local::LocalApi;
use plexus::plan::{Plan, PlanInput, assign_devices, build_plan};
use plexus::podresources::KubeletPodResources;
use plexus_crds::write_network_status;
use plexus_delegates::cni::{CniResult, ErrorCode};
use plexus_kubelet_api::podresources::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use plexus_kubelet_api::podresources::*;
use plexus_kubelet_api::unix;
use serde_json::{Map, Value, json};
use tonic::{Request, Response, Status};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const RESOURCE: &str = "intel.com/sriov_netdevice";

/// A second SR-IOV NAD of the same resource, next to the real `sriov-net-a` body.
const SRIOV_B: &str = r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: sriov-net-b
  namespace: fixtures
  annotations:
    k8s.v1.cni.cncf.io/resourceName: intel.com/sriov_netdevice
spec:
  config: '{"cniVersion":"1.0.0","name":"sriov-net-b","plugins":[{"type":"sriov","vlan":2000},{"type":"tuning"}]}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-conf
  namespace: fixtures
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1"}'
"#;

/// kubelet's PodResources server for a fixed set of pods; `Get` only when `offers_get`.
#[derive(Clone)]
struct FakeKubelet {
    pods: Vec<PodResources>,
    offers_get: bool,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        self.calls.lock().unwrap().push("List");
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: self.pods.clone(),
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not served by the fake kubelet"))
    }

    async fn get(
        &self,
        req: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        self.calls.lock().unwrap().push("Get");
        if !self.offers_get {
            // What a kubelet older than 1.27 answers.
            return Err(Status::unimplemented("unknown method Get"));
        }
        let r = req.into_inner();
        match self
            .pods
            .iter()
            .find(|p| p.name == r.pod_name && p.namespace == r.pod_namespace)
        {
            Some(p) => Ok(Response::new(GetPodResourcesResponse {
                pod_resources: Some(p.clone()),
            })),
            // kubelet's own wording and status code.
            None => Err(Status::unknown(format!(
                "pod {} in namespace {} not found",
                r.pod_name, r.pod_namespace
            ))),
        }
    }
}

impl FakeKubelet {
    /// Serves on `<dir>/kubelet.sock`; returns the socket path.
    fn serve(&self, dir: &Path) -> PathBuf {
        let sock = dir.join("kubelet.sock");
        let listener = unix::listen(&sock).unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PodResourcesListerServer::new(self.clone()))
                .serve_with_incoming(unix::incoming(listener)),
        );
        sock
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

fn kubelet(offers_get: bool, pods: Vec<PodResources>) -> FakeKubelet {
    FakeKubelet {
        pods,
        offers_get,
        calls: Arc::default(),
    }
}

/// A pod whose `app` container got `ids` of the SR-IOV resource.
fn pod_with_vfs(namespace: &str, name: &str, ids: &[&str]) -> PodResources {
    PodResources {
        name: name.into(),
        namespace: namespace.into(),
        containers: vec![ContainerResources {
            name: "app".into(),
            devices: vec![ContainerDevices {
                resource_name: RESOURCE.into(),
                device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                topology: Some(TopologyInfo {
                    nodes: vec![NumaNode { id: 0 }],
                }),
            }],
            ..Default::default()
        }],
    }
}

fn pod() -> PodRef {
    PodRef {
        namespace: "fixtures".into(),
        name: "multi-pod".into(),
        uid: None,
    }
}

/// Local mode: the real SR-IOV NAD body and [`SRIOV_B`] as manifests, the bridge as cluster
/// network.
fn setup(tmp: &Path) -> PlexusConfig {
    let net_dir = tmp.join("net.d");
    let nad_dir = tmp.join("nads");
    std::fs::create_dir_all(&net_dir).unwrap();
    std::fs::create_dir_all(&nad_dir).unwrap();
    std::fs::write(
        net_dir.join("10-bridge.conflist"),
        r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    std::fs::copy(
        Path::new(DATA).join("nad-get-sriov.json"),
        nad_dir.join("sriov.json"),
    )
    .unwrap();
    std::fs::write(nad_dir.join("more.yaml"), SRIOV_B).unwrap();
    let conf = json!({
        "cniVersion": "1.0.0", "name": "plexus", "type": "plexus",
        "clusterNetwork": "cbr0",
        "confDir": tmp.join("multus.d"),
        "cniDir": tmp.join("state"),
        "nadDir": nad_dir,
    });
    PlexusConfig::parse(conf.to_string().as_bytes()).unwrap()
}

/// `build_plan` then `assign_devices`, as ADD plans, for a pod selecting `networks`.
async fn plan_add(
    tmp: &Path,
    networks: &str,
    socket: &Path,
) -> Result<Plan, plexus_delegates::cni::CniError> {
    let config = setup(tmp);
    let api = LocalApi::from_config(&config);
    let annotations: Map<String, Value> = [(
        "k8s.v1.cni.cncf.io/networks".to_owned(),
        Value::String(networks.to_owned()),
    )]
    .into_iter()
    .collect();
    let input = PlanInput {
        config: &config,
        ifname: "eth0",
        pod: pod(),
        pod_annotations: Some(&annotations),
        net_dir: &tmp.join("net.d"),
    };
    let mut plan = build_plan(&input, &api).await?;
    assign_devices(&mut plan, &input.pod, &KubeletPodResources::new(socket)).await?;
    Ok(plan)
}

fn device_of(plan: &Plan, ifname: &str) -> (Option<String>, Vec<(Value, Value)>) {
    let att = plan
        .attachments
        .iter()
        .find(|a| a.ifname == ifname)
        .unwrap();
    let rc = att
        .runtime_config
        .get("deviceID")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let conf = att
        .delegate
        .plugins()
        .iter()
        .map(|p| {
            let key = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
            (key("deviceID"), key("pciBusID"))
        })
        .collect();
    (rc, conf)
}

#[tokio::test]
async fn the_meta_plugin_add_finds_the_vf_the_fake_kubelet_reports_for_the_pod() {
    let tmp = tempfile::tempdir().unwrap();
    let kubelet = kubelet(
        true,
        vec![
            pod_with_vfs("fixtures", "other-pod", &["0000:03:02.7"]),
            pod_with_vfs("fixtures", "multi-pod", &["0000:03:02.1"]),
        ],
    );
    let sock = kubelet.serve(tmp.path());
    let plan = plan_add(tmp.path(), "macvlan-conf,sriov-net-a", &sock)
        .await
        .unwrap();
    assert_eq!(kubelet.calls(), ["Get"], "one Get, no List");

    let vf = json!("0000:03:02.1");
    assert_eq!(
        device_of(&plan, "net2"),
        (Some("0000:03:02.1".into()), vec![(vf.clone(), vf)])
    );
    let sriov = &plan.attachments[2];
    assert_eq!(sriov.network, "fixtures/sriov-net-a");
    assert_eq!(sriov.delegate.first_type(), "sriov");
    assert_eq!(sriov.delegate.plugins()[0]["vlan"], json!(1000));
    assert_eq!(
        device_of(&plan, "eth0"),
        (None, vec![(Value::Null, Value::Null)])
    );
    assert_eq!(
        device_of(&plan, "net1"),
        (None, vec![(Value::Null, Value::Null)])
    );

    // ADD, before the sriov delegate runs: the device plugin's file becomes the attachment's.
    let devinfo = DeviceInfoDir::new(tmp.path().join("devinfo"));
    let dp = devinfo.dp_file(RESOURCE, "0000:03:02.1");
    std::fs::create_dir_all(dp.parent().unwrap()).unwrap();
    std::fs::write(
        &dp,
        r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:02.1"}}"#,
    )
    .unwrap();
    let container = "5b2c8e1f";
    devinfo
        .write_for_attachment(container, sriov)
        .unwrap()
        .unwrap();
    assert!(
        tmp.path()
            .join("devinfo/cni/fixtures-sriov-net-a-5b2c8e1f_net2")
            .exists()
    );

    // After the delegate: network-status carries the device-info (COMPAT §4 bytes).
    let result: CniResult = serde_json::from_value(json!({
        "interfaces": [{"name": "net2", "mac": "ce:d8:06:08:e6:3f", "mtu": 1500, "sandbox": "/run/netns/p"}],
        "ips": [{"interface": 0, "address": "10.56.217.171/24"}],
        "dns": {}
    }))
    .unwrap();
    let mut statuses = network_statuses(&[(sriov, &result)]);
    statuses[0].device_info = devinfo.load_for_attachment(container, sriov).unwrap();
    assert_eq!(
        write_network_status(&statuses).unwrap(),
        r#"[{
    "name": "fixtures/sriov-net-a",
    "interface": "net2",
    "ips": [
        "10.56.217.171"
    ],
    "mac": "ce:d8:06:08:e6:3f",
    "mtu": 1500,
    "dns": {},
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:03:02.1"
        }
    }
}]"#
    );

    // DEL removes the attachment's file and leaves the device plugin's.
    devinfo.remove_for_attachment(container, sriov).unwrap();
    assert!(!devinfo.attachment_file(container, sriov).unwrap().exists());
    assert!(dp.exists());
}

#[tokio::test]
async fn without_get_the_list_fallback_hands_two_nads_of_one_resource_different_vfs() {
    let tmp = tempfile::tempdir().unwrap();
    let kubelet = kubelet(
        false,
        vec![
            pod_with_vfs("default", "multi-pod", &["0000:03:02.6"]),
            pod_with_vfs("fixtures", "multi-pod", &["0000:81:00.4", "0000:03:02.3"]),
        ],
    );
    let sock = kubelet.serve(tmp.path());
    let plan = plan_add(tmp.path(), "sriov-net-b,sriov-net-a", &sock)
        .await
        .unwrap();
    assert_eq!(kubelet.calls(), ["Get", "List"]);
    // Sorted, in NAD order; every plugin of sriov-net-b's conflist gets the VF.
    let first = json!("0000:03:02.3");
    let second = json!("0000:81:00.4");
    assert_eq!(
        device_of(&plan, "net1"),
        (
            Some("0000:03:02.3".into()),
            vec![(first.clone(), first.clone()), (first.clone(), first)]
        )
    );
    assert_eq!(
        device_of(&plan, "net2"),
        (Some("0000:81:00.4".into()), vec![(second.clone(), second)])
    );
}

#[tokio::test]
async fn a_pod_without_enough_vfs_fails_naming_the_resource() {
    let tmp = tempfile::tempdir().unwrap();
    let kubelet = kubelet(
        true,
        vec![pod_with_vfs("fixtures", "multi-pod", &["0000:03:02.1"])],
    );
    let sock = kubelet.serve(tmp.path());
    let e = plan_add(tmp.path(), "sriov-net-a,sriov-net-b", &sock)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig), "{e:?}");
    assert!(e.msg.contains(RESOURCE), "{}", e.msg);
    assert!(e.msg.contains("fixtures/sriov-net-b"), "{}", e.msg);

    // kubelet does not know the pod at all (its `Get` says "not found").
    let other = tempfile::tempdir().unwrap();
    let kubelet = kubelet_for_other_pod();
    let sock = kubelet.serve(other.path());
    let e = plan_add(other.path(), "sriov-net-a", &sock)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::TryAgainLater), "{e:?}");
    assert!(e.msg.contains("fixtures/multi-pod"), "{}", e.msg);
    assert!(e.msg.contains(RESOURCE), "{}", e.msg);
}

fn kubelet_for_other_pod() -> FakeKubelet {
    kubelet(
        true,
        vec![pod_with_vfs("fixtures", "other", &["0000:03:02.1"])],
    )
}

#[tokio::test]
async fn no_kubelet_socket_is_an_error_naming_it_and_no_sriov_nad_needs_none() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("absent/kubelet.sock");
    let e = plan_add(tmp.path(), "sriov-net-a", &sock)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::TryAgainLater), "{e:?}");
    assert!(e.msg.contains(&sock.display().to_string()), "{}", e.msg);
    assert!(e.msg.contains("fixtures/sriov-net-a"), "{}", e.msg);

    // A pod without SR-IOV networks never needs kubelet.
    let plan = plan_add(tmp.path(), "macvlan-conf", &sock).await.unwrap();
    assert_eq!(plan.attachments.len(), 2);
}
