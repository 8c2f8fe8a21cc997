//! The device plugin's ConfigMap and the example NADs and pods, read by the parsers that will
//! read them in a cluster: the device plugin's config parser, the annotation parser, and each
//! built-in delegate's and IPAM's config parser.

use plexus_delegates::sriov::selectors::DpConfig;
use serde_json::{Value, json};

use super::docs::{Doc, load_all};
use super::{attach, deploy_docs, e2e_files, example_files, kubectl, strict};

/// The device plugin's pools (`<prefix>/<name>`) from deploy/'s ConfigMap, parsed by the device
/// plugin's own config parser.
fn device_plugin_pools() -> Vec<String> {
    let docs = deploy_docs();
    let cm = docs
        .iter()
        .find(|d| d.kind() == "ConfigMap")
        .expect("the ConfigMap");
    let json = cm.value["data"]["config.json"]
        .as_str()
        .expect("data config.json");
    let config = DpConfig::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{cm}: {e}"));
    config.resources.iter().map(|r| r.full_name()).collect()
}

#[test]
fn the_device_plugin_config_parses_with_the_device_plugins_parser() {
    let pools = device_plugin_pools();
    assert!(
        !pools.is_empty(),
        "the device plugin refuses a config without resources"
    );
    // A broken selector in the same ConfigMap is refused, naming the resource and the value.
    let docs = deploy_docs();
    let cm = docs
        .iter()
        .find(|d| d.kind() == "ConfigMap")
        .expect("the ConfigMap");
    let broken = cm.value["data"]["config.json"]
        .as_str()
        .expect("config.json")
        .replacen("\"8086\"", "\"intel\"", 1);
    let err = DpConfig::parse(broken.as_bytes()).expect_err("a vendor that is not hex");
    assert!(err.to_string().contains("intel"), "{err}");
}

#[test]
fn example_pods_select_example_nads_the_delegates_accept() {
    let mut docs = load_all(&example_files());
    docs.extend(load_all(&e2e_files()));
    let pools = device_plugin_pools();
    let nads: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == strict::NAD_KIND)
        .collect();
    let pods: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "Pod").collect();
    assert!(!nads.is_empty() && !pods.is_empty());
    let namespace = |d: &Doc| {
        d.namespace()
            .unwrap_or(kubectl::CONTEXT_NAMESPACE)
            .to_owned()
    };
    let mut used = Vec::new();
    for pod in &pods {
        let annotation = pod.value["metadata"]["annotations"][plexus_crds::NETWORKS_ANNOTATION]
            .as_str()
            .unwrap_or_else(|| panic!("{pod} selects no network"));
        let selections = plexus_crds::parse_networks_annotation(annotation)
            .unwrap_or_else(|e| panic!("{pod}: {e}"));
        for selection in selections {
            let ns = selection
                .namespace
                .clone()
                .unwrap_or_else(|| namespace(pod));
            let nad = nads
                .iter()
                .find(|n| n.name() == selection.name && namespace(n) == ns)
                .unwrap_or_else(|| {
                    panic!(
                        "{pod} selects {ns}/{}, which is not among the examples",
                        selection.name
                    )
                });
            used.push(format!("{ns}/{}", nad.name()));
            let config = nad.value["spec"]["config"]
                .as_str()
                .unwrap_or_else(|| panic!("{nad}: no spec.config"));
            let parsed: Value =
                serde_json::from_str(config).unwrap_or_else(|e| panic!("{nad}: {e}"));
            assert_eq!(
                parsed["name"],
                json!(nad.name()),
                "{nad}: the CNI name is the NAD's name"
            );
            let delegate = attach::delegate_config(config, &selection)
                .unwrap_or_else(|e| panic!("{pod} → {nad}: {e}"));
            attach::parse_as_delegate(&delegate).unwrap_or_else(|e| panic!("{pod} → {nad}: {e}"));
            // An SR-IOV NAD names a device-plugin pool, and the pod must request a device of it.
            if let Some(resource) =
                nad.value["metadata"]["annotations"][plexus_crds::RESOURCE_NAME_ANNOTATION].as_str()
            {
                assert!(
                    pools.contains(&resource.to_owned()),
                    "{nad}: {resource} is not a pool of deploy/'s device plugin config {pools:?}"
                );
                let requested = pod.value["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["resources"]["limits"][resource].as_str() == Some("1"));
                assert!(
                    requested,
                    "{pod} uses {nad} but does not request {resource}"
                );
            }
        }
    }
    for nad in nads {
        let id = format!("{}/{}", namespace(nad), nad.name());
        assert!(
            used.contains(&id),
            "no example pod uses {id}: its config was not checked"
        );
    }
}
