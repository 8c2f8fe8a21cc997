//! CNI error objects and the codes Plexus answers with.
//!
//! Every failure leaves the process as exactly one of these, printed by the reply writer. Codes
//! 1-11 and 50/51 are the CNI specification's; 100 and up are Plexus's own (see README).

use serde::{Deserialize, Serialize};

/// The error codes Plexus emits. External plugins may answer with any code; those are carried
/// through untouched in [`CniError::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// The config's `cniVersion` is not supported, or the verb needs a newer version.
    IncompatibleVersion = 1,
    /// A field the plugin does not support was set.
    UnsupportedField = 2,
    /// The container (or its attachment) does not exist.
    UnknownContainer = 3,
    /// A required `CNI_*` environment variable is missing or malformed.
    InvalidEnv = 4,
    /// Reading or writing state or a file failed.
    Io = 5,
    /// The stdin config or a prevResult could not be decoded.
    Decode = 6,
    /// The network config is well-formed JSON but its content is invalid.
    InvalidConfig = 7,
    /// A transient condition: the runtime should retry later.
    TryAgainLater = 11,
    /// STATUS: the plugin cannot serve ADD requests.
    PluginNotAvailable = 50,
    /// STATUS: IP addresses are exhausted; existing attachments keep working.
    IpExhausted = 51,
    /// A netlink request failed.
    Netlink = 100,
    /// A network namespace could not be opened or entered.
    Netns = 101,
    /// A delegated (executed) plugin failed without a CNI error object, or answered garbage.
    Delegate = 102,
    /// IPAM failed for a reason other than exhaustion.
    Ipam = 103,
    /// The requested interface already exists in the container.
    InterfaceExists = 104,
    /// An internal invariant broke; always a bug.
    Internal = 199,
}

/// A CNI error object: `{"cniVersion", "code", "msg", "details"}` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            code: code as u32,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Prefix the message with context (network, delegate, step) while keeping the code.
    pub fn context(mut self, ctx: impl std::fmt::Display) -> Self {
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }

    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidConfig, msg)
    }

    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidEnv, msg)
    }

    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Decode, msg)
    }

    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Io, msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, msg)
    }

    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code as u32
    }

    /// The wire object, stamped with the version the runtime asked for.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("cniVersion".into(), cni_version.into());
        obj.insert("code".into(), self.code.into());
        obj.insert("msg".into(), self.msg.clone().into());
        if !self.details.is_empty() {
            obj.insert("details".into(), self.details.clone().into());
        }
        serde_json::Value::Object(obj)
    }
}

pub type CniResultOf<T> = std::result::Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_object_has_spec_fields_in_order() {
        let e =
            CniError::new(ErrorCode::InvalidConfig, "bad mode \"x\"").with_details("field mode");
        let s = serde_json::to_string(&e.to_json("1.0.0")).unwrap();
        assert_eq!(
            s,
            r#"{"cniVersion":"1.0.0","code":7,"msg":"bad mode \"x\"","details":"field mode"}"#
        );
    }

    #[test]
    fn details_omitted_when_empty_and_context_prefixes() {
        let e = CniError::io("disk full").context("host-local");
        assert_eq!(e.to_string(), "host-local: disk full");
        assert!(
            !e.to_json("0.4.0")
                .as_object()
                .unwrap()
                .contains_key("details")
        );
        assert!(e.is(ErrorCode::Io));
    }
}
