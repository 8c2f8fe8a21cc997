//! IPAM's internal error type, mapped to [`CniError`] at the module edge.

use crate::cni::{CniError, ErrorCode};

/// What can go wrong inside in-process IPAM. Every message names the field or file and value.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The network configuration has no `ipam` section (or one without a `type`).
    #[error("{}", super::MISSING_IPAM_MSG)]
    Missing,
    /// The IPAM configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// `CNI_ARGS` carries an unusable value.
    #[error("{0}")]
    Env(String),
    /// Reading or writing state failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// No address is left in a range set.
    #[error("{0}")]
    Exhausted(String),
    /// An allocation, release or check failed for a reason other than exhaustion.
    #[error("{0}")]
    Alloc(String),
}

impl IpamError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        IpamError::Io {
            what: what.into(),
            source,
        }
    }

    /// Prefix the message with context, keeping the kind.
    pub fn context(self, ctx: impl std::fmt::Display) -> Self {
        match self {
            IpamError::Missing => IpamError::Missing,
            IpamError::Config(m) => IpamError::Config(format!("{ctx}: {m}")),
            IpamError::Env(m) => IpamError::Env(format!("{ctx}: {m}")),
            IpamError::Io { what, source } => IpamError::Io {
                what: format!("{ctx}: {what}"),
                source,
            },
            IpamError::Exhausted(m) => IpamError::Exhausted(format!("{ctx}: {m}")),
            IpamError::Alloc(m) => IpamError::Alloc(format!("{ctx}: {m}")),
        }
    }
}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> CniError {
        let code = match &e {
            IpamError::Missing | IpamError::Config(_) => ErrorCode::InvalidConfig,
            IpamError::Env(_) => ErrorCode::InvalidEnv,
            IpamError::Io { .. } => ErrorCode::Io,
            IpamError::Exhausted(_) | IpamError::Alloc(_) => ErrorCode::Ipam,
        };
        CniError::new(code, e.to_string())
    }
}
