//! The whole plan is checked before the first side effect: every delegate has a `name`, a `type`
//! (or a non-empty `plugins` list whose entries all have one), plugin and IPAM types are plain
//! file names (no `/`, no `..`), and `cniVersion`, when set, is one Plexus speaks.

use plexus_delegates::cni::CniError;
use plexus_delegates::cni::exec::validate_plugin_type;
use plexus_delegates::cni::version::CniVersion;
use serde_json::{Map, Value};

use super::{Attachment, Delegate, Plan};

/// Looks a key up exactly, else ASCII case-insensitively (as the NAD parser and Go do).
fn get<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub(super) fn plan(plan: &Plan) -> Result<(), CniError> {
    for a in &plan.attachments {
        attachment(a).map_err(|e| e.context(format!("network {:?} ({})", a.network, a.ifname)))?;
    }
    Ok(())
}

fn attachment(a: &Attachment) -> Result<(), CniError> {
    let (Delegate::Conf(top) | Delegate::ConfList(top)) = &a.delegate;
    match get(top, "name") {
        Some(Value::String(s)) if !s.is_empty() => {}
        other => {
            return Err(CniError::invalid_config(format!(
                "delegate config field \"name\" = {}: must be a non-empty string",
                other.unwrap_or(&Value::Null)
            )));
        }
    }
    match get(top, "cniVersion") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) => {
            CniVersion::from_config(Some(v))
                .map_err(|e| e.context("delegate config field \"cniVersion\""))?;
        }
        Some(other) => {
            return Err(CniError::invalid_config(format!(
                "delegate config field \"cniVersion\" = {other}: must be a string"
            )));
        }
    }
    match &a.delegate {
        Delegate::Conf(conf) => plugin(conf, "type"),
        Delegate::ConfList(list) => {
            let plugins = match get(list, "plugins") {
                Some(Value::Array(p)) if !p.is_empty() => p,
                other => {
                    return Err(CniError::invalid_config(format!(
                        "delegate config field \"plugins\" = {}: must be a non-empty list",
                        other.unwrap_or(&Value::Null)
                    )));
                }
            };
            for (i, p) in plugins.iter().enumerate() {
                let Value::Object(p) = p else {
                    return Err(CniError::invalid_config(format!(
                        "delegate config field \"plugins[{i}]\" = {p}: must be an object"
                    )));
                };
                plugin(p, &format!("plugins[{i}].type"))?;
            }
            Ok(())
        }
    }
}

/// Checks one plugin conf's `type` (shown as `field`) and its `ipam.type`.
fn plugin(conf: &Map<String, Value>, field: &str) -> Result<(), CniError> {
    let plugin_type = match get(conf, "type") {
        Some(Value::String(t)) if !t.is_empty() => t,
        other => {
            return Err(CniError::invalid_config(format!(
                "delegate config field \"{field}\" = {}: must be a non-empty string",
                other.unwrap_or(&Value::Null)
            )));
        }
    };
    validate_plugin_type(plugin_type).map_err(|e| e.context(format!("field \"{field}\"")))?;
    if let Some(Value::Object(ipam)) = get(conf, "ipam") {
        match get(ipam, "type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => validate_plugin_type(t)
                .map_err(|e| e.context(format!("field \"{}\"", ipam_field(field))))?,
            Some(other) => {
                return Err(CniError::invalid_config(format!(
                    "delegate config field \"{}\" = {other}: must be a string",
                    ipam_field(field)
                )));
            }
        }
    }
    Ok(())
}

fn ipam_field(type_field: &str) -> String {
    match type_field.strip_suffix("type") {
        Some(prefix) => format!("{prefix}ipam.type"),
        None => "ipam.type".to_owned(),
    }
}
