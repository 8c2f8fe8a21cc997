//! Making CNI results comparable: replace what must differ between two runs (a random MAC, the
//! sandbox path) by placeholders, and set the host-local `dataDir` of a config.

use std::path::Path;

use serde_json::Value;

/// Replace `interfaces[*].sandbox` equal to `sandbox` by `<sandbox>`, and (unless `keep_mac`)
/// every interface MAC by `<mac>`.
pub fn normalize_result(v: &Value, sandbox: &str, keep_mac: bool) -> Value {
    let mut v = v.clone();
    if let Some(ifaces) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifaces {
            if let Some(obj) = i.as_object_mut() {
                if obj.get("sandbox").and_then(Value::as_str) == Some(sandbox) {
                    obj.insert("sandbox".into(), "<sandbox>".into());
                }
                if !keep_mac && obj.contains_key("mac") {
                    obj.insert("mac".into(), "<mac>".into());
                }
            }
        }
    }
    v
}

/// `config` with `ipam.dataDir` set to `dir` (when it has an `ipam` object).
pub fn with_data_dir(config: &Value, dir: &Path) -> Value {
    let mut c = config.clone();
    if let Some(ipam) = c.get_mut("ipam").and_then(Value::as_object_mut) {
        ipam.insert("dataDir".into(), dir.display().to_string().into());
    }
    c
}

/// `config` with `prevResult` set.
pub fn with_prev_result(config: &Value, prev: &Value) -> Value {
    let mut c = config.clone();
    if let Some(obj) = c.as_object_mut() {
        obj.insert("prevResult".into(), prev.clone());
    }
    c
}
