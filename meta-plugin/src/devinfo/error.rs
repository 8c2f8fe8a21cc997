//! [`DeviceInfoError`]: a device-info file that cannot be read, parsed, written or removed.

use std::path::PathBuf;

/// Names the file and what was done to it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceInfoError {
    #[error("device-info file {}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("device-info file {}: not a device-info JSON object: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
