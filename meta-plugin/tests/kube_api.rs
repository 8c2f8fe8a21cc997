//! The real Kubernetes client against an in-process TLS API server with bearer-token auth and
//! real kube-apiserver bodies: the exact requests each operation makes, and the errors.

#![allow(clippy::unwrap_used)]

mod fake_apiserver;

use std::time::Duration;

use fake_apiserver::{Answer, FakeApiServer, write_kubeconfig};
use plexus::config::network::from_nad;
use plexus::kube::{
    AddedInterface, ClientOptions, KubeApi, KubeClient, KubeError, PodEvent, PodRef,
};
use plexus_crds::{NETWORKS_ANNOTATION, NetworkStatus, write_network_status};
use plexus_delegates::cni::{CniError, ErrorCode};

const TOKEN: &str = "s3cr3t-token-abc";
const POD_UID: &str = "449436d5-70fb-40f1-9004-df6094d98123";
const POD_PATH: &str = "/api/v1/namespaces/fixtures/pods/multi-pod";
const NAD_PATH: &str =
    "/apis/k8s.cni.cncf.io/v1/namespaces/fixtures/network-attachment-definitions";

async fn client_for(server: &FakeApiServer, token: &str) -> (KubeClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), token);
    let client = KubeClient::from_kubeconfig(&kubeconfig, &ClientOptions::default())
        .await
        .unwrap();
    (client, dir)
}

fn pod_ref() -> PodRef {
    PodRef {
        namespace: "fixtures".into(),
        name: "multi-pod".into(),
        uid: Some(POD_UID.into()),
    }
}

#[tokio::test]
async fn get_pod_is_one_authenticated_get_and_checks_the_uid() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route("GET", POD_PATH, Answer::File(200, "pod-get.json"));
    let (client, _dir) = client_for(&server, TOKEN).await;

    let pod = client
        .get_pod("fixtures", "multi-pod", Some(POD_UID))
        .await
        .unwrap();
    assert_eq!(pod.metadata.uid.as_deref(), Some(POD_UID));
    let networks = &pod.metadata.annotations.as_ref().unwrap()[NETWORKS_ANNOTATION];
    assert!(networks.contains("macvlan-conf"), "{networks}");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("GET", POD_PATH)
    );
    assert_eq!(
        reqs[0].authorization.as_deref(),
        Some("Bearer s3cr3t-token-abc")
    );
    assert!(reqs[0].body.is_empty());

    // The pod was recreated: same name, other UID.
    let e = client
        .get_pod("fixtures", "multi-pod", Some("0a0a0a0a-old-uid"))
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::PodUidMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("fixtures/multi-pod"), "{msg}");
    assert!(
        msg.contains(POD_UID) && msg.contains("0a0a0a0a-old-uid"),
        "{msg}"
    );
    assert!(msg.contains("recreated"), "{msg}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn get_nad_fetches_and_resolves_real_bodies() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route(
        "GET",
        &format!("{NAD_PATH}/macvlan-conf"),
        Answer::File(200, "nad-get-macvlan.json"),
    );
    server.route(
        "GET",
        &format!("{NAD_PATH}/sriov-net-a"),
        Answer::File(200, "nad-get-sriov.json"),
    );
    server.route(
        "GET",
        &format!("{NAD_PATH}/from-file"),
        Answer::File(200, "nad-get-empty-spec.json"),
    );
    let (client, dir) = client_for(&server, TOKEN).await;

    let nad = client.get_nad("fixtures", "macvlan-conf").await.unwrap();
    let net = from_nad(&nad, "fixtures", "macvlan-conf", dir.path()).unwrap();
    assert_eq!(net.status_name(), "fixtures/macvlan-conf");
    assert_eq!(net.config().as_map()["type"], "macvlan");
    assert_eq!(net.config().name(), Some("macvlan-conf"));

    let nad = client.get_nad("fixtures", "sriov-net-a").await.unwrap();
    assert_eq!(nad.resource_name(), Some("intel.com/sriov_netdevice"));

    let nad = client.get_nad("fixtures", "from-file").await.unwrap();
    assert!(nad.spec_is_empty());

    let reqs = server.requests();
    let got: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "GET",
                "/apis/k8s.cni.cncf.io/v1/namespaces/fixtures/network-attachment-definitions/macvlan-conf"
            ),
            (
                "GET",
                "/apis/k8s.cni.cncf.io/v1/namespaces/fixtures/network-attachment-definitions/sriov-net-a"
            ),
            (
                "GET",
                "/apis/k8s.cni.cncf.io/v1/namespaces/fixtures/network-attachment-definitions/from-file"
            ),
        ]
    );
}

#[tokio::test]
async fn missing_nad_is_a_clear_not_found() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route(
        "GET",
        &format!("{NAD_PATH}/nope"),
        Answer::File(404, "nad-get-404.json"),
    );
    let (client, _dir) = client_for(&server, TOKEN).await;
    let e = client.get_nad("fixtures", "nope").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "get NetworkAttachmentDefinition fixtures/nope: not found (404): network-attachment-definitions.k8s.cni.cncf.io \"nope\" not found"
    );
    assert_eq!(CniError::from(e).code, ErrorCode::InvalidConfig as u32);
}

#[tokio::test]
async fn rejected_token_is_a_clear_auth_error_without_the_token() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route("GET", POD_PATH, Answer::File(200, "pod-get.json"));
    let (client, _dir) = client_for(&server, "wrong-token-xyz").await;
    let e = client
        .get_pod("fixtures", "multi-pod", None)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "get pod fixtures/multi-pod: the API server rejected the credentials (401 Unauthorized)"
        ),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-token-xyz") && !msg.contains(TOKEN),
        "{msg}"
    );
    assert!(!format!("{client:?}").contains("wrong-token-xyz"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn forbidden_is_a_clear_permission_error() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route("GET", POD_PATH, Answer::File(403, "pod-get-403.json"));
    server.route(
        "GET",
        "/api/v1/namespaces/fixtures/pods/nope",
        Answer::File(404, "pod-get-404.json"),
    );
    let (client, _dir) = client_for(&server, TOKEN).await;
    let e = client
        .get_pod("fixtures", "multi-pod", None)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Forbidden { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("permission denied (403 Forbidden)"), "{msg}");
    assert!(
        msg.contains("cannot get resource \\\"pods\\\"")
            || msg.contains("cannot get resource \"pods\""),
        "{msg}"
    );
    let e = client.get_pod("fixtures", "nope", None).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().contains("pods \"nope\" not found"), "{e}");
}

fn statuses() -> Vec<NetworkStatus> {
    vec![NetworkStatus {
        name: "cbr0".into(),
        interface: Some("eth0".into()),
        ips: vec!["10.244.1.7".into()],
        mac: Some("8a:2c:11:4e:5f:01".into()),
        default: true,
        ..NetworkStatus::default()
    }]
}

#[tokio::test]
async fn network_status_is_one_merge_patch_of_pods_status() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route(
        "PATCH",
        &format!("{POD_PATH}/status"),
        Answer::File(200, "pod-status-merge-patch-response.json"),
    );
    let (client, _dir) = client_for(&server, TOKEN).await;

    client
        .patch_network_status(&pod_ref(), &statuses())
        .await
        .unwrap();

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "one request, never GET+PUT: {reqs:?}");
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("PATCH", "/api/v1/namespaces/fixtures/pods/multi-pod/status")
    );
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert!(
        r.query
            .as_deref()
            .unwrap_or("")
            .contains("fieldManager=plexus"),
        "{:?}",
        r.query
    );
    let expected = serde_json::json!({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/network-status": write_network_status(&statuses()).unwrap()
    }}});
    assert_eq!(r.json(), expected);
    // the annotation value is the exact bytes of the real response
    let stored: serde_json::Value = serde_json::from_slice(&fake_apiserver::data(
        "pod-status-merge-patch-response.json",
    ))
    .unwrap();
    assert_eq!(
        stored["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"],
        expected["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
    );
}

#[tokio::test]
async fn status_patch_conflict_is_try_again_later() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route(
        "PATCH",
        &format!("{POD_PATH}/status"),
        Answer::File(409, "pod-status-put-409.json"),
    );
    let (client, _dir) = client_for(&server, TOKEN).await;
    let e = client
        .patch_network_status(&pod_ref(), &statuses())
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Conflict { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("patch network-status of pod fixtures/multi-pod: conflict (409)"),
        "{e}"
    );
    assert_eq!(CniError::from(e).code, ErrorCode::TryAgainLater as u32);
}

#[tokio::test]
async fn events_are_one_create_each() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route(
        "POST",
        "/api/v1/namespaces/fixtures/events",
        Answer::Echo201,
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), TOKEN);
    let options = ClientOptions {
        node_name: Some("node-a".into()),
        ..ClientOptions::default()
    };
    let client = KubeClient::from_kubeconfig(&kubeconfig, &options)
        .await
        .unwrap();

    let added = PodEvent::added_interfaces(
        pod_ref(),
        &[
            AddedInterface {
                ifname: "eth0".into(),
                ips: vec!["10.244.1.7/24".into()],
                network: "cbr0".into(),
            },
            AddedInterface {
                ifname: "net-mv".into(),
                ips: vec!["10.10.1.30/16".into()],
                network: "fixtures/macvlan-conf".into(),
            },
        ],
    );
    client.post_event(&added).await.unwrap();
    let failed = PodEvent::add_failed(
        pod_ref(),
        "fixtures/sriov-net-a",
        Some("net2"),
        "sriov",
        "no VF allocated for resource intel.com/sriov_netdevice",
    );
    client.post_event(&failed).await.unwrap();

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for r in &reqs {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/api/v1/namespaces/fixtures/events")
        );
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    let ev = reqs[0].json();
    assert_eq!(ev["kind"], "Event");
    assert_eq!(ev["apiVersion"], "v1");
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["reason"], "AddedInterface");
    assert_eq!(
        ev["message"],
        "Add eth0 [10.244.1.7/24] from cbr0, net-mv [10.10.1.30/16] from fixtures/macvlan-conf"
    );
    assert_eq!(ev["involvedObject"]["kind"], "Pod");
    assert_eq!(ev["involvedObject"]["name"], "multi-pod");
    assert_eq!(ev["involvedObject"]["namespace"], "fixtures");
    assert_eq!(ev["involvedObject"]["uid"], POD_UID);
    assert_eq!(ev["source"]["component"], "plexus");
    assert_eq!(ev["source"]["host"], "node-a");
    assert_eq!(ev["count"], 1);
    assert!(
        ev["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("multi-pod.")
    );
    let ev = reqs[1].json();
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "FailedAddInterface");
    assert_eq!(
        ev["message"],
        "Failed to add net2 from fixtures/sriov-net-a (delegate sriov): no VF allocated for resource intel.com/sriov_netdevice"
    );
}

#[tokio::test]
async fn unreachable_server_fails_with_a_clear_message() {
    // A port nothing listens on: connection refused, at once.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let server = format!("https://127.0.0.1:{port}");
    let kubeconfig = write_kubeconfig(dir.path(), &server, "not a CA", TOKEN);
    let client = KubeClient::from_kubeconfig(&kubeconfig, &ClientOptions::default()).await;
    // An unusable CA is a kubeconfig error naming the file.
    let e = client.unwrap_err();
    assert!(matches!(e, KubeError::Config { .. }), "{e:?}");
    assert!(e.to_string().contains("plexus.kubeconfig"), "{e}");

    let real = FakeApiServer::start(TOKEN).await;
    let kubeconfig = write_kubeconfig(dir.path(), &server, &real.ca_pem, TOKEN);
    let client = KubeClient::from_kubeconfig(&kubeconfig, &ClientOptions::default())
        .await
        .unwrap();
    let e = client
        .get_pod("fixtures", "multi-pod", None)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Unreachable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "get pod fixtures/multi-pod: cannot reach the API server at {server}"
        )),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert_eq!(CniError::from(e).code, ErrorCode::TryAgainLater as u32);
}

#[tokio::test]
async fn silent_server_hits_the_request_timeout() {
    // Accepts TCP connections and never answers (not even the TLS handshake).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let real = FakeApiServer::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("https://{addr}"), &real.ca_pem, TOKEN);
    let options = ClientOptions {
        timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let client = KubeClient::from_kubeconfig(&kubeconfig, &options)
        .await
        .unwrap();
    // The outer bound only keeps a broken build from hanging the suite; the assertion is on the
    // kind of error, not on how long it took.
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        client.get_nad("fixtures", "macvlan-conf"),
    )
    .await
    .expect("the per-request timeout must end the request")
    .unwrap_err();
    assert!(matches!(e, KubeError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("cannot reach the API server"), "{e}");
    hold.abort();
}

#[tokio::test]
async fn missing_kubeconfig_names_the_file() {
    let e = KubeClient::from_kubeconfig(
        std::path::Path::new("/nonexistent/plexus.kubeconfig"),
        &ClientOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, KubeError::Config { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("kubeconfig /nonexistent/plexus.kubeconfig: "),
        "{e}"
    );
}

#[tokio::test]
async fn client_certificate_authentication() {
    let server = FakeApiServer::start(TOKEN).await;
    server.route("GET", POD_PATH, Answer::File(200, "pod-get.json"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server.client_cert("system:node:node-a");
    let kubeconfig = fake_apiserver::write_cert_kubeconfig(
        dir.path(),
        &server.url(),
        &server.ca_pem,
        &cert,
        &key,
    );
    let client = KubeClient::from_kubeconfig(&kubeconfig, &ClientOptions::default())
        .await
        .unwrap();
    client
        .get_pod("fixtures", "multi-pod", Some(POD_UID))
        .await
        .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].client_cert, "the client presented its certificate");
    assert_eq!(reqs[0].authorization, None);
}

#[tokio::test]
async fn server_certificate_from_another_ca_is_refused() {
    let server = FakeApiServer::start(TOKEN).await;
    let other = FakeApiServer::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &server.url(), &other.ca_pem, TOKEN);
    let client = KubeClient::from_kubeconfig(&kubeconfig, &ClientOptions::default())
        .await
        .unwrap();
    let e = client
        .get_pod("fixtures", "multi-pod", None)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert!(
        server.requests().is_empty(),
        "no request reaches an unverified server"
    );
}
