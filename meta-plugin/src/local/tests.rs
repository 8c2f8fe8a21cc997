//! Local mode against temp dirs: manifests in every accepted shape, lookups, errors, the
//! network-status file and the Event log.

use std::path::Path;

use plexus_crds::{NetworkStatus, write_network_status};

use super::*;
use crate::kube::{EventType, PodEvent};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

const YAML_MULTI: &str = r#"# two NADs and a ConfigMap, as kubectl apply -f takes them
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-a
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1"}'
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data:
  x: y
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: from-file
  namespace: team
  annotations:
    k8s.v1.cni.cncf.io/resourceName: intel.com/sriov
---
"#;

const JSON_LIST: &str = r#"{"apiVersion":"v1","kind":"List","items":[
  {"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
   "metadata":{"name":"ipvlan-b","namespace":"team"},
   "spec":{"config":"{\"cniVersion\":\"1.0.0\",\"type\":\"ipvlan\"}"}},
  {"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"}}
]}"#;

fn nad_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nads");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    tmp
}

fn api(tmp: &tempfile::TempDir) -> LocalApi {
    LocalApi::new(tmp.path().join("nads"), tmp.path().join("cni"))
}

#[tokio::test]
async fn yaml_multi_doc_json_list_and_real_body() {
    let real = std::fs::read_to_string(Path::new(DATA).join("nad-get-sriov.json")).unwrap();
    let tmp = nad_dir(&[
        ("10-macvlan.yaml", YAML_MULTI),
        ("20-list.json", JSON_LIST),
        ("30-sriov.json", &real),
        ("README.md", "not a manifest"),
        (".hidden.yaml", "{{{ not parsed"),
    ]);
    let api = api(&tmp);
    let nad = api.get_nad("default", "macvlan-a").await.unwrap();
    assert!(nad.spec.config.as_deref().unwrap().contains("macvlan"));
    let nad = api.get_nad("team", "from-file").await.unwrap();
    assert_eq!(nad.spec.config, None);
    assert_eq!(nad.resource_name(), Some("intel.com/sriov"));
    let nad = api.get_nad("team", "ipvlan-b").await.unwrap();
    assert!(nad.spec.config.as_deref().unwrap().contains("ipvlan"));
    let nad = api.get_nad("fixtures", "sriov-net-a").await.unwrap();
    assert_eq!(nad.resource_name(), Some("intel.com/sriov_netdevice"));
    // not in the namespace asked for / other kinds ignored
    let e = api.get_nad("team", "macvlan-a").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(e.to_string().contains("team/macvlan-a"), "{e}");
    assert!(
        api.get_nad("default", "unrelated")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn missing_dir_has_no_nads() {
    let tmp = tempfile::tempdir().unwrap();
    let api = LocalApi::new(tmp.path().join("absent"), tmp.path().join("cni"));
    assert!(
        api.get_nad("default", "x")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn bad_manifest_is_an_error_naming_the_file() {
    let tmp = nad_dir(&[
        ("10-ok.yaml", YAML_MULTI),
        ("20-bad.yaml", "apiVersion: v1\nkind: [unclosed\n"),
    ]);
    let e = api(&tmp).get_nad("default", "macvlan-a").await.unwrap_err();
    assert!(!e.is_not_found());
    let msg = e.to_string();
    assert!(msg.contains("20-bad.yaml"), "{msg}");
    assert!(msg.contains("document 0"), "{msg}");
    assert!(msg.contains("invalid YAML"), "{msg}");

    let tmp = nad_dir(&[("bad.json", r#"{"kind": "NetworkAttachmentDefinition""#)]);
    let msg = api(&tmp)
        .get_nad("default", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bad.json") && msg.contains("invalid JSON"),
        "{msg}"
    );

    // a NAD without a name
    let tmp = nad_dir(&[(
        "noname.yaml",
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {}\n",
    )]);
    let msg = api(&tmp)
        .get_nad("default", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("noname.yaml") && msg.contains("metadata.name"),
        "{msg}"
    );

    // the same NAD twice
    let tmp = nad_dir(&[("a.yaml", YAML_MULTI), ("b.yml", YAML_MULTI)]);
    let msg = api(&tmp)
        .get_nad("default", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("defined twice"), "{msg}");
    assert!(msg.contains("a.yaml") && msg.contains("b.yml"), "{msg}");
}

/// A bad manifest is the user's configuration: CNI code 7 with the file and the field named,
/// not an I/O error (5). A directory that cannot be read stays an I/O error.
#[tokio::test]
async fn bad_manifest_is_invalid_config_naming_the_file_and_the_field() {
    use plexus_delegates::cni::{CniError, ErrorCode};
    let cases: &[(&str, &str, &str)] = &[
        (
            "config-as-mapping.yaml",
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: m\nspec:\n  config:\n    type: macvlan\n",
            "spec.config: must be a string holding the CNI config as JSON, got an object",
        ),
        (
            "numeric-annotation.yaml",
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: m\n  annotations:\n    k8s.v1.cni.cncf.io/resourceName: 5\n",
            "metadata.annotations[\"k8s.v1.cni.cncf.io/resourceName\"]: must be a string",
        ),
        (
            "spec-list.json",
            r#"{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"m"},"spec":["x"]}"#,
            "field spec: must be an object, got a list",
        ),
        (
            "list-item.json",
            r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"m","namespace":7}}]}"#,
            "items[0]: NetworkAttachmentDefinition field metadata.namespace: must be a string, got a number",
        ),
        (
            "bad.yaml",
            "apiVersion: v1\nkind: [unclosed\n",
            "invalid YAML",
        ),
    ];
    for (file, body, field) in cases {
        let tmp = nad_dir(&[(file, body)]);
        let e = api(&tmp).get_nad("default", "m").await.unwrap_err();
        assert_eq!(e.cni_code(), ErrorCode::InvalidConfig, "{file}: {e}");
        let cni = CniError::from(e);
        assert_eq!(cni.code, 7, "{file}: {cni}");
        assert!(cni.msg.contains(file), "{file}: {cni}");
        assert!(cni.msg.contains(field), "{file}: {cni}");
    }
    // A NAD defined twice is a configuration error too.
    let tmp = nad_dir(&[("a.yaml", YAML_MULTI), ("b.yaml", YAML_MULTI)]);
    let e = api(&tmp).get_nad("default", "m").await.unwrap_err();
    assert_eq!(e.cni_code(), ErrorCode::InvalidConfig, "{e}");
    // nadDir that is not a directory: the manifests cannot be read (I/O, 5).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("nads"), "a file").unwrap();
    let e = api(&tmp).get_nad("default", "m").await.unwrap_err();
    assert_eq!(e.cni_code(), ErrorCode::Io, "{e}");
    assert!(e.to_string().contains("nads"), "{e}");
}

#[tokio::test]
async fn get_pod_says_local_mode_has_no_api_server() {
    let tmp = nad_dir(&[]);
    let api = api(&tmp);
    assert!(!api.has_pods());
    let e = api.get_pod("ns", "p", None).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("get pod ns/p"), "{msg}");
    assert!(msg.contains("no API server"), "{msg}");
    assert!(msg.contains("io.kubernetes.cri.pod-annotations"), "{msg}");
}

#[tokio::test]
async fn status_file_holds_the_annotation_bytes() {
    let tmp = nad_dir(&[]);
    let api = api(&tmp);
    let pod = PodRef {
        namespace: "ns".into(),
        name: "web-0".into(),
        uid: None,
    };
    let statuses = vec![
        NetworkStatus {
            name: "cbr0".into(),
            interface: Some("eth0".into()),
            ips: vec!["10.244.1.7".into()],
            default: true,
            ..Default::default()
        },
        NetworkStatus {
            name: "ns/mv".into(),
            interface: Some("net1".into()),
            ..Default::default()
        },
    ];
    api.patch_network_status(&pod, &statuses).await.unwrap();
    let path = tmp.path().join("cni/status/ns_web-0.json");
    assert_eq!(api.status_path(&pod), path);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        write_network_status(&statuses).unwrap()
    );
    // overwritten in place, no temp files left
    api.patch_network_status(&pod, &statuses[..1])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        write_network_status(&statuses[..1]).unwrap()
    );
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("cni/status"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["ns_web-0.json"]);
    // a pod reference that could leave the directory
    let bad = PodRef {
        namespace: "ns".into(),
        name: "../x".into(),
        uid: None,
    };
    assert!(api.patch_network_status(&bad, &statuses).await.is_err());
}

#[tokio::test]
async fn events_are_appended_one_line_each() {
    let tmp = nad_dir(&[]);
    let api = api(&tmp);
    let pod = PodRef {
        namespace: "ns".into(),
        name: "p".into(),
        uid: None,
    };
    let ok = PodEvent {
        pod: pod.clone(),
        event_type: EventType::Normal,
        reason: "AddedInterface".into(),
        message: "Add eth0 [10.0.0.2/24] from cbr0".into(),
    };
    let bad = PodEvent {
        event_type: EventType::Warning,
        reason: "FailedAddInterface".into(),
        message: "line one\nline two".into(),
        ..ok.clone()
    };
    api.post_event(&ok).await.unwrap();
    api.post_event(&bad).await.unwrap();
    let log = std::fs::read_to_string(api.events_path()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].ends_with(" Normal AddedInterface ns/p: Add eth0 [10.0.0.2/24] from cbr0"),
        "{log}"
    );
    assert!(
        lines[1].ends_with(" Warning FailedAddInterface ns/p: line one\\nline two"),
        "{log}"
    );
}

#[tokio::test]
async fn only_the_sandbox_that_wrote_the_status_file_removes_it() {
    let tmp = nad_dir(&[]);
    let api = api(&tmp);
    let pod = PodRef {
        namespace: "ns".into(),
        name: "web-0".into(),
        uid: None,
    };
    let status = |name: &str| {
        vec![NetworkStatus {
            name: name.into(),
            ..Default::default()
        }]
    };
    // The old sandbox writes it; the new one (same pod, new container id) replaces it.
    api.claim_status(&pod, "old").unwrap();
    api.patch_network_status(&pod, &status("old"))
        .await
        .unwrap();
    api.claim_status(&pod, "new").unwrap();
    api.patch_network_status(&pod, &status("new"))
        .await
        .unwrap();
    let owner = tmp.path().join("cni/status/ns_web-0.owner");
    assert_eq!(api.status_owner_path(&pod), owner);
    assert_eq!(std::fs::read_to_string(&owner).unwrap(), "new");
    // The status bytes are the annotation's, nothing else.
    assert_eq!(
        std::fs::read_to_string(api.status_path(&pod)).unwrap(),
        write_network_status(&status("new")).unwrap()
    );

    // The old sandbox's DEL comes late: it leaves the new sandbox's file alone.
    assert_eq!(
        api.remove_status(&pod, "old").unwrap(),
        StatusRemoval::OwnedBy("new".into())
    );
    assert_eq!(
        std::fs::read_to_string(api.status_path(&pod)).unwrap(),
        write_network_status(&status("new")).unwrap()
    );
    // The new sandbox's DEL removes both files; again, nothing is there.
    assert_eq!(
        api.remove_status(&pod, "new").unwrap(),
        StatusRemoval::Removed
    );
    assert!(!api.status_path(&pod).exists() && !owner.exists());
    assert_eq!(
        api.remove_status(&pod, "new").unwrap(),
        StatusRemoval::Absent
    );
    let mut left: Vec<String> = std::fs::read_dir(tmp.path().join("cni/status"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![".owners.lock"], "no temp file left");

    // A status file without an owner record (written before owners were recorded) is removed
    // by whichever sandbox of the pod DELs.
    api.patch_network_status(&pod, &status("legacy"))
        .await
        .unwrap();
    assert_eq!(
        api.remove_status(&pod, "any").unwrap(),
        StatusRemoval::Removed
    );
    assert!(!api.status_path(&pod).exists());

    // A DEL without a pod name has no status file.
    assert_eq!(
        api.remove_status(&PodRef::default(), "any").unwrap(),
        StatusRemoval::Absent
    );
    assert!(api.claim_status(&PodRef::default(), "any").is_err());
}
