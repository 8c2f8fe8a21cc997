//! `plexus install` auto-configuration against a fake node's CNI config dir: `00-plexus.conflist`
//! from bridge-, flannel- and Calico-shaped default networks, and how it follows the default
//! network's changes, replacement and removal. One reconcile pass at a time, so every step is
//! deterministic.

#![allow(clippy::unwrap_used)]

mod install_support;

use std::path::{Path, PathBuf};

use install_support::*;
use plexus::config::network::resolve_cluster_network;
use plexus::config::{ClusterNetwork, ClusterNetworkSpec, NetworkRef, PlexusConfig, SearchDirs};
use plexus::install::{Installer, Readiness};
use plexus::kube::KubeClient;
use serde_json::{Value, json};

/// The plugin object as the runtime hands it to `plexus` (conflist `name` and `cniVersion`
/// injected), parsed by the plugin's own config parser.
fn as_plugin_sees_it(conflist: &Value) -> PlexusConfig {
    let mut plugin = conflist["plugins"][0].as_object().unwrap().clone();
    plugin.insert("name".into(), conflist["name"].clone());
    plugin.insert("cniVersion".into(), conflist["cniVersion"].clone());
    PlexusConfig::parse(&serde_json::to_vec(&plugin).unwrap()).unwrap()
}

/// Resolves the plugin's `clusterNetwork` with the plugin's resolver, the node path mapped to
/// the fake node.
async fn resolve_on(node: &FakeNode, config: &PlexusConfig) -> ClusterNetwork {
    let ClusterNetworkSpec::Ref(NetworkRef::Path(p)) = &config.cluster_network else {
        panic!("clusterNetwork is not a path: {:?}", config.cluster_network);
    };
    let local = node.root.join(p.strip_prefix("/").unwrap());
    let spec = ClusterNetworkSpec::Ref(NetworkRef::Path(local));
    let dirs = SearchDirs {
        conf_dir: node.tmp.path().join("none"),
        net_dir: node.conf_dir(),
    };
    resolve_cluster_network(&spec, "kube-system", &dirs, "plexus", None::<&KubeClient>)
        .await
        .unwrap()
}

fn ready_on(path: &str) -> Readiness {
    Readiness::Ready {
        default_network: PathBuf::from(path),
    }
}

#[tokio::test]
async fn flannel_default_network_gives_a_conflist_delegating_eth0_to_it() {
    let node = FakeNode::new();
    let mut installer = Installer::new(node.config(api()));
    node.write_conf("10-flannel.conflist", FLANNEL);

    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/10-flannel.conflist")
    );
    let conflist = node.read_conflist();
    assert_eq!(
        conflist,
        json!({
            "cniVersion": "0.3.1",
            "name": "plexus-cni-network",
            "plugins": [{
                "type": "plexus",
                "capabilities": {"portMappings": true},
                "clusterNetwork": "/etc/cni/net.d/10-flannel.conflist",
                "kubeconfig": KUBECONFIG,
                "binDir": "/opt/cni/bin",
                "cniDir": "/var/lib/cni/multus",
            }]
        })
    );
    assert_eq!(mode(&node.conflist()), 0o644);

    let config = as_plugin_sees_it(&conflist);
    assert_eq!(config.kubeconfig, Some(PathBuf::from(KUBECONFIG)));
    assert_eq!(config.capabilities.get("portMappings"), Some(&true));
    let net = resolve_on(&node, &config).await;
    assert_eq!(net.config().name(), Some("cbr0"));
    assert!(net.config().is_list());
}

#[tokio::test]
async fn bridge_default_network_keeps_its_cni_version() {
    let node = FakeNode::new();
    let mut installer = Installer::new(node.config(api()));
    node.write_conf("10-containerd-net.conflist", BRIDGE);
    // files the runtime ignores, and our own leftovers, are not candidates
    node.write_conf("05-notes.txt", "{}");
    std::fs::write(node.conf_dir().join(".00-plexus.conflist.1-0.tmp"), "{").unwrap();

    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/10-containerd-net.conflist")
    );
    let conflist = node.read_conflist();
    assert_eq!(conflist["cniVersion"], "1.0.0");
    assert_eq!(
        conflist["plugins"][0]["clusterNetwork"],
        "/etc/cni/net.d/10-containerd-net.conflist"
    );
    let net = resolve_on(&node, &as_plugin_sees_it(&conflist)).await;
    assert_eq!(net.config().name(), Some("containerd-net"));
}

#[tokio::test]
async fn calico_capabilities_are_united_and_its_kubeconfig_is_not_a_config() {
    let node = FakeNode::new();
    let mut config = node.config(api());
    config.plugin.log_level = Some("debug".into());
    config.plugin.log_file = Some("/var/log/plexus.log".into());
    config.plugin.namespace_isolation = Some(true);
    config.plugin.overlap_cluster_network = Some(false);
    config.plugin.global_namespaces = Some("default,shared".into());
    config.plugin.readiness_indicator_file = Some("/etc/cni/net.d/10-calico.conflist".into());
    let mut installer = Installer::new(config);
    node.write_conf("calico-kubeconfig", "apiVersion: v1\nkind: Config\n");
    node.write_conf("10-calico.conflist", &calico(1440));

    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/10-calico.conflist")
    );
    let conflist = node.read_conflist();
    let plugin = &conflist["plugins"][0];
    assert_eq!(
        plugin["capabilities"],
        json!({"bandwidth": true, "portMappings": true})
    );
    assert_eq!(plugin["logLevel"], "debug");
    assert_eq!(plugin["logFile"], "/var/log/plexus.log");
    assert_eq!(plugin["namespaceIsolation"], true);
    assert_eq!(plugin["overlapClusterNetwork"], false);
    assert_eq!(plugin["globalNamespaces"], "default,shared");
    assert_eq!(
        plugin["readinessindicatorfile"],
        "/etc/cni/net.d/10-calico.conflist"
    );
    let config = as_plugin_sees_it(&conflist);
    assert!(config.policy.namespace_isolation);
    assert!(!config.overlap_cluster_network);
    assert_eq!(config.policy.global_namespaces, vec!["default", "shared"]);
    let net = resolve_on(&node, &config).await;
    assert_eq!(net.config().name(), Some("k8s-pod-network"));
}

#[tokio::test]
async fn a_rewritten_default_config_reaches_the_plugin_and_the_conflist_follows_its_version() {
    let node = FakeNode::new();
    let mut installer = Installer::new(node.config(api()));
    node.write_conf("10-calico.conflist", &calico(1440));
    installer.reconcile();
    let before = std::fs::read(node.conflist()).unwrap();

    // Calico rewrites its config (MTU): nothing of ours changes, and the plugin reads the new
    // content through the path at once.
    node.write_conf("10-calico.conflist", &calico(8951));
    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/10-calico.conflist")
    );
    assert_eq!(std::fs::read(node.conflist()).unwrap(), before);
    let net = resolve_on(&node, &as_plugin_sees_it(&node.read_conflist())).await;
    assert_eq!(net.config().as_map()["plugins"][0]["mtu"], 8951);

    // a new cniVersion and capability set: the conflist is rewritten
    node.write_conf(
        "10-calico.conflist",
        &calico(8951)
            .replace("\"0.3.1\"", "\"1.0.0\"")
            .replace("\"bandwidth\": true", "\"bandwidth\": false"),
    );
    installer.reconcile();
    let conflist = node.read_conflist();
    assert_eq!(conflist["cniVersion"], "1.0.0");
    assert_eq!(
        conflist["plugins"][0]["capabilities"],
        json!({"portMappings": true})
    );
}

#[tokio::test]
async fn another_file_becoming_first_takes_over_and_leaving_hands_back() {
    let node = FakeNode::new();
    let mut installer = Installer::new(node.config(api()));
    node.write_conf("10-flannel.conflist", FLANNEL);
    installer.reconcile();

    node.write_conf("05-calico.conflist", &calico(1440));
    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/05-calico.conflist")
    );
    assert_eq!(
        node.read_conflist()["plugins"][0]["clusterNetwork"],
        "/etc/cni/net.d/05-calico.conflist"
    );

    // a half-written file first in order is passed over, as the runtimes do
    std::fs::write(node.conf_dir().join("01-half.conflist"), "{\"cniVers").unwrap();
    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/05-calico.conflist")
    );

    node.remove_conf("05-calico.conflist");
    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/10-flannel.conflist")
    );
    assert_eq!(node.read_conflist()["cniVersion"], "0.3.1");
}

#[tokio::test]
async fn a_removed_default_network_removes_the_conflist_until_it_returns() {
    let node = FakeNode::new();
    let mut installer = Installer::new(node.config(api()));

    // nothing to delegate to yet: nothing is written
    let Readiness::NotReady(reason) = installer.reconcile() else {
        panic!("ready without a default network");
    };
    assert!(
        reason.contains("no default network config in /etc/cni/net.d"),
        "{reason}"
    );
    assert!(!node.conflist().exists());

    node.write_conf("10-flannel.conflist", FLANNEL);
    assert!(matches!(installer.reconcile(), Readiness::Ready { .. }));
    assert!(node.conflist().exists());

    node.remove_conf("10-flannel.conflist");
    assert!(matches!(installer.reconcile(), Readiness::NotReady(_)));
    assert!(
        !node.conflist().exists(),
        "a conflist delegating to a missing file was left"
    );
    // the credentials stay: running pods' DEL needs no API server, and they are current
    assert!(node.kubeconfig().exists());

    node.write_conf("10-flannel.conflist", FLANNEL);
    assert_eq!(
        installer.reconcile(),
        ready_on("/etc/cni/net.d/10-flannel.conflist")
    );
    assert!(node.conflist().exists());
}

#[tokio::test]
async fn a_deleted_or_edited_conflist_is_repaired_and_exit_removes_only_ours() {
    let node = FakeNode::new();
    let mut installer = Installer::new(node.config(api()));
    node.write_conf("10-flannel.conflist", FLANNEL);
    installer.reconcile();
    let ours = std::fs::read(node.conflist()).unwrap();

    std::fs::remove_file(node.conflist()).unwrap();
    installer.reconcile();
    assert_eq!(std::fs::read(node.conflist()).unwrap(), ours);

    std::fs::write(node.conflist(), b"{}").unwrap();
    installer.reconcile();
    assert_eq!(std::fs::read(node.conflist()).unwrap(), ours);

    // exit: someone else's file is left alone, ours is removed
    std::fs::write(node.conflist(), b"{\"edited\":true}").unwrap();
    assert!(!installer.remove_config().unwrap());
    assert!(node.conflist().exists());
    installer.reconcile();
    assert!(installer.remove_config().unwrap());
    assert!(!node.conflist().exists());
}

#[tokio::test]
async fn a_default_network_without_cni_version_needs_the_flag() {
    let node = FakeNode::new();
    node.write_conf(
        "10-legacy.conf",
        r#"{"name":"legacy","type":"bridge","bridge":"cni0"}"#,
    );
    let mut installer = Installer::new(node.config(api()));
    let Readiness::NotReady(reason) = installer.reconcile() else {
        panic!("ready with a versionless default network");
    };
    assert!(
        reason.contains("/etc/cni/net.d/10-legacy.conf") && reason.contains("--cni-version"),
        "{reason}"
    );
    assert!(!node.conflist().exists());

    let mut config = node.config(api());
    config.plugin.cni_version = Some("0.4.0".into());
    let mut installer = Installer::new(config);
    assert!(matches!(installer.reconcile(), Readiness::Ready { .. }));
    assert_eq!(node.read_conflist()["cniVersion"], "0.4.0");
}

#[tokio::test]
async fn host_root_slash_writes_where_it_refers() {
    // Run directly on a node (`--host-root /`): the paths in the config are the files written.
    let tmp = tempfile::tempdir().unwrap();
    let node = FakeNode::new();
    let conf_dir = tmp.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("10-flannel.conflist"), FLANNEL).unwrap();
    let mut config = node.config(api());
    config.host_root = plexus::install::paths::HostRoot::new("/");
    config.cni_conf_dir = conf_dir.clone();
    config.kubeconfig = tmp.path().join("k/plexus.kubeconfig");
    let mut installer = Installer::new(config);
    assert!(matches!(installer.reconcile(), Readiness::Ready { .. }));
    let conflist: Value =
        serde_json::from_slice(&std::fs::read(conf_dir.join("00-plexus.conflist")).unwrap())
            .unwrap();
    let cluster = conflist["plugins"][0]["clusterNetwork"].as_str().unwrap();
    assert!(Path::new(cluster).is_file(), "{cluster}");
    let kubeconfig = conflist["plugins"][0]["kubeconfig"].as_str().unwrap();
    assert!(Path::new(kubeconfig).is_file(), "{kubeconfig}");
}
