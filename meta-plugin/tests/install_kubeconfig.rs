//! The credentials `plexus install` gives the plugin, used by the plugin's real client against an
//! in-process TLS API server: the kubeconfig and token copy (mode 0600), and token rotation as the
//! kubelet performs it (an atomic swap of the projected volume's `..data` link).

#![allow(clippy::unwrap_used)]

mod fake_apiserver;
mod install_support;

use fake_apiserver::{Answer, FakeApiServer};
use install_support::*;
use plexus::install::kubeconfig::ApiServer;
use plexus::install::paths::HostRoot;
use plexus::install::{Installer, Readiness};
use plexus::kube::{ClientOptions, KubeApi, KubeClient, KubeError};

const POD_PATH: &str = "/api/v1/namespaces/fixtures/pods/multi-pod";

fn local_api(server: &FakeApiServer) -> ApiServer {
    ApiServer {
        host: server.addr.ip().to_string(),
        port: server.addr.port(),
    }
}

/// The fake node's dirs given as node paths with `--host-root /`, so that the `tokenFile` path
/// the kubeconfig names is where the plugin's client really finds the token.
fn config_at_real_paths(node: &FakeNode, api: ApiServer) -> plexus::install::InstallConfig {
    let mut config = node.config(api);
    config.host_root = HostRoot::new("/");
    config.cni_conf_dir = node.conf_dir();
    config.cni_bin_dir = node.bin_dir();
    config.kubeconfig = node.kubeconfig();
    config
}

/// What a plugin call does: a client built from the kubeconfig on the node, then one request.
async fn plugin_get_pod(node: &FakeNode) -> Result<(), KubeError> {
    let client = KubeClient::from_kubeconfig(&node.kubeconfig(), &ClientOptions::default())
        .await
        .unwrap();
    client
        .get_pod("fixtures", "multi-pod", None)
        .await
        .map(drop)
}

#[tokio::test]
async fn token_rotation_reaches_the_plugin_without_rewriting_the_kubeconfig() {
    let server = FakeApiServer::start("token-2").await;
    server.route("GET", POD_PATH, Answer::File(200, "pod-get.json"));
    let mut node = FakeNode::new();
    node.sa.publish("token-1", &server.ca_pem);
    node.write_conf("10-flannel.conflist", FLANNEL);
    let mut installer = Installer::new(config_at_real_paths(&node, local_api(&server)));

    assert!(matches!(installer.reconcile(), Readiness::Ready { .. }));
    let token_copy = node.kubeconfig().with_file_name("plexus.kubeconfig.token");
    assert_eq!(std::fs::read_to_string(&token_copy).unwrap(), "token-1");
    assert_eq!(mode(&node.kubeconfig()), 0o600);
    assert_eq!(mode(&token_copy), 0o600);
    let kubeconfig = std::fs::read_to_string(node.kubeconfig()).unwrap();
    assert!(
        !kubeconfig.contains("token-1"),
        "the token is not in the kubeconfig"
    );
    assert!(
        kubeconfig.contains(&format!("tokenFile: {}", token_copy.display())),
        "{kubeconfig}"
    );
    assert_eq!(
        node.read_conflist()["plugins"][0]["kubeconfig"],
        node.kubeconfig().to_str().unwrap()
    );
    assert!(
        kubeconfig.contains(&format!("server: {}", server.url())),
        "{kubeconfig}"
    );

    // The API server only accepts the token the kubelet has not rotated in yet: 401.
    let e = plugin_get_pod(&node).await.unwrap_err();
    assert!(matches!(e, KubeError::Unauthorized { .. }), "{e:?}");

    // rotation
    node.sa.publish("token-2", &server.ca_pem);
    assert!(matches!(installer.reconcile(), Readiness::Ready { .. }));
    assert_eq!(std::fs::read_to_string(&token_copy).unwrap(), "token-2");
    assert_eq!(mode(&token_copy), 0o600);
    assert_eq!(
        std::fs::read_to_string(node.kubeconfig()).unwrap(),
        kubeconfig,
        "rotation changes only the token copy"
    );
    plugin_get_pod(&node).await.unwrap();
    let last = server.requests().pop().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer token-2"));
}

#[tokio::test]
async fn a_new_ca_rewrites_the_kubeconfig_and_a_broken_account_keeps_the_last_good_files() {
    let server = FakeApiServer::start("token-1").await;
    let mut node = FakeNode::new();
    node.write_conf("10-flannel.conflist", FLANNEL);
    let mut installer = Installer::new(config_at_real_paths(&node, local_api(&server)));
    installer.reconcile();
    let first = std::fs::read_to_string(node.kubeconfig()).unwrap();

    node.sa.publish("token-1", &server.ca_pem);
    installer.reconcile();
    let second = std::fs::read_to_string(node.kubeconfig()).unwrap();
    assert_ne!(first, second);
    assert!(second.contains("certificate-authority-data: "), "{second}");
    // the embedded CA is the service account's
    let client = KubeClient::from_kubeconfig(&node.kubeconfig(), &ClientOptions::default()).await;
    assert!(client.is_ok(), "{client:?}");

    // an empty token (a broken volume) is refused; what is on the node stays as it was
    node.sa.publish("", &server.ca_pem);
    let Readiness::NotReady(reason) = installer.reconcile() else {
        panic!("ready with an empty token");
    };
    assert!(reason.contains("token is empty"), "{reason}");
    assert_eq!(std::fs::read_to_string(node.kubeconfig()).unwrap(), second);
    assert!(node.conflist().exists());
}
