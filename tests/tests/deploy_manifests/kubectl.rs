//! `kubectl apply --dry-run=client` without a cluster.
//!
//! Client-side dry run still talks to an API server: discovery (to map each kind to its resource
//! and scope) and one GET per object (to choose between create and patch). Both are answered
//! locally here:
//! - discovery from kubectl's on-disk discovery cache (`--cache-dir`), written fresh for the run
//!   from the k8s-openapi types (group, version, kind, plural and scope as the Kubernetes version
//!   in .cargo/config.toml defines them) and from our CRD for NetworkAttachmentDefinitions;
//! - every HTTP request by a stand-in server on 127.0.0.1 that answers 404 (no such object yet),
//!   so each object takes the create path, as on a fresh cluster.
//!
//! Schema validation is off (`--validate=false`): it needs the server's OpenAPI document. Field
//! names are checked by the strict typed round trip instead ([`super::strict`]). What kubectl adds
//! is an independent reading of the files: its own YAML parser (YAML 1.1 rules, unlike serde_yaml's
//! 1.2), multi-document splitting, kind mapping, and the objects it would send, which the test
//! compares with ours.

use std::any::TypeId;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::{NamespaceResourceScope, Resource};
use serde_json::{Value, json};

/// One API resource as discovery lists it.
#[derive(Debug, Clone)]
pub struct ApiResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ApiResource {
    pub fn of<T: Resource>() -> Self
    where
        T::Scope: 'static,
    {
        ApiResource {
            group: T::GROUP.to_owned(),
            version: T::VERSION.to_owned(),
            kind: T::KIND.to_owned(),
            plural: T::URL_PATH_SEGMENT.to_owned(),
            namespaced: TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>(),
        }
    }

    /// The served version of a CustomResourceDefinition manifest.
    pub fn of_crd(crd: &CustomResourceDefinition) -> Self {
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.served)
            .expect("the CRD serves a version");
        ApiResource {
            group: crd.spec.group.clone(),
            version: version.name.clone(),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
            namespaced: crd.spec.scope == "Namespaced",
        }
    }

    fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The built-in kinds the manifests use.
pub fn builtin_resources() -> Vec<ApiResource> {
    vec![
        ApiResource::of::<CustomResourceDefinition>(),
        ApiResource::of::<Namespace>(),
        ApiResource::of::<ServiceAccount>(),
        ApiResource::of::<ConfigMap>(),
        ApiResource::of::<Pod>(),
        ApiResource::of::<ClusterRole>(),
        ApiResource::of::<ClusterRoleBinding>(),
        ApiResource::of::<DaemonSet>(),
    ]
}

/// Writes kubectl's discovery cache for `host` (`127.0.0.1:<port>`) under `cache_dir`, as
/// client-go's disk cache lays it out: `discovery/<host with ':' as '_'>/servergroups.json` and
/// `<groupVersion>/serverresources.json`.
pub fn write_discovery_cache(cache_dir: &Path, host: &str, resources: &[ApiResource]) {
    let root = cache_dir.join("discovery").join(host.replace(':', "_"));
    let mut group_versions: Vec<(String, String)> = resources
        .iter()
        .map(|r| (r.group.clone(), r.version.clone()))
        .collect();
    group_versions.sort();
    group_versions.dedup();
    let groups: Vec<Value> = group_versions
        .iter()
        .map(|(group, version)| {
            let gv = json!({
                "groupVersion": if group.is_empty() { version.clone() } else { format!("{group}/{version}") },
                "version": version,
            });
            json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    write_json(
        &root.join("servergroups.json"),
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    );
    for (group, version) in &group_versions {
        let listed: Vec<&ApiResource> = resources
            .iter()
            .filter(|r| &r.group == group && &r.version == version)
            .collect();
        let gv = listed[0].group_version();
        let entries: Vec<Value> = listed
            .iter()
            .map(|r| {
                json!({
                    "name": r.plural,
                    "singularName": r.kind.to_lowercase(),
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                })
            })
            .collect();
        write_json(
            &root.join(&gv).join("serverresources.json"),
            &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}),
        );
    }
}

fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("a parent dir")).expect("mkdir");
    std::fs::write(path, serde_json::to_vec_pretty(value).expect("json")).expect("write");
}

/// An HTTP server on 127.0.0.1 that answers every request with a 404 `Status` and records
/// `<METHOD> <path>` of each.
pub struct NotFoundServer {
    pub host: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NotFoundServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let host = listener.local_addr().expect("local addr").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        answer_not_found(stream, &requests);
                    }
                }
            })
        };
        NotFoundServer {
            host,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NotFoundServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(&self.host);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer_not_found(stream: TcpStream, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    // Skip the headers (kubectl's GETs have no body).
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("").to_owned();
    requests
        .lock()
        .expect("requests lock")
        .push(format!("{method} {path}"));
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{path} not found (stand-in API server: nothing exists)"),
        "reason": "NotFound", "code": 404,
    })
    .to_string();
    let mut out = &stream;
    let _ = write!(
        out,
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A kubeconfig for the stand-in server: plain HTTP, no credentials, [`CONTEXT_NAMESPACE`].
pub fn write_kubeconfig(path: &Path, host: &str) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": format!("http://{host}")}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "nobody", "namespace": CONTEXT_NAMESPACE}}],
        "current-context": "stand-in",
    });
    write_json(path, &config);
}

/// The `kubectl` on PATH, if any.
pub fn find_kubectl() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    })
}

/// What `kubectl apply --dry-run=client` did.
pub struct DryRun {
    pub success: bool,
    pub stderr: String,
    /// The objects kubectl would have created, as it printed them (`-o json`).
    pub objects: Vec<Value>,
    /// The requests it made.
    pub requests: Vec<String>,
}

/// Runs `kubectl apply --dry-run=client --validate=false -o json` with `args` (the `-f` paths,
/// relative to `cwd`) against the stand-in server.
pub fn apply_dry_run(
    kubectl: &Path,
    cwd: &Path,
    resources: &[ApiResource],
    args: &[&str],
) -> DryRun {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = NotFoundServer::start();
    let cache = tmp.path().join("cache");
    write_discovery_cache(&cache, &server.host, resources);
    let kubeconfig = tmp.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, &server.host);
    let output = Command::new(kubectl)
        .current_dir(cwd)
        .env("HOME", tmp.path())
        .env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args([
            "--request-timeout=20s",
            "apply",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "json",
        ])
        .args(args)
        .output()
        .expect("running kubectl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let objects = match serde_json::from_str::<Value>(&stdout) {
        Ok(Value::Object(o)) if o.get("kind").and_then(Value::as_str) == Some("List") => o
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Ok(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    let requests = server.requests.lock().expect("requests lock").clone();
    DryRun {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        objects,
        requests,
    }
}

/// The namespace of the stand-in kubeconfig's context.
pub const CONTEXT_NAMESPACE: &str = "default";

/// The object kubectl printed, less what a dry run adds to the manifest as `written`: the
/// last-applied annotation, and the context's namespace on a namespaced object written without one.
pub fn as_written(mut object: Value, written: &Value) -> Value {
    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let now_empty = meta
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
            .map(|a| {
                a.remove(LAST_APPLIED);
                a.is_empty()
            })
            .unwrap_or(false);
        if now_empty && written["metadata"].get("annotations").is_none() {
            meta.remove("annotations");
        }
        if written["metadata"].get("namespace").is_none()
            && meta.get("namespace").and_then(Value::as_str) == Some(CONTEXT_NAMESPACE)
        {
            meta.remove("namespace");
        }
    }
    object
}
