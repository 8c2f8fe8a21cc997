//! Reading manifest files: every YAML document of a file as a `serde_json::Value`, with where it
//! came from, so a failure names the file and the document.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The repository root (the workspace dir above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Path relative to the repository root.
    pub file: String,
    /// 0-based position in the file.
    pub index: usize,
    pub value: Value,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
}

impl fmt::Display for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} document {} ({} {:?})",
            self.file,
            self.index,
            self.kind(),
            self.name()
        )
    }
}

/// The `.yaml`/`.yml` files of a repository dir (relative path), sorted as `kubectl apply -f <dir>`
/// visits them.
pub fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    files.sort();
    files
}

/// Every non-empty YAML document of a file (relative path).
pub fn load(file: &str) -> Vec<Doc> {
    let text = std::fs::read_to_string(repo_root().join(file))
        .unwrap_or_else(|e| panic!("reading {file}: {e}"));
    parse_docs(file, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Every non-empty YAML document of `text`.
pub fn parse_docs(file: &str, text: &str) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de)
            .map_err(|e| format!("{file} document {index}: not valid YAML: {e}"))?;
        if !value.is_null() {
            docs.push(Doc {
                file: file.to_owned(),
                index,
                value,
            });
        }
    }
    Ok(docs)
}

/// Every document of every file.
pub fn load_all(files: &[String]) -> Vec<Doc> {
    files.iter().flat_map(|f| load(f)).collect()
}
