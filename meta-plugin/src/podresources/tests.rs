//! The lookup over a fake kubelet: `Get` first, `List` only when `Get` is not offered, the pod
//! picked by namespace and name, and the device lists sorted and deduplicated.

use std::path::PathBuf;

use super::fake::{FakePodResources, pod_resources};
use super::*;
use crate::kube::PodRef;

const SRIOV: &str = "intel.com/sriov";

fn web() -> PodRef {
    PodRef {
        namespace: "default".into(),
        name: "web".into(),
        uid: None,
    }
}

#[tokio::test]
async fn get_answers_without_a_list() {
    let api = FakePodResources::get_answers(pod_resources(
        "default",
        "web",
        &[("app", SRIOV, &["0000:03:02.1"])],
    ));
    let devices = pod_devices(&api, &web()).await.unwrap();
    assert_eq!(devices.devices(SRIOV), ["0000:03:02.1"]);
    assert_eq!(api.calls(), ["Get"]);
}

#[tokio::test]
async fn get_unimplemented_falls_back_to_list_and_picks_the_pod() {
    let api = FakePodResources::list_only(vec![
        // Same name, other namespace: not ours.
        pod_resources("other", "web", &[("app", SRIOV, &["0000:03:02.7"])]),
        pod_resources("default", "web", &[("app", SRIOV, &["0000:03:02.2"])]),
        pod_resources("default", "db", &[("app", SRIOV, &["0000:03:02.3"])]),
    ]);
    let devices = pod_devices(&api, &web()).await.unwrap();
    assert_eq!(devices.devices(SRIOV), ["0000:03:02.2"]);
    assert_eq!(api.calls(), ["Get", "List"]);
}

#[tokio::test]
async fn a_pod_kubelet_does_not_know_is_an_error_naming_it() {
    // Get says so: no List.
    let api = FakePodResources::new(Ok(GetAnswer::PodNotFound), Vec::new());
    let e = pod_devices(&api, &web()).await.unwrap_err();
    assert!(matches!(e, PodResourcesError::PodNotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("default/web"), "{e}");
    assert_eq!(api.calls(), ["Get"]);

    // List does not have it.
    let api = FakePodResources::list_only(vec![pod_resources("default", "db", &[])]);
    let e = pod_devices(&api, &web()).await.unwrap_err();
    assert!(matches!(e, PodResourcesError::PodNotFound { .. }), "{e:?}");
    assert_eq!(api.calls(), ["Get", "List"]);
}

#[tokio::test]
async fn a_get_failure_is_not_retried_with_list() {
    let failure = PodResourcesError::Rpc {
        socket: PathBuf::from("/k.sock"),
        call: "Get",
        code: tonic::Code::PermissionDenied,
        message: "no".into(),
    };
    let api = FakePodResources::new(Err(failure), Vec::new());
    let e = pod_devices(&api, &web()).await.unwrap_err();
    assert!(e.to_string().contains("/k.sock"), "{e}");
    assert_eq!(e.cni_code(), plexus_delegates::cni::ErrorCode::Io);
    assert_eq!(api.calls(), ["Get"]);
}

#[test]
fn devices_over_all_containers_sorted_without_duplicates() {
    // kubelet reuses an init container's devices for the app container: reported twice.
    let pod = pod_resources(
        "default",
        "web",
        &[
            ("init", SRIOV, &["0000:03:02.4", "0000:03:02.1"]),
            ("app", SRIOV, &["0000:03:02.1", "0000:03:02.4"]),
            ("side", SRIOV, &["0000:03:02.2"]),
            ("gpu", "nvidia.com/gpu", &["GPU-1"]),
        ],
    );
    let devices = PodDevices::from_pod(&pod);
    assert_eq!(
        devices.devices(SRIOV),
        ["0000:03:02.1", "0000:03:02.2", "0000:03:02.4"]
    );
    assert_eq!(devices.devices("nvidia.com/gpu"), ["GPU-1"]);
    assert!(devices.devices("intel.com/other").is_empty());
    assert_eq!(
        devices.resources().collect::<Vec<_>>(),
        [SRIOV, "nvidia.com/gpu"]
    );
}
