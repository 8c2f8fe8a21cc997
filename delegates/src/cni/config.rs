//! Decoding plugin configurations.
//!
//! PLACEHOLDER BODY: plain serde_json for now; being replaced by case-insensitive key matching.

use serde::de::DeserializeOwned;

use super::error::CniError;

/// Decode a network configuration (stdin bytes) into a typed struct.
pub fn parse_config<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CniError> {
    serde_json::from_slice(bytes)
        .map_err(|e| CniError::decode(format!("cannot decode network configuration: {e}")))
}

/// Decode a JSON value (a section of a configuration) into a typed struct.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, CniError> {
    serde_json::from_value(value)
        .map_err(|e| CniError::decode(format!("cannot decode network configuration: {e}")))
}
