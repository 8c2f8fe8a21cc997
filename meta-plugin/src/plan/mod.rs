//! From the runtime's request, the meta-plugin config, pod annotations and NADs to a validated
//! [`Plan`].

pub mod attachment;

pub use attachment::{Attachment, Delegate, Plan};
