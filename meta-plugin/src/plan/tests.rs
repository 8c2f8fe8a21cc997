//! Planning against the in-memory [`FakeKube`]: the exact requests, order, names, isolation,
//! capability args, default routes and validation.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use plexus_delegates::cni::{CniError, ErrorCode};
use serde_json::{Map, Value, json};

use super::*;
use crate::config::PlexusConfig;
use crate::kube::PodRef;
use crate::kube::fake::{Call, FakeKube};

const BRIDGE: &str =
    r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge","bridge":"cni0"}]}"#;
const MACVLAN: &str = r#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth1"}"#;

fn data(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap()
}

/// `spec.config` of a real NAD body.
fn nad_config(file: &str) -> String {
    let v: Value = serde_json::from_str(&data(file)).unwrap();
    v["spec"]["config"].as_str().unwrap().to_owned()
}

struct Env {
    _tmp: tempfile::TempDir,
    net_dir: PathBuf,
    conf_dir: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let net_dir = tmp.path().join("net.d");
        let conf_dir = tmp.path().join("multus.d");
        std::fs::create_dir_all(&net_dir).unwrap();
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(net_dir.join("10-bridge.conflist"), BRIDGE).unwrap();
        Env {
            _tmp: tmp,
            net_dir,
            conf_dir,
        }
    }

    /// The meta-plugin config: cluster network = the bridge conflist file, plus `extra` keys.
    fn config(&self, extra: Value) -> PlexusConfig {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "plexus",
            "clusterNetwork": self.net_dir.join("10-bridge.conflist"),
            "confDir": self.conf_dir,
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        PlexusConfig::parse(c.to_string().as_bytes()).unwrap()
    }
}

fn pod(ns: &str, name: &str) -> PodRef {
    PodRef {
        namespace: ns.into(),
        name: name.into(),
        uid: None,
    }
}

fn annotations(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect()
}

async fn plan_with(
    env: &Env,
    config: &PlexusConfig,
    pod: PodRef,
    ann: Option<&Map<String, Value>>,
    kube: &FakeKube,
) -> Result<Plan, CniError> {
    let input = PlanInput {
        config,
        ifname: "eth0",
        pod,
        pod_annotations: ann,
        net_dir: &env.net_dir,
    };
    build_plan(&input, kube).await
}

fn get_nad(ns: &str, name: &str) -> Call {
    Call::GetNad {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn summary(p: &Plan) -> Vec<(String, String, bool)> {
    p.attachments
        .iter()
        .map(|a| (a.network.clone(), a.ifname.clone(), a.is_cluster))
        .collect()
}

fn s(network: &str, ifname: &str, cluster: bool) -> (String, String, bool) {
    (network.into(), ifname.into(), cluster)
}

const NETS: &str = plexus_crds::NETWORKS_ANNOTATION;
const DEFNET: &str = plexus_crds::DEFAULT_NETWORK_ANNOTATION;

#[tokio::test]
async fn real_pod_one_pod_get_and_one_get_per_nad() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    let pod_body: Pod = serde_json::from_str(&data("pod-get.json")).unwrap();
    kube.add_pod(pod_body);
    kube.add_nad(
        "fixtures",
        "macvlan-conf",
        Some(&nad_config("nad-get-macvlan.json")),
    );
    kube.add_nad(
        "fixtures",
        "sriov-net-a",
        Some(&nad_config("nad-get-sriov.json")),
    );
    let pod = PodRef {
        uid: Some("449436d5-70fb-40f1-9004-df6094d98123".into()),
        ..pod("fixtures", "multi-pod")
    };
    let p = plan_with(&env, &cfg, pod, None, &kube).await.unwrap();
    assert_eq!(
        kube.calls(),
        vec![
            Call::GetPod {
                namespace: "fixtures".into(),
                name: "multi-pod".into()
            },
            get_nad("fixtures", "macvlan-conf"),
            get_nad("fixtures", "sriov-net-a"),
        ]
    );
    assert_eq!(
        summary(&p),
        vec![
            s("cbr0", "eth0", true),
            s("fixtures/macvlan-conf", "net-mv", false),
            s("fixtures/sriov-net-a", "net2", false),
        ]
    );
    let mv = &p.attachments[1];
    assert_eq!(mv.delegate.first_type(), "macvlan");
    assert_eq!(mv.delegate.name(), "macvlan-conf"); // injected from the NAD name
    assert_eq!(
        Value::Object(mv.runtime_config.clone()),
        json!({"ips": ["10.10.1.30/16"], "mac": "02:23:45:67:89:01"})
    );
    assert_eq!(
        mv.cni_args,
        vec![
            ("IP".to_owned(), "10.10.1.30/16".to_owned()),
            ("MAC".to_owned(), "02:23:45:67:89:01".to_owned())
        ]
    );
    assert!(matches!(p.attachments[0].delegate, Delegate::ConfList(_)));
    assert!(p.attachments[2].runtime_config.is_empty());
}

#[tokio::test]
async fn pod_uid_mismatch_is_unknown_container() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    kube.add_pod(FakeKube::pod("ns", "p", "new-uid", &[]));
    let pod = PodRef {
        uid: Some("old-uid".into()),
        ..pod("ns", "p")
    };
    let e = plan_with(&env, &cfg, pod, None, &kube).await.unwrap_err();
    assert!(e.is(ErrorCode::UnknownContainer), "{e:?}");
}

#[tokio::test]
async fn passed_annotations_no_pod_get_and_same_nad_twice_fetched_once() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    kube.add_nad("ns", "mv", Some(MACVLAN));
    let ann = annotations(&[(NETS, "mv, ns/mv")]);
    let p = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap();
    assert_eq!(kube.calls(), vec![get_nad("ns", "mv")]);
    assert_eq!(
        summary(&p),
        vec![
            s("cbr0", "eth0", true),
            s("ns/mv", "net1", false),
            s("ns/mv", "net2", false)
        ]
    );
}

#[tokio::test]
async fn order_cluster_delegates_default_networks_annotation() {
    let env = Env::new();
    let cfg = env.config(json!({
        "clusterNetwork": null,
        "delegates": [
            serde_json::from_str::<Value>(BRIDGE).unwrap(),
            {"cniVersion": "1.0.0", "name": "side", "type": "ptp"}
        ],
        "defaultNetworks": ["dflt", "other/dflt2"],
    }));
    let kube = FakeKube::default();
    kube.add_nad("kube-system", "dflt", Some(MACVLAN));
    kube.add_nad("other", "dflt2", Some(MACVLAN));
    kube.add_nad("ns", "a", Some(MACVLAN));
    kube.add_nad("ns", "b", Some(MACVLAN));
    let ann = annotations(&[(NETS, "a@custom,b,kube-system/dflt")]);
    let p = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap();
    assert_eq!(
        summary(&p),
        vec![
            s("cbr0", "eth0", true),
            s("side", "net1", false),
            s("kube-system/dflt", "net2", false),
            s("other/dflt2", "net3", false),
            s("ns/a", "custom", false),
            s("ns/b", "net5", false),
            s("kube-system/dflt", "net6", false),
        ]
    );
    assert_eq!(
        kube.calls(),
        vec![
            get_nad("kube-system", "dflt"),
            get_nad("other", "dflt2"),
            get_nad("ns", "a"),
            get_nad("ns", "b"),
        ]
    );
}

#[tokio::test]
async fn duplicate_ifnames_name_both_networks() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    kube.add_nad("ns", "a", Some(MACVLAN));
    kube.add_nad("ns", "b", Some(MACVLAN));
    let ann = annotations(&[(NETS, "a@net2,b")]);
    let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig));
    assert!(e.msg.contains("\"net2\" is used twice"), "{}", e.msg);
    assert!(e.msg.contains("entry 0 (ns/a)"), "{}", e.msg);
    assert!(e.msg.contains("entry 1 (ns/b)"), "{}", e.msg);
    // clashing with the cluster network's CNI_IFNAME
    let ann = annotations(&[(NETS, "a@eth0")]);
    let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.msg.contains("\"eth0\" is used twice"), "{}", e.msg);
    assert!(e.msg.contains("clusterNetwork (cbr0)"), "{}", e.msg);
}

#[tokio::test]
async fn namespace_isolation_denies_before_any_request() {
    let env = Env::new();
    let cfg = env.config(json!({"namespaceIsolation": true, "globalNamespaces": "shared"}));
    let kube = FakeKube::default();
    kube.add_nad("team-b", "x", Some(MACVLAN));
    kube.add_nad("shared", "g", Some(MACVLAN));
    kube.add_nad("team-a", "own", Some(MACVLAN));
    let ann = annotations(&[(NETS, "own,shared/g")]);
    let p = plan_with(&env, &cfg, pod("team-a", "p"), Some(&ann), &kube)
        .await
        .unwrap();
    assert_eq!(p.attachments.len(), 3);

    let kube = FakeKube::default();
    let ann = annotations(&[(NETS, "team-b/x")]);
    let e = plan_with(&env, &cfg, pod("team-a", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig));
    assert!(e.msg.contains("team-b/x"), "{}", e.msg);
    assert!(e.msg.contains(NETS), "{}", e.msg);
    assert!(kube.calls().is_empty());

    // the default-network annotation too
    let ann = annotations(&[(DEFNET, "team-b/x")]);
    let e = plan_with(&env, &cfg, pod("team-a", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.msg.contains(DEFNET), "{}", e.msg);
    assert!(kube.calls().is_empty());
}

#[tokio::test]
async fn system_namespace_skips_default_networks() {
    let env = Env::new();
    let cfg = env.config(json!({"defaultNetworks": ["dflt"]}));
    let kube = FakeKube::default();
    kube.add_nad("kube-system", "dflt", Some(MACVLAN));
    let empty = Map::new();
    let p = plan_with(
        &env,
        &cfg,
        pod("kube-system", "coredns"),
        Some(&empty),
        &kube,
    )
    .await
    .unwrap();
    assert_eq!(summary(&p), vec![s("cbr0", "eth0", true)]);
    assert!(kube.calls().is_empty());
    let p = plan_with(&env, &cfg, pod("app", "web"), Some(&empty), &kube)
        .await
        .unwrap();
    assert_eq!(
        summary(&p),
        vec![
            s("cbr0", "eth0", true),
            s("kube-system/dflt", "net1", false)
        ]
    );
}

#[tokio::test]
async fn default_network_annotation_replaces_cluster_network() {
    let env = Env::new();
    // Given by name, the configured cluster network would be a GET of kube-system/cbr0.
    let cfg = env.config(json!({"clusterNetwork": "cbr0"}));
    let kube = FakeKube::default();
    kube.add_nad(
        "kube-system",
        "alt",
        Some(r#"{"cniVersion":"1.0.0","type":"ptp"}"#),
    );
    kube.add_nad("ns", "mv", Some(MACVLAN));
    let ann = annotations(&[(DEFNET, "alt"), (NETS, "mv")]);
    let p = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap();
    assert_eq!(
        summary(&p),
        vec![
            s("kube-system/alt", "eth0", true),
            s("ns/mv", "net1", false)
        ]
    );
    assert_eq!(
        kube.calls(),
        vec![get_nad("kube-system", "alt"), get_nad("ns", "mv")]
    );
    // Without the annotation: the name is looked up as a NAD, then as a file (404 → file).
    let kube = FakeKube::default();
    let p = plan_with(&env, &cfg, pod("ns", "p"), Some(&Map::new()), &kube)
        .await
        .unwrap();
    assert_eq!(summary(&p), vec![s("cbr0", "eth0", true)]);
    assert_eq!(kube.calls(), vec![get_nad("kube-system", "cbr0")]);
}

#[tokio::test]
async fn capability_args_and_cni_args() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    kube.add_nad("ns", "mv", Some(MACVLAN));
    let sel = json!([{
        "name": "mv",
        "ips": ["10.1.1.5/24", "fd00::5/64"],
        "mac": "02:00:00:00:00:05",
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 10},
        "infiniband-guid": "c2:cc:cc:cc:cc:cc:cc:cc",
        "deviceID": "0000:03:02.1",
        "cni-args": {"foo": "bar"}
    }]);
    let ann = annotations(&[(NETS, &sel.to_string())]);
    let p = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap();
    let a = &p.attachments[1];
    assert_eq!(
        Value::Object(a.runtime_config.clone()),
        json!({
            "ips": ["10.1.1.5/24", "fd00::5/64"],
            "mac": "02:00:00:00:00:05",
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 1000, "ingressBurst": 10},
            "infinibandGUID": "c2:cc:cc:cc:cc:cc:cc:cc",
            "deviceID": "0000:03:02.1"
        })
    );
    assert_eq!(
        a.cni_args,
        vec![
            ("IP".to_owned(), "10.1.1.5/24,fd00::5/64".to_owned()),
            ("MAC".to_owned(), "02:00:00:00:00:05".to_owned())
        ]
    );
    assert_eq!(
        a.args_cni.clone().map(Value::Object),
        Some(json!({"foo": "bar"}))
    );
    // the cluster network gets nothing
    let c = &p.attachments[0];
    assert!(c.runtime_config.is_empty() && c.cni_args.is_empty() && c.args_cni.is_none());
}

#[tokio::test]
async fn default_route_one_gateway_per_family() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    kube.add_nad("ns", "a", Some(MACVLAN));
    kube.add_nad("ns", "b", Some(MACVLAN));
    let ok = json!([
        {"name": "a", "default-route": ["10.1.1.1"]},
        {"name": "b", "default-route": ["fd00::1"]}
    ]);
    let ann = annotations(&[(NETS, &ok.to_string())]);
    let p = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap();
    assert!(p.attachments[0].default_route.is_empty());
    assert_eq!(
        p.attachments[1].default_route,
        vec!["10.1.1.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        p.attachments[2].default_route,
        vec!["fd00::1".parse::<std::net::IpAddr>().unwrap()]
    );

    let bad = json!([
        {"name": "a", "default-route": ["10.1.1.1"]},
        {"name": "b", "default-route": ["10.2.2.1"]}
    ]);
    let ann = annotations(&[(NETS, &bad.to_string())]);
    let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig));
    assert!(e.msg.contains("one IPv4 default gateway"), "{}", e.msg);
    assert!(
        e.msg.contains("entry 0 (ns/a) asks for 10.1.1.1"),
        "{}",
        e.msg
    );
    assert!(
        e.msg.contains("entry 1 (ns/b) asks for 10.2.2.1"),
        "{}",
        e.msg
    );
}

#[tokio::test]
async fn empty_spec_nad_resolved_from_conf_dir() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    kube.add_nad("fixtures", "from-file", None);
    let ann = annotations(&[(NETS, "from-file")]);
    let e = plan_with(&env, &cfg, pod("fixtures", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig));
    assert!(e.msg.contains("has no spec.config"), "{}", e.msg);
    std::fs::write(
        env.conf_dir.join("20-from-file.conf"),
        r#"{"cniVersion":"0.4.0","name":"from-file","type":"ipvlan","master":"eth1"}"#,
    )
    .unwrap();
    let p = plan_with(&env, &cfg, pod("fixtures", "p"), Some(&ann), &kube)
        .await
        .unwrap();
    let a = &p.attachments[1];
    assert_eq!(a.network, "fixtures/from-file");
    assert_eq!(a.delegate.first_type(), "ipvlan");
}

#[tokio::test]
async fn plan_is_validated() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let cases = [
        (
            r#"{"cniVersion":"1.0.0","type":"../evil"}"#,
            ErrorCode::InvalidConfig,
            "\"type\"",
        ),
        (
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"macvlan"},{"type":"a/b"}]}"#,
            ErrorCode::InvalidConfig,
            "plugins[1].type",
        ),
        (
            r#"{"cniVersion":"1.0.0","type":"macvlan","ipam":{"type":"../ipam"}}"#,
            ErrorCode::InvalidConfig,
            "ipam.type",
        ),
        (
            r#"{"cniVersion":"9.9.9","type":"macvlan"}"#,
            ErrorCode::IncompatibleVersion,
            "cniVersion",
        ),
    ];
    for (conf, code, field) in cases {
        let kube = FakeKube::default();
        kube.add_nad("ns", "bad", Some(conf));
        let ann = annotations(&[(NETS, "bad")]);
        let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
            .await
            .unwrap_err();
        assert!(e.is(code), "{conf}: {e:?}");
        assert!(e.msg.contains("network \"ns/bad\" (net1)"), "{}", e.msg);
        assert!(e.msg.contains(field), "{}", e.msg);
    }
}

#[tokio::test]
async fn bad_annotations_fail_before_any_nad_request() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    let ann = annotations(&[(NETS, r#"{"name":"a"}"#)]);
    let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig));
    assert!(e.msg.contains(NETS), "{}", e.msg);
    let mut ann = Map::new();
    ann.insert(NETS.into(), json!(5));
    let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig));
    assert!(
        e.msg.contains("io.kubernetes.cri.pod-annotations") && e.msg.contains("= 5"),
        "{}",
        e.msg
    );
    let ann = annotations(&[(DEFNET, "a,b")]);
    let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.msg.contains(DEFNET), "{}", e.msg);
    assert!(kube.calls().is_empty());
}

#[tokio::test]
async fn missing_nad_names_the_annotation_entry() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    kube.add_nad("ns", "a", Some(MACVLAN));
    let ann = annotations(&[(NETS, "a,nope")]);
    let e = plan_with(&env, &cfg, pod("ns", "p"), Some(&ann), &kube)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig));
    assert!(e.msg.contains("entry 1 (ns/nope)"), "{}", e.msg);
    assert!(e.msg.contains("not found"), "{}", e.msg);
}

#[tokio::test]
async fn no_pod_name_no_request() {
    let env = Env::new();
    let cfg = env.config(json!({}));
    let kube = FakeKube::default();
    let p = plan_with(&env, &cfg, PodRef::default(), None, &kube)
        .await
        .unwrap();
    assert_eq!(summary(&p), vec![s("cbr0", "eth0", true)]);
    assert!(kube.calls().is_empty());
}

#[test]
fn pod_annotations_from_runtime_config_reads_the_cri_key() {
    let rc = json!({"io.kubernetes.cri.pod-annotations": {NETS: "a"}, "portMappings": []});
    let m = pod_annotations_from_runtime_config(rc.as_object().unwrap()).unwrap();
    assert_eq!(m.get(NETS), Some(&json!("a")));
    assert!(pod_annotations_from_runtime_config(&Map::new()).is_none());
}
