//! The device-plugin hand-off against a fake kubelet serving the PodResources API on a real unix
//! socket.
//!
//! - End to end: the built `plexus` binary, run as containerd runs it (local mode, the test bed
//!   of [`local_env`]), ADDs a pod whose NAD names `k8s.v1.cni.cncf.io/resourceName`: the
//!   delegate (an exec'd script standing in for sriov, which needs SR-IOV hardware; it records
//!   its stdin) gets the VF kubelet reports for the pod as `deviceID`, `pciBusID` and
//!   `runtimeConfig.deviceID`, and the device-info file path; network-status carries the device
//!   plugin's device-info; DEL removes the meta-plugin's device-info file. A pod that got no
//!   device of the resource is a clear CNI error and nothing is attached.
//! - Planning (`build_plan` then `assign_devices`, as ADD plans) for pods with SR-IOV NADs
//!   (type `sriov`): `Get`, the `List` fallback, too few VFs, no kubelet.

#![allow(clippy::unwrap_used)]

mod fake_kubelet;
mod local_env;
mod pod_state;

use std::path::{Path, PathBuf};

use fake_kubelet::{FakeKubelet, pod_with_devices};
use local_env::{Env, text};
use plexus::config::PlexusConfig;
use plexus::kube::PodRef;
use plexus::local::LocalApi;
use plexus::plan::{Plan, PlanInput, assign_devices, build_plan};
use plexus::podresources::KubeletPodResources;
use plexus_delegates::cni::ErrorCode;
use plexus_kubelet_api::podresources::PodResources;
use serde_json::{Map, Value, json};

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

/// A pod whose `app` container got `ids` of the SR-IOV resource.
fn pod_with_vfs(namespace: &str, name: &str, ids: &[&str]) -> PodResources {
    pod_with_devices(namespace, name, RESOURCE, ids)
}

fn pod() -> PodRef {
    PodRef {
        namespace: "fixtures".into(),
        name: "multi-pod".into(),
        uid: None,
    }
}

/// The end-to-end bed: [`Env`] (eth0 through the reference bridge, `macvlan-a` on the node's
/// uplink) plus a VF network `vf-net` whose NAD names [`RESOURCE`], served by the exec'd
/// `vfstub` delegate, a fake kubelet whose `Get` reports `pods`, and the device plugin's
/// device-info file for [`VF`].
struct VfBed {
    env: Env,
    /// Keeps the fake kubelet serving while plexus runs.
    _rt: tokio::runtime::Runtime,
    kubelet: FakeKubelet,
    config: String,
}

/// The VF the fake kubelet allocates to the pod, and the device plugin's file for it (a
/// switchdev VF: with its PF and representor, device-info spec 1.1.0).
const VF: &str = "0000:03:02.1";
const DP_FILE: &str = r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:03:02.1","pf-pci-address":"0000:03:00.0","representor-device":"eth3"}}"#;

impl VfBed {
    fn new(test: &str, pods: Vec<PodResources>) -> Option<VfBed> {
        let env = Env::new(test)?;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let kubelet = FakeKubelet::new(true, pods);
        let sock = {
            let _in_rt = rt.enter();
            kubelet.serve(env.tmp.path())
        };
        // A stand-in for sriov (which needs SR-IOV hardware): records its stdin per verb and,
        // at ADD, which meta-plugin device-info files exist; answers ADD with a result for the
        // requested interface.
        let rec = env.p("rec");
        std::fs::create_dir_all(&rec).unwrap();
        env.write_script(
            "vfstub",
            &format!(
                "#!/bin/sh\n\
                 # test delegate: records its stdin, answers ADD for a VF\n\
                 cat > {rec}/$CNI_COMMAND.json\n\
                 if [ \"$CNI_COMMAND\" = ADD ]; then\n\
                 \tls {devinfo}/cni > {rec}/devinfo-at-add 2>&1\n\
                 \tprintf '{{\"cniVersion\":\"1.0.0\",\"interfaces\":[{{\"name\":\"%s\",\"mac\":\"ce:d8:06:08:e6:3f\",\"mtu\":1500,\"sandbox\":\"%s\"}}],\"ips\":[{{\"address\":\"10.56.217.171/24\",\"interface\":0}}],\"dns\":{{}}}}' \"$CNI_IFNAME\" \"$CNI_NETNS\"\n\
                 fi\n",
                rec = rec.display(),
                devinfo = env.p("devinfo").display(),
            ),
        );
        let delegate = json!({
            "cniVersion": "1.0.0", "name": "vf-net", "type": "vfstub", "vlan": 1000,
            "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}
        });
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": "vf-net", "namespace": "default",
                "annotations": {"k8s.v1.cni.cncf.io/resourceName": RESOURCE}
            },
            "spec": {"config": delegate.to_string()}
        });
        std::fs::write(env.p("nads/vf-net.json"), nad.to_string()).unwrap();
        let dp = env.p("devinfo/dp/intel.com-sriov_netdevice-0000:03:02.1-device.json");
        std::fs::create_dir_all(dp.parent().unwrap()).unwrap();
        std::fs::write(&dp, DP_FILE).unwrap();
        let mut config = env.config_json("macvlan-a,vf-net");
        config["binDir"] = json!(env.p("bin"));
        config["podResourcesSocket"] = json!(sock);
        config["deviceInfoDir"] = json!(env.p("devinfo"));
        Some(VfBed {
            env,
            _rt: rt,
            kubelet,
            config: config.to_string(),
        })
    }

    /// What the delegate got on stdin for `verb`.
    fn stdin(&self, verb: &str) -> Value {
        let path = self.env.p(&format!("rec/{verb}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// The meta-plugin's device-info file of the VF attachment (net2) of sandbox `cid`.
    fn cni_devinfo(&self, cid: &str) -> PathBuf {
        self.env
            .p(&format!("devinfo/cni/default-vf-net-{cid}_net2"))
    }
}

#[test]
fn add_of_the_plexus_binary_hands_the_pods_vf_to_the_delegate_and_reports_its_device_info() {
    let Some(bed) = VfBed::new(
        "add_of_the_plexus_binary_hands_the_pods_vf_to_the_delegate_and_reports_its_device_info",
        vec![
            pod_with_vfs("default", "other-pod", &["0000:03:02.7"]),
            pod_with_vfs("default", local_env::POD, &[VF]),
        ],
    ) else {
        return;
    };
    let env = &bed.env;
    let cid = "5b2c8e1f9d0c4f6a8e3b7c1d2a4f6e8b0c2d4f6a8b0c2e4f6a8b0c2d4e6f8a0b";
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &bed.config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert_eq!(bed.kubelet.calls(), ["Get"], "one Get for the pod");

    // The delegate got the pod's VF as deviceID and pciBusID, in runtimeConfig (it declares
    // the capability), with its own keys, and the path of its device-info file.
    let add = bed.stdin("ADD");
    let file = bed.cni_devinfo(cid);
    assert_eq!(add["deviceID"], VF, "{add}");
    assert_eq!(add["pciBusID"], VF, "{add}");
    assert_eq!(add["vlan"], 1000, "{add}");
    assert_eq!(
        add["runtimeConfig"],
        json!({"deviceID": VF, "CNIDeviceInfoFile": file}),
        "{add}"
    );
    // The device-info file existed before the delegate ran: a byte copy of the device plugin's.
    assert_eq!(
        std::fs::read_to_string(env.p("rec/devinfo-at-add"))
            .unwrap()
            .trim(),
        file.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), DP_FILE);
    // The other networks got no device.
    let net1: Value = serde_json::from_str(
        &std::fs::read_to_string(env.journal_dir(cid).join("1-net1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(net1["attachment"]["runtime_config"], json!({}), "{net1}");
    assert!(net1.get("device_info_file").is_none(), "{net1}");
    let net2: Value = serde_json::from_str(
        &std::fs::read_to_string(env.journal_dir(cid).join("2-net2.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(net2["device_info_file"], json!(file), "{net2}");

    // network-status carries the device plugin's device-info (COMPAT §4 bytes).
    let status = std::fs::read_to_string(env.status_path()).unwrap();
    let parsed = plexus_crds::parse_network_status(&status).unwrap();
    assert_eq!(
        parsed
            .iter()
            .map(|s| (s.name.as_str(), s.device_info.is_some()))
            .collect::<Vec<_>>(),
        [
            ("cbr0", false),
            ("default/macvlan-a", false),
            ("default/vf-net", true)
        ]
    );
    let vf_entry = r#"{
    "name": "default/vf-net",
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
            "pci-address": "0000:03:02.1",
            "pf-pci-address": "0000:03:00.0",
            "representor-device": "eth3"
        }
    }
}]"#;
    assert!(status.ends_with(vf_entry), "{status}");

    // DEL: the delegate's DEL gets the same VF (from the journal; kubelet is not asked), and the
    // meta-plugin's device-info file goes; the device plugin's stays.
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &bed.config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let del = bed.stdin("DEL");
    assert_eq!(
        (&del["deviceID"], &del["pciBusID"]),
        (&json!(VF), &json!(VF))
    );
    assert_eq!(bed.kubelet.calls(), ["Get"]);
    assert!(!file.exists());
    assert!(
        env.p("devinfo/dp/intel.com-sriov_netdevice-0000:03:02.1-device.json")
            .exists()
    );
    env.assert_nothing_left(cid, "after DEL");
}

#[test]
fn a_pod_that_got_no_vf_of_the_resource_is_a_cni_error_and_nothing_is_attached() {
    // kubelet gave the pod a device of another resource only.
    let mut pod = pod_with_vfs("default", local_env::POD, &["0000:81:00.2"]);
    pod.containers[0].devices[0].resource_name = "mellanox.com/cx5_sriov".into();
    let Some(bed) = VfBed::new(
        "a_pod_that_got_no_vf_of_the_resource_is_a_cni_error_and_nothing_is_attached",
        vec![pod],
    ) else {
        return;
    };
    let env = &bed.env;
    let cid = "6c3d9f2a0e1d4a7b9f4c8d2e3b5a7f9c1d3e5a7b9c1d3f5a7b9c1d3e5f7a9b1c";
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &bed.config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 7, "{err}");
    let msg = err["msg"].as_str().unwrap();
    for part in [
        "default/pod1",
        "no device of resource \"intel.com/sriov_netdevice\"",
        "mellanox.com/cx5_sriov",
        "\"default/vf-net\" (interface net2)",
    ] {
        assert!(msg.contains(part), "{part:?} missing: {err}");
    }
    // Nothing attached: planning failed before eth0's delegate ran; the VF delegate never ran.
    assert_eq!(bed.kubelet.calls(), ["Get"]);
    assert!(!env.p("rec/ADD.json").exists());
    assert!(!env.p("devinfo/cni").exists());
    env.assert_nothing_left(cid, "after the failed ADD");
    // The pod is told why (local mode: the Event log).
    let events = std::fs::read_to_string(env.p("cni/events.log")).unwrap();
    assert!(
        events.contains("Warning") && events.contains("intel.com/sriov_netdevice"),
        "{events}"
    );
    // The runtime's DEL of the failed sandbox is a no-op.
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &bed.config);
    assert!(out.status.success(), "{}", text(&out));
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
async fn planning_hands_out_the_vf_the_fake_kubelet_reports_for_the_pod() {
    let tmp = tempfile::tempdir().unwrap();
    let kubelet = FakeKubelet::new(
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

    // The device-info and the delegate's view: the end-to-end tests above.
}

#[tokio::test]
async fn without_get_the_list_fallback_hands_two_nads_of_one_resource_different_vfs() {
    let tmp = tempfile::tempdir().unwrap();
    let kubelet = FakeKubelet::new(
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
    let kubelet = FakeKubelet::new(
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
    FakeKubelet::new(
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
