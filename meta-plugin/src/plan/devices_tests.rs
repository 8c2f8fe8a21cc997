//! The device hand-off over a fake kubelet: NAD order, one device per attachment, the
//! injection into conf and conflist, the errors, and when kubelet is (not) asked.

use plexus_delegates::cni::ErrorCode;
use serde_json::{Map, Value, json};

use super::devices::hand_out;
use super::*;
use crate::kube::PodRef;
use crate::podresources::fake::{FakePodResources, pod_resources};
use crate::podresources::{GetAnswer, PodDevices};

const SRIOV: &str = "intel.com/sriov";
const MLX: &str = "mellanox.com/cx6";

fn pod() -> PodRef {
    PodRef {
        namespace: "default".into(),
        name: "web".into(),
        uid: None,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    let Value::Object(m) = v else { unreachable!() };
    m
}

fn att(network: &str, ifname: &str, resource: Option<&str>) -> Attachment {
    Attachment {
        network: network.into(),
        ifname: ifname.into(),
        is_cluster: ifname == "eth0",
        delegate: Delegate::Conf(obj(
            json!({"cniVersion": "1.0.0", "name": network, "type": "sriov", "vlan": 100}),
        )),
        runtime_config: Map::new(),
        cni_args: Vec::new(),
        args_cni: None,
        default_route: Vec::new(),
        resource_name: resource.map(str::to_owned),
    }
}

fn plan(atts: Vec<Attachment>) -> Plan {
    Plan { attachments: atts }
}

/// The deviceID each attachment got (conf key, pciBusID and runtimeConfig must agree).
fn handed(p: &Plan) -> Vec<Option<String>> {
    p.attachments
        .iter()
        .map(|a| {
            let rc = a.runtime_config.get("deviceID").and_then(Value::as_str);
            for plugin in a.delegate.plugins() {
                let conf = plugin.get("deviceID").and_then(Value::as_str);
                let bus = plugin.get("pciBusID").and_then(Value::as_str);
                assert_eq!(conf, rc, "{}: deviceID", a.network);
                assert_eq!(bus, rc, "{}: pciBusID", a.network);
            }
            rc.map(str::to_owned)
        })
        .collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[test]
fn devices_go_out_sorted_in_nad_order_one_per_attachment() {
    let mut p = plan(vec![
        att("cbr0", "eth0", None),
        att("default/sriov-a", "net1", Some(SRIOV)),
        att("default/macvlan", "net2", None),
        att("default/mlx", "net3", Some(MLX)),
        // The same NAD twice, and a second NAD of the same resource.
        att("default/sriov-a", "net4", Some(SRIOV)),
        att("default/sriov-b", "net5", Some(SRIOV)),
    ]);
    // kubelet's order is not sorted, and an init container's device is reported again.
    let devices = PodDevices::from_pod(&pod_resources(
        "default",
        "web",
        &[
            ("init", SRIOV, &["0000:03:02.4"]),
            (
                "app",
                SRIOV,
                &["0000:03:02.4", "0000:03:02.1", "0000:81:00.2"],
            ),
            ("app", MLX, &["0000:5e:00.3"]),
        ],
    ));
    hand_out(&mut p, &pod(), &devices).unwrap();
    assert_eq!(
        handed(&p),
        [
            None,
            some("0000:03:02.1"),
            None,
            some("0000:5e:00.3"),
            some("0000:03:02.4"),
            some("0000:81:00.2"),
        ]
    );
    // Everything else in the delegate config is untouched.
    assert_eq!(p.attachments[1].delegate.plugins()[0]["vlan"], json!(100));
}

#[test]
fn every_plugin_of_a_conflist_gets_the_device() {
    let mut a = att("default/sriov-chain", "net1", Some(SRIOV));
    a.delegate = Delegate::ConfList(obj(json!({
        "cniVersion": "1.0.0", "name": "sriov-chain",
        "plugins": [{"type": "sriov"}, {"type": "tuning", "sysctl": {}}]
    })));
    let mut p = plan(vec![a]);
    let devices = PodDevices::from_pod(&pod_resources(
        "default",
        "web",
        &[("app", SRIOV, &["0000:03:02.1"])],
    ));
    hand_out(&mut p, &pod(), &devices).unwrap();
    assert_eq!(handed(&p), [some("0000:03:02.1")]);
    let Delegate::ConfList(list) = &p.attachments[0].delegate else {
        unreachable!()
    };
    assert!(
        list.get("deviceID").is_none(),
        "a conflist's top level stays as written"
    );
}

#[test]
fn the_allocated_device_replaces_a_selection_device_id() {
    let mut a = att("default/sriov-a", "net1", Some(SRIOV));
    a.runtime_config
        .insert("deviceID".into(), json!("0000:99:00.0"));
    let mut p = plan(vec![a]);
    let devices = PodDevices::from_pod(&pod_resources(
        "default",
        "web",
        &[("app", SRIOV, &["0000:03:02.1"])],
    ));
    hand_out(&mut p, &pod(), &devices).unwrap();
    assert_eq!(handed(&p), [some("0000:03:02.1")]);
}

#[test]
fn too_few_devices_is_an_error_naming_the_resource_and_the_networks() {
    let original = plan(vec![
        att("default/mlx", "net1", Some(MLX)),
        att("default/sriov-a", "net2", Some(SRIOV)),
        att("default/sriov-b", "net3", Some(SRIOV)),
    ]);
    let mut p = original.clone();
    let devices = PodDevices::from_pod(&pod_resources(
        "default",
        "web",
        &[
            ("app", SRIOV, &["0000:03:02.1"]),
            ("app", MLX, &["0000:5e:00.3"]),
        ],
    ));
    let e = hand_out(&mut p, &pod(), &devices).unwrap_err();
    assert!(e.is(ErrorCode::InvalidConfig), "{e:?}");
    for part in [
        "pod default/web got 1 device(s) of resource \"intel.com/sriov\" (0000:03:02.1)",
        "but 2 network(s) use it",
        "network \"default/sriov-a\" (interface net2)",
        "network \"default/sriov-b\" (interface net3)",
        "request 2 of \"intel.com/sriov\"",
    ] {
        assert!(e.msg.contains(part), "{part:?} not in {}", e.msg);
    }
    assert_eq!(p, original, "nothing handed out on error");
}

#[test]
fn no_device_of_the_resource_names_what_the_pod_did_get() {
    let mut p = plan(vec![att("default/sriov-a", "net1", Some(SRIOV))]);
    let devices = PodDevices::from_pod(&pod_resources(
        "default",
        "web",
        &[("app", MLX, &["0000:5e:00.3"])],
    ));
    let e = hand_out(&mut p, &pod(), &devices).unwrap_err();
    assert!(
        e.msg.contains("no device of resource \"intel.com/sriov\""),
        "{}",
        e.msg
    );
    assert!(e.msg.contains(MLX), "{}", e.msg);
    assert!(e.msg.contains(SRIOV), "{}", e.msg);

    let e = hand_out(&mut p, &pod(), &PodDevices::default()).unwrap_err();
    assert!(e.msg.contains("no devices for the pod at all"), "{}", e.msg);
}

#[tokio::test]
async fn kubelet_is_asked_once_and_only_when_a_nad_names_a_resource() {
    let kubelet = FakePodResources::get_answers(pod_resources(
        "default",
        "web",
        &[("app", SRIOV, &["0000:03:02.2", "0000:03:02.1"])],
    ));
    let mut p = plan(vec![
        att("cbr0", "eth0", None),
        att("default/m", "net1", None),
    ]);
    assign_devices(&mut p, &pod(), &kubelet).await.unwrap();
    assert!(kubelet.calls().is_empty());
    assert_eq!(handed(&p), [None, None]);

    let mut p = plan(vec![
        att("default/sriov-a", "net1", Some(SRIOV)),
        // An empty annotation names no resource.
        att("default/m", "net2", Some(" ")),
        att("default/sriov-b", "net3", Some(SRIOV)),
    ]);
    assign_devices(&mut p, &pod(), &kubelet).await.unwrap();
    assert_eq!(kubelet.calls(), ["Get"]);
    assert_eq!(
        handed(&p),
        [some("0000:03:02.1"), None, some("0000:03:02.2")]
    );
}

#[tokio::test]
async fn get_unimplemented_falls_back_to_list() {
    let kubelet = FakePodResources::list_only(vec![
        pod_resources("default", "db", &[("app", SRIOV, &["0000:03:02.3"])]),
        pod_resources("default", "web", &[("app", SRIOV, &["0000:03:02.5"])]),
    ]);
    let mut p = plan(vec![att("default/sriov-a", "net1", Some(SRIOV))]);
    assign_devices(&mut p, &pod(), &kubelet).await.unwrap();
    assert_eq!(kubelet.calls(), ["Get", "List"]);
    assert_eq!(handed(&p), [some("0000:03:02.5")]);
}

#[tokio::test]
async fn a_pod_kubelet_does_not_know_fails_naming_pod_network_and_resource() {
    let original = plan(vec![att("default/sriov-a", "net1", Some(SRIOV))]);
    for kubelet in [
        FakePodResources::new(Ok(GetAnswer::PodNotFound), Vec::new()),
        FakePodResources::list_only(vec![pod_resources("default", "db", &[])]),
    ] {
        let mut p = original.clone();
        let e = assign_devices(&mut p, &pod(), &kubelet).await.unwrap_err();
        assert!(e.is(ErrorCode::TryAgainLater), "{e:?}");
        for part in [
            "default/web",
            "network \"default/sriov-a\" (interface net1)",
            SRIOV,
        ] {
            assert!(e.msg.contains(part), "{part:?} not in {}", e.msg);
        }
        assert_eq!(p, original);
    }
}

#[tokio::test]
async fn without_the_pod_name_kubelet_cannot_be_asked() {
    let kubelet = FakePodResources::list_only(Vec::new());
    let mut p = plan(vec![att("default/sriov-a", "net1", Some(SRIOV))]);
    let nameless = PodRef {
        namespace: "default".into(),
        name: String::new(),
        uid: None,
    };
    let e = assign_devices(&mut p, &nameless, &kubelet)
        .await
        .unwrap_err();
    assert!(e.is(ErrorCode::InvalidEnv), "{e:?}");
    assert!(e.msg.contains("K8S_POD_NAME"), "{}", e.msg);
    assert!(e.msg.contains(SRIOV), "{}", e.msg);
    assert!(kubelet.calls().is_empty());
}
