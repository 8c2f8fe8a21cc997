//! Strict parsing of a manifest document into its k8s-openapi type.
//!
//! k8s-openapi's deserializers ignore unknown fields (as the API server did before strict field
//! validation), so a misspelled field would parse and silently vanish. Strictness comes from the
//! round trip: deserialize into the typed object, serialize it back, and compare with the document.
//! A field the type does not know is missing from the serialized object and shows as a difference
//! naming its path. Values are compared as JSON, so key order does not matter.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use plexus_crds::NetworkAttachmentDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A manifest document as its typed Kubernetes object. Every kind is parsed, though not every
/// test reads every kind's fields.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub enum Object {
    Crd(Box<CustomResourceDefinition>),
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    DaemonSet(Box<DaemonSet>),
    ConfigMap(Box<ConfigMap>),
    Pod(Box<Pod>),
    Nad(Box<NetworkAttachmentDefinition>),
}

/// `apiVersion` and `kind` of the NetworkAttachmentDefinition custom resource.
pub const NAD_API_VERSION: &str = "k8s.cni.cncf.io/v1";
pub const NAD_KIND: &str = "NetworkAttachmentDefinition";

/// Parses `doc` into the type its `apiVersion`/`kind` name, refusing any field the type does not
/// have. The error lists every difference, one path per line.
pub fn parse_strict(doc: &Value) -> Result<Object, String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or("");
    let kind = doc["kind"].as_str().unwrap_or("");
    macro_rules! typed {
        ($($ty:ty => $variant:ident),* $(,)?) => {
            $(
                if api_version == <$ty as k8s_openapi::Resource>::API_VERSION
                    && kind == <$ty as k8s_openapi::Resource>::KIND
                {
                    return round_trip::<$ty>(doc).map(|o| Object::$variant(Box::new(o)));
                }
            )*
        };
    }
    typed!(
        CustomResourceDefinition => Crd,
        Namespace => Namespace,
        ServiceAccount => ServiceAccount,
        ClusterRole => ClusterRole,
        ClusterRoleBinding => ClusterRoleBinding,
        DaemonSet => DaemonSet,
        ConfigMap => ConfigMap,
        Pod => Pod,
    );
    if api_version == NAD_API_VERSION && kind == NAD_KIND {
        return round_trip::<NetworkAttachmentDefinition>(doc).map(|o| Object::Nad(Box::new(o)));
    }
    Err(format!(
        "apiVersion {api_version:?} kind {kind:?} is not a type these manifests may use"
    ))
}

/// Deserialize, serialize back, and require the result to equal the input.
pub fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
    let typed: T =
        serde_json::from_value(doc.clone()).map_err(|e| format!("does not parse: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("does not serialize: {e}"))?;
    let mut diffs = Vec::new();
    diff("", doc, &back, &mut diffs);
    if diffs.is_empty() {
        Ok(typed)
    } else {
        Err(diffs.join("\n"))
    }
}

/// Every path where `original` and `typed` (the round-tripped object) differ.
pub fn diff(path: &str, original: &Value, typed: &Value, out: &mut Vec<String>) {
    let at = |p: &str| {
        if p.is_empty() {
            "(root)".to_owned()
        } else {
            p.to_owned()
        }
    };
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, va) in a {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match b.get(key) {
                    Some(vb) => diff(&child, va, vb, out),
                    None => out.push(format!(
                        "{child}: unknown field (the type has no such field; misspelled?)"
                    )),
                }
            }
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{}.{key}: added by the type", at(path)));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if original == typed => {}
        _ => out.push(format!(
            "{}: {original} became {typed} in the typed object",
            at(path)
        )),
    }
}
