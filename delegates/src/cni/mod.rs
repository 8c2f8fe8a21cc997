//! The CNI wire layer: requests from env + stdin, versions, results, errors, configuration
//! decoding, executing external plugins, and the single reply writer.

pub mod args;
pub mod config;
pub mod error;
pub mod exec;
pub mod netconf;
pub mod plugin;
pub mod reply;
pub mod request;
pub mod result;
pub mod version;

pub use args::CniArgs;
pub use error::{CniError, ErrorCode};
pub use netconf::NetConf;
pub use plugin::{Plugin, dispatch, run_main};
pub use request::{Command, Request};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::CniVersion;
