//! Local mode end to end through the public API: a Plexus config with a `nadDir` of manifests,
//! `LocalApi`, and `build_plan` with and without runtime-passed pod annotations.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use plexus::config::PlexusConfig;
use plexus::kube::{KubeApi, PodRef};
use plexus::local::LocalApi;
use plexus::plan::{PlanInput, build_plan, pod_annotations_from_runtime_config};
use serde_json::{Map, Value, json};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

const NADS: &str = r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: uplink
  namespace: kube-system
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1","mode":"bridge"}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-conf
  namespace: fixtures
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1"}'
"#;

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
    std::fs::write(nad_dir.join("nads.yaml"), NADS).unwrap();
    std::fs::copy(
        Path::new(DATA).join("nad-get-sriov.json"),
        nad_dir.join("sriov.json"),
    )
    .unwrap();
    let conf = json!({
        "cniVersion": "1.0.0", "name": "plexus", "type": "plexus",
        "clusterNetwork": "cbr0",
        "defaultNetworks": ["uplink"],
        "confDir": tmp.join("multus.d"),
        "cniDir": tmp.join("state"),
        "nadDir": nad_dir,
    });
    PlexusConfig::parse(conf.to_string().as_bytes()).unwrap()
}

#[test]
fn nad_dir_default() {
    let c = PlexusConfig::parse(br#"{"clusterNetwork":"cbr0"}"#).unwrap();
    assert_eq!(c.nad_dir, Path::new("/etc/cni/plexus/nads"));
}

#[tokio::test]
async fn plan_from_runtime_annotations_and_nad_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path());
    let api = LocalApi::from_config(&config);
    let runtime_config = json!({"io.kubernetes.cri.pod-annotations": {
        "k8s.v1.cni.cncf.io/networks": "macvlan-conf@net-mv,sriov-net-a"
    }});
    let input = PlanInput {
        config: &config,
        ifname: "eth0",
        pod: PodRef {
            namespace: "fixtures".into(),
            name: "multi-pod".into(),
            uid: None,
        },
        pod_annotations: pod_annotations_from_runtime_config(runtime_config.as_object().unwrap()),
        net_dir: &tmp.path().join("net.d"),
    };
    let plan = build_plan(&input, &api).await.unwrap();
    let got: Vec<(&str, &str, Option<&str>)> = plan
        .attachments
        .iter()
        .map(|a| {
            (
                a.network.as_str(),
                a.ifname.as_str(),
                a.resource_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("cbr0", "eth0", None),
            ("kube-system/uplink", "net1", None),
            ("fixtures/macvlan-conf", "net-mv", None),
            (
                "fixtures/sriov-net-a",
                "net3",
                Some("intel.com/sriov_netdevice")
            ),
        ]
    );
    assert_eq!(plan.attachments[3].delegate.first_type(), "sriov");
}

#[tokio::test]
async fn no_annotations_in_local_mode_means_empty_annotations() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path());
    let api = LocalApi::from_config(&config);
    let pod = PodRef {
        namespace: "fixtures".into(),
        name: "p".into(),
        uid: None,
    };
    // `None` would ask the (absent) API server for the pod: a clear error.
    let input = PlanInput {
        config: &config,
        ifname: "eth0",
        pod: pod.clone(),
        pod_annotations: None,
        net_dir: &tmp.path().join("net.d"),
    };
    let e = build_plan(&input, &api).await.unwrap_err();
    assert!(e.msg.contains("no API server"), "{}", e.msg);
    // What the caller passes instead when !api.has_pods().
    assert!(!api.has_pods());
    let empty: Map<String, Value> = Map::new();
    let input = PlanInput {
        pod_annotations: Some(&empty),
        ..input
    };
    let plan = build_plan(&input, &api).await.unwrap();
    let nets: Vec<&str> = plan
        .attachments
        .iter()
        .map(|a| a.network.as_str())
        .collect();
    assert_eq!(nets, vec!["cbr0", "kube-system/uplink"]);
    // network-status lands beside the journal
    api.patch_network_status(&pod, &[]).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("state/status/fixtures_p.json")).unwrap(),
        "[]"
    );
}
