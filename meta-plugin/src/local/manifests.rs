//! Reading NetworkAttachmentDefinition manifests the way `kubectl apply -f <dir>` takes them:
//! `*.yaml`/`*.yml` (one or more documents separated by `---`) and `*.json` (one object or a
//! stream of them), each document a NAD, a `kind: List` (or `<Kind>List`) with `items`, or any
//! other kind, which is ignored. Hidden files (`.x.yaml`, the `..data` of a ConfigMap mount) are
//! skipped; symlinks are followed. A file that does not parse, or a NAD that does not decode, is
//! an error naming the file and the document: nothing is skipped silently.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use plexus_crds::{NetworkAttachmentDefinition, json_kind};
use serde::Deserialize;
use serde_json::Value;

/// The namespace of a manifest without `metadata.namespace` (as `kubectl apply` without `-n`).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why the NAD manifests cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading NAD manifest directory {dir}: {source}")]
    ReadDir { dir: PathBuf, source: io::Error },
    #[error("reading NAD manifest {file}: {source}")]
    ReadFile { file: PathBuf, source: io::Error },
    #[error("NAD manifest {file}: document {document}: {message}")]
    Parse {
        file: PathBuf,
        /// 0-based index of the document (or of the JSON value) in the file.
        document: usize,
        message: String,
    },
    #[error(
        "NetworkAttachmentDefinition {namespace}/{name} is defined twice: in {first} and in {second}"
    )]
    Duplicate {
        namespace: String,
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

impl ManifestError {
    /// Whether the directory or a file could not be read (rather than holding a bad manifest).
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            ManifestError::ReadDir { .. } | ManifestError::ReadFile { .. }
        )
    }
}

/// Every NAD of the manifests in `dir`, by (namespace, name). A missing directory holds none.
pub fn load_nad_dir(
    dir: &Path,
) -> Result<HashMap<(String, String), NetworkAttachmentDefinition>, ManifestError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::debug!(dir = %dir.display(), "no NAD manifest directory");
            return Ok(HashMap::new());
        }
        Err(source) => {
            return Err(ManifestError::ReadDir {
                dir: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ManifestError::ReadDir {
            dir: dir.to_owned(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || manifest_format(&name).is_none() {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();

    let mut out: HashMap<(String, String), (NetworkAttachmentDefinition, PathBuf)> = HashMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::ReadFile {
            file: file.clone(),
            source,
        })?;
        for nad in parse_manifest(&file, &text)? {
            let key = (
                nad.metadata.namespace.clone().unwrap_or_default(),
                nad.metadata.name.clone().unwrap_or_default(),
            );
            if let Some((_, first)) = out.get(&key) {
                return Err(ManifestError::Duplicate {
                    namespace: key.0,
                    name: key.1,
                    first: first.clone(),
                    second: file,
                });
            }
            out.insert(key, (nad, file.clone()));
        }
    }
    Ok(out.into_iter().map(|(k, (nad, _))| (k, nad)).collect())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

fn manifest_format(file_name: &str) -> Option<Format> {
    if file_name.ends_with(".yaml") || file_name.ends_with(".yml") {
        Some(Format::Yaml)
    } else if file_name.ends_with(".json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// The NADs of one manifest file (`file` decides the format by extension and names errors);
/// each has its namespace set (`default` when the manifest has none).
pub fn parse_manifest(
    file: &Path,
    text: &str,
) -> Result<Vec<NetworkAttachmentDefinition>, ManifestError> {
    let parse_err = |document: usize, message: String| ManifestError::Parse {
        file: file.to_owned(),
        document,
        message,
    };
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut documents = Vec::new();
    match manifest_format(name) {
        Some(Format::Json) => {
            for (i, value) in serde_json::Deserializer::from_str(text)
                .into_iter::<Value>()
                .enumerate()
            {
                documents.push(value.map_err(|e| parse_err(i, format!("invalid JSON: {e}")))?);
            }
        }
        // Anything else is read as YAML (which also takes most JSON).
        _ => {
            for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
                documents.push(
                    Value::deserialize(doc)
                        .map_err(|e| parse_err(i, format!("invalid YAML: {e}")))?,
                );
            }
        }
    }
    let mut out = Vec::new();
    for (i, doc) in documents.into_iter().enumerate() {
        collect(doc, &mut out).map_err(|message| parse_err(i, message))?;
    }
    Ok(out)
}

/// Adds the NADs of one document (a NAD, a list, or another kind) to `out`.
fn collect(doc: Value, out: &mut Vec<NetworkAttachmentDefinition>) -> Result<(), String> {
    let obj = match doc {
        // An empty document (`---` at the end of a file).
        Value::Null => return Ok(()),
        Value::Object(obj) => obj,
        other => return Err(format!("expected a Kubernetes object, got {other}")),
    };
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind == "List" || (kind.ends_with("List") && obj.contains_key("items")) {
        let items = match obj.get("items") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Array(items)) => items.clone(),
            Some(other) => return Err(format!("{kind} \"items\" = {other}: must be a list")),
        };
        for (j, item) in items.into_iter().enumerate() {
            collect(item, out).map_err(|e| format!("items[{j}]: {e}"))?;
        }
        return Ok(());
    }
    if kind != "NetworkAttachmentDefinition" || !api_version.starts_with("k8s.cni.cncf.io/") {
        tracing::debug!(
            kind,
            api_version,
            "not a NetworkAttachmentDefinition: ignored"
        );
        return Ok(());
    }
    check_fields(&obj)?;
    let mut nad: NetworkAttachmentDefinition = serde_json::from_value(Value::Object(obj))
        .map_err(|e| format!("invalid NetworkAttachmentDefinition: {e}"))?;
    if nad.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        nad.metadata.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
    out.push(nad);
    Ok(())
}

/// Checks the fields a NAD is made of before decoding it, so that a mistake names its field
/// (`spec.config` written as a YAML mapping instead of a JSON string is the common one); serde's
/// own messages do not say where.
fn check_fields(obj: &serde_json::Map<String, Value>) -> Result<(), String> {
    let field_err = |field: &str, want: &str, got: &Value| {
        format!(
            "NetworkAttachmentDefinition field {field}: must be {want}, got {}",
            json_kind(got)
        )
    };
    let metadata = match obj.get("metadata") {
        Some(Value::Object(m)) => m,
        Some(other) => return Err(field_err("metadata", "an object", other)),
        None => return Err("NetworkAttachmentDefinition has no metadata.name".to_owned()),
    };
    match metadata.get("name") {
        Some(Value::String(n)) if !n.is_empty() => {}
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err("NetworkAttachmentDefinition has no metadata.name".to_owned());
        }
        Some(other) => return Err(field_err("metadata.name", "a string", other)),
    }
    match metadata.get("namespace") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(other) => return Err(field_err("metadata.namespace", "a string", other)),
    }
    for map in ["annotations", "labels"] {
        match metadata.get(map) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(field_err(
                        &format!("metadata.{map}[{k:?}]"),
                        "a string (quote it in YAML)",
                        v,
                    ));
                }
            }
            Some(other) => {
                return Err(field_err(
                    &format!("metadata.{map}"),
                    "a map of strings",
                    other,
                ));
            }
        }
    }
    match obj.get("spec") {
        None | Some(Value::Null) => {}
        Some(Value::Object(spec)) => match spec.get("config") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(field_err(
                    "spec.config",
                    "a string holding the CNI config as JSON",
                    other,
                ));
            }
        },
        Some(other) => return Err(field_err("spec", "an object", other)),
    }
    Ok(())
}
