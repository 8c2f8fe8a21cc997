//! The deployment manifests (`deploy/`, applied with `kubectl apply -f deploy/`), the example
//! NADs and pods (`examples/{nad,pod}-*.yaml`) and the kind e2e's manifests (`tests/e2e-kind/`):
//! - every document parses strictly into its k8s-openapi type (a misspelled field fails);
//! - the CRD is the generated one, RBAC is exactly what the plugin's requests need, the DaemonSets
//!   run the release image with their ServiceAccounts, volumes and ConfigMap wired consistently;
//! - the device plugin's ConfigMap parses with the device plugin's own config parser, and the
//!   example NADs with the delegates' parsers;
//! - `kubectl apply --dry-run=client` accepts them and reads the same objects we do;
//! - the kind cluster config and the GitHub workflow parse and fit together.

#![allow(clippy::expect_used, clippy::panic)]

#[path = "deploy_manifests/attach.rs"]
mod attach;
#[path = "deploy_manifests/docs.rs"]
mod docs;
#[path = "deploy_manifests/kubectl.rs"]
mod kubectl;
#[path = "deploy_manifests/strict.rs"]
mod strict;

#[path = "deploy_manifests/ci_files.rs"]
mod ci_files;
#[path = "deploy_manifests/daemonsets.rs"]
mod daemonsets;
#[path = "deploy_manifests/examples.rs"]
mod examples;

use docs::{Doc, load, load_all, repo_root, yaml_files};
use serde_json::{Value, json};
use strict::{Object, parse_strict};

/// The generated CRD and its copy in deploy/.
const CRD_SOURCE: &str = "crds/manifests/network-attachment-definition.yaml";
const CRD_DEPLOY: &str = "deploy/00-crd-network-attachment-definition.yaml";

/// The example manifests (NADs and pods) the README shows: `examples/nad-*.yaml` and
/// `examples/pod-*.yaml` (examples/ holds other files too).
fn example_files() -> Vec<String> {
    yaml_files("examples")
        .into_iter()
        .filter(|f| f.starts_with("examples/nad-") || f.starts_with("examples/pod-"))
        .collect()
}

/// The Kubernetes manifests of the kind e2e (not the kind cluster config).
fn e2e_files() -> Vec<String> {
    yaml_files("tests/e2e-kind")
        .into_iter()
        .filter(|f| !f.ends_with("kind-config.yaml"))
        .collect()
}

fn deploy_docs() -> Vec<Doc> {
    load_all(&yaml_files("deploy"))
}

fn all_manifest_files() -> Vec<String> {
    let mut files = yaml_files("deploy");
    files.extend(example_files());
    files.extend(e2e_files());
    files
}

#[test]
fn deploy_crd_is_the_generated_crd() {
    let root = repo_root();
    let source = std::fs::read(root.join(CRD_SOURCE)).expect("generated CRD");
    let copy = std::fs::read(root.join(CRD_DEPLOY)).expect("deploy CRD");
    assert!(
        source == copy,
        "{CRD_DEPLOY} differs from {CRD_SOURCE}: copy it again (cp {CRD_SOURCE} {CRD_DEPLOY})"
    );
}

#[test]
fn every_manifest_parses_strictly_into_its_kubernetes_type() {
    let files = all_manifest_files();
    let mut failures = Vec::new();
    let mut parsed = 0;
    for doc in load_all(&files) {
        match parse_strict(&doc.value) {
            Ok(_) => parsed += 1,
            Err(e) => failures.push(format!("{doc}:\n{e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(parsed > 0, "no manifest found in {files:?}");
}

/// Replaces the key `from` by `to` at the first object (depth first) that has it.
fn rename_key(value: &mut Value, from: &str, to: &str) -> bool {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.remove(from) {
                map.insert(to.to_owned(), v);
                return true;
            }
            map.values_mut().any(|v| rename_key(v, from, to))
        }
        Value::Array(items) => items.iter_mut().any(|v| rename_key(v, from, to)),
        _ => false,
    }
}

#[test]
fn a_misspelled_field_fails_the_strict_parse() {
    // (kind, field, misspelling, the path the error must name)
    let cases = [
        ("Namespace", "name", "nmae", "metadata.nmae"),
        ("ClusterRole", "verbs", "verb", "rules[0].verb"),
        ("ClusterRoleBinding", "roleRef", "roleref", "roleref"),
        ("ConfigMap", "data", "datas", "datas"),
        (
            "CustomResourceDefinition",
            "shortNames",
            "shortnames",
            "spec.names.shortnames",
        ),
    ];
    let docs = deploy_docs();
    for (kind, from, to, path) in cases {
        let doc = docs
            .iter()
            .find(|d| d.kind() == kind)
            .unwrap_or_else(|| panic!("deploy/ has no {kind}"));
        parse_strict(&doc.value).unwrap_or_else(|e| panic!("{doc} must parse as is: {e}"));
        let mut bad = doc.value.clone();
        assert!(rename_key(&mut bad, from, to), "{doc} has no {from:?}");
        let err = parse_strict(&bad)
            .err()
            .unwrap_or_else(|| panic!("{doc} with {from:?} misspelled {to:?} parsed"));
        assert!(
            err.contains(&format!("{path}: unknown field")),
            "{doc}: the error must name {path}, got:\n{err}"
        );
    }
    // A typo deep in a pod template: the DaemonSets' container fields.
    let daemonsets: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "DaemonSet").collect();
    assert_eq!(daemonsets.len(), 2, "deploy/ has two DaemonSets");
    for doc in daemonsets {
        let mut bad = doc.value.clone();
        let container = &mut bad["spec"]["template"]["spec"]["containers"][0];
        let image = container["image"].take();
        container
            .as_object_mut()
            .expect("a container object")
            .remove("image");
        container["imgae"] = image;
        let err = parse_strict(&bad).expect_err("a misspelled container field must fail");
        assert!(
            err.contains("spec.template.spec.containers[0].imgae: unknown field"),
            "{doc}: {err}"
        );
    }
    // A value of the wrong type is refused by the deserializer itself.
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": 7}});
    assert!(
        parse_strict(&ns)
            .expect_err("a number as name")
            .contains("does not parse")
    );
    // A kind these manifests may not use.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    assert!(parse_strict(&secret).is_err());
}

#[test]
fn rbac_grants_exactly_the_plugins_requests() {
    let docs = deploy_docs();
    let roles: Vec<_> = docs
        .iter()
        .filter(|d| matches!(d.kind(), "ClusterRole" | "Role"))
        .collect();
    assert_eq!(roles.len(), 1, "one ClusterRole and no Role, got {roles:?}");
    let Ok(Object::ClusterRole(role)) = parse_strict(&roles[0].value) else {
        panic!("{} is not a ClusterRole", roles[0]);
    };
    assert!(role.aggregation_rule.is_none(), "no aggregated rules");
    let mut granted = Vec::new();
    for (i, rule) in role.rules.iter().flatten().enumerate() {
        assert!(
            rule.non_resource_urls.is_none() && rule.resource_names.is_none(),
            "rules[{i}]: only resource rules, for any name: {rule:?}"
        );
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for field in groups.iter().chain(&resources).chain(&rule.verbs) {
            assert!(!field.contains('*'), "rules[{i}]: wildcard {field:?}");
        }
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    granted.push(format!("{v} {r}.{g}"));
                }
            }
        }
    }
    granted.sort();
    // meta-plugin/src/kube/client.rs: get_pod, patch_status (merge patch), get of a NAD,
    // create of a core/v1 Event; list/watch of NADs as issue #5 and Multus's ClusterRole grant.
    let mut needed = vec![
        "get pods.",
        "patch pods/status.",
        "get network-attachment-definitions.k8s.cni.cncf.io",
        "list network-attachment-definitions.k8s.cni.cncf.io",
        "watch network-attachment-definitions.k8s.cni.cncf.io",
        "create events.",
    ];
    needed.sort();
    assert_eq!(granted, needed);

    let Some(Object::ClusterRoleBinding(binding)) = docs
        .iter()
        .find(|d| d.kind() == "ClusterRoleBinding")
        .map(|d| parse_strict(&d.value).expect("binding parses"))
    else {
        panic!("no ClusterRoleBinding in deploy/");
    };
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects = binding.subjects.clone().unwrap_or_default();
    assert_eq!(subjects.len(), 1, "bound to exactly one subject");
    assert_eq!(subjects[0].kind, "ServiceAccount");
    let node_ds = daemonset(&docs, "plexus");
    let pod = node_ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    assert_eq!(
        pod.and_then(|p| p.service_account_name.as_deref()),
        Some(subjects[0].name.as_str()),
        "the node DaemonSet runs as the bound ServiceAccount"
    );
    assert_eq!(
        subjects[0].namespace.as_deref(),
        node_ds.metadata.namespace.as_deref()
    );
}

/// The DaemonSet named `name` in deploy/.
fn daemonset(docs: &[Doc], name: &str) -> k8s_openapi::api::apps::v1::DaemonSet {
    docs.iter()
        .filter(|d| d.kind() == "DaemonSet" && d.name() == name)
        .find_map(|d| match parse_strict(&d.value) {
            Ok(Object::DaemonSet(ds)) => Some(*ds),
            _ => None,
        })
        .unwrap_or_else(|| panic!("deploy/ has no DaemonSet {name:?}"))
}

#[test]
fn kubectl_apply_dry_run_client_accepts_every_manifest() {
    let Some(kubectl) = kubectl::find_kubectl() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is not on PATH, and CI requires this test to run (.ci/run installs it)"
        );
        eprintln!("skipping: kubectl is not on PATH");
        return;
    };
    let root = repo_root();
    let mut resources = kubectl::builtin_resources();
    let crd = load(CRD_DEPLOY).remove(0);
    let Ok(Object::Crd(crd)) = parse_strict(&crd.value) else {
        panic!("{CRD_DEPLOY} is not a CRD");
    };
    resources.push(kubectl::ApiResource::of_crd(&crd));

    // deploy/ exactly as users apply it, then the examples and the e2e manifests by file.
    let mut runs: Vec<(Vec<String>, Vec<Doc>)> = vec![(vec!["deploy/".to_owned()], deploy_docs())];
    for file in example_files().into_iter().chain(e2e_files()) {
        let docs = load(&file);
        runs.push((vec![file], docs));
    }
    for (paths, docs) in runs {
        let mut args = Vec::new();
        for p in &paths {
            args.push("-f");
            args.push(p.as_str());
        }
        let run = kubectl::apply_dry_run(&kubectl, &root, &resources, &args);
        assert!(
            run.success,
            "kubectl apply --dry-run=client {paths:?} failed:\n{}",
            run.stderr
        );
        assert!(
            run.requests.iter().all(|r| r.starts_with("GET ")),
            "a dry run only reads: {:?}",
            run.requests
        );
        assert_eq!(
            run.objects.len(),
            docs.len(),
            "kubectl read {} objects from {paths:?}, we read {}",
            run.objects.len(),
            docs.len()
        );
        for (object, doc) in run.objects.into_iter().zip(&docs) {
            let object = kubectl::as_written(object, &doc.value);
            let mut diffs = Vec::new();
            strict::diff("", &doc.value, &object, &mut diffs);
            assert!(
                diffs.is_empty() && object == doc.value,
                "{doc}: kubectl reads it differently:\n{}",
                diffs.join("\n")
            );
        }
    }
}

/// The image every DaemonSet runs: the repository the README names, tagged with the workspace
/// version, so a release bumps the version and the manifests together.
fn release_image() -> String {
    format!("ghcr.io/plexus-cni/plexus:{}", env!("CARGO_PKG_VERSION"))
}

/// `<kind> [<namespace>/]<name>` of every document.
fn object_ids(docs: &[Doc]) -> Vec<String> {
    let mut ids: Vec<String> = docs
        .iter()
        .map(|d| match d.namespace() {
            Some(ns) => format!("{} {ns}/{}", d.kind(), d.name()),
            None => format!("{} {}", d.kind(), d.name()),
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn deploy_holds_exactly_the_plexus_objects_in_one_namespace() {
    let docs = deploy_docs();
    let mut expected = vec![
        "CustomResourceDefinition network-attachment-definitions.k8s.cni.cncf.io",
        "Namespace plexus-system",
        "ServiceAccount plexus-system/plexus",
        "ServiceAccount plexus-system/plexus-device-plugin",
        "ClusterRole plexus",
        "ClusterRoleBinding plexus",
        "ConfigMap plexus-system/plexus-device-plugin-config",
        "DaemonSet plexus-system/plexus",
        "DaemonSet plexus-system/plexus-device-plugin",
    ];
    expected.sort();
    assert_eq!(object_ids(&docs), expected);
    // kubectl applies a directory in file-name order: the CRD and the Namespace come first.
    let order: Vec<&str> = docs.iter().map(Doc::kind).collect();
    assert_eq!(&order[..2], ["CustomResourceDefinition", "Namespace"]);
}
