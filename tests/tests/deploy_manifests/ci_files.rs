//! The kind cluster config and the GitHub workflows: they parse, and fit the e2e and the
//! Kubernetes version the manifests are typed against.

use super::docs::{load, repo_root, yaml_files};

#[test]
fn the_kind_config_has_two_nodes_on_the_workspace_kubernetes_version() {
    let docs = load("tests/e2e-kind/kind-config.yaml");
    let [config] = docs.as_slice() else {
        panic!("one document");
    };
    assert_eq!(config.value["kind"], "Cluster");
    assert_eq!(config.value["apiVersion"], "kind.x-k8s.io/v1alpha4");
    let nodes = config.value["nodes"].as_array().expect("nodes");
    let roles: Vec<&str> = nodes
        .iter()
        .map(|n| n["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["control-plane", "worker"]);
    // The node image runs the Kubernetes minor the manifests are typed against.
    let minor = format!("kindest/node:v{}.", env!("K8S_OPENAPI_ENABLED_VERSION"));
    for node in nodes {
        let image = node["image"].as_str().expect("a pinned node image");
        assert!(
            image.starts_with(&minor) && image.contains("@sha256:"),
            "{image}: want {minor}*@sha256:..."
        );
    }
}

#[test]
fn the_github_workflows_parse_and_run_the_kind_e2e_on_push() {
    let root = repo_root();
    let mut e2e_jobs = 0;
    for file in yaml_files(".github/workflows") {
        let docs = load(&file);
        let [workflow] = docs.as_slice() else {
            panic!("{file}: one document");
        };
        // YAML 1.2 (serde_yaml) reads the key `on` as a string, as GitHub does.
        let on = &workflow.value["on"];
        assert!(on.get("push").is_some(), "{file}: runs on push");
        let jobs = workflow.value["jobs"]
            .as_object()
            .unwrap_or_else(|| panic!("{file}: jobs"));
        for (name, job) in jobs {
            assert!(job["runs-on"].is_string(), "{file}: job {name} has runs-on");
            let steps = job["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: job {name} has steps"));
            for step in steps {
                assert!(
                    step.get("uses").is_some() != step.get("run").is_some(),
                    "{file}: job {name}: a step either uses or runs"
                );
                if step["run"]
                    .as_str()
                    .is_some_and(|r| r.contains("tests/e2e-kind/run.sh"))
                {
                    e2e_jobs += 1;
                }
            }
        }
    }
    assert_eq!(e2e_jobs, 1, "one workflow step runs tests/e2e-kind/run.sh");
    let script = root.join("tests/e2e-kind/run.sh");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&script).expect("run.sh").permissions(),
    );
    assert!(mode & 0o111 != 0, "run.sh is executable");
}
