//! CNI specification versions and the VERSION verb's answer.

use std::fmt;
use std::str::FromStr;

use super::error::{CniError, ErrorCode};

/// The spec versions Plexus speaks, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

pub const SUPPORTED_VERSIONS: [CniVersion; 7] = [
    CniVersion::V0_1_0,
    CniVersion::V0_2_0,
    CniVersion::V0_3_0,
    CniVersion::V0_3_1,
    CniVersion::V0_4_0,
    CniVersion::V1_0_0,
    CniVersion::V1_1_0,
];

impl CniVersion {
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Parse a config's `cniVersion`. An absent or empty version is a legacy config, which
    /// the reference plugins treat as 0.1.0.
    pub fn from_config(raw: Option<&str>) -> Result<CniVersion, CniError> {
        match raw {
            None | Some("") => Ok(CniVersion::V0_1_0),
            Some(v) => v.parse(),
        }
    }

    /// Results before 0.3.0 use the `ip4`/`ip6` layout.
    pub fn is_legacy_result(self) -> bool {
        self < CniVersion::V0_3_0
    }

    /// CHECK exists from 0.4.0 on.
    pub fn supports_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn supports_status_and_gc(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniVersion {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SUPPORTED_VERSIONS
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!("unsupported cniVersion {s:?}"),
                )
                .with_details(format!("supported versions: {}", supported_list()))
            })
    }
}

fn supported_list() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The VERSION verb's reply: `{"cniVersion": <asked or latest>, "supportedVersions": [...]}`.
pub fn version_reply(asked: Option<&str>) -> serde_json::Value {
    let cni_version = match asked {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => CniVersion::LATEST.as_str().to_string(),
    };
    serde_json::json!({
        "cniVersion": cni_version,
        "supportedVersions": SUPPORTED_VERSIONS.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version_and_orders_them() {
        for v in SUPPORTED_VERSIONS {
            assert_eq!(v.as_str().parse::<CniVersion>().unwrap(), v);
        }
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert!(CniVersion::V0_2_0.is_legacy_result());
        assert!(!CniVersion::V0_3_0.is_legacy_result());
    }

    #[test]
    fn unknown_version_is_code_1_naming_it() {
        let e = "0.5.0".parse::<CniVersion>().unwrap_err();
        assert!(e.is(ErrorCode::IncompatibleVersion));
        assert!(e.msg.contains("0.5.0"), "{e}");
    }

    #[test]
    fn missing_version_is_legacy() {
        assert_eq!(CniVersion::from_config(None).unwrap(), CniVersion::V0_1_0);
        assert_eq!(
            CniVersion::from_config(Some("")).unwrap(),
            CniVersion::V0_1_0
        );
    }

    #[test]
    fn version_reply_lists_all() {
        let r = version_reply(Some("0.4.0"));
        assert_eq!(r["cniVersion"], "0.4.0");
        assert_eq!(r["supportedVersions"].as_array().unwrap().len(), 7);
        assert_eq!(version_reply(None)["cniVersion"], "1.1.0");
    }
}
