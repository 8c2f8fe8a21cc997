//! The one place that writes to stdout: the CNI reply. Logs never go there.

use std::io::Write;

use serde::Serialize;

/// Serialize like the reference plugins: 4-space indented JSON.
pub fn to_reply_bytes(value: &serde_json::Value) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a Value into memory cannot fail.
    if value.serialize(&mut ser).is_err() {
        buf.clear();
    }
    buf
}

/// Write the reply; a failure to write stdout has nowhere else to be reported but stderr.
pub fn write_stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        tracing::error!("cannot write the CNI reply to stdout: {e}");
    }
}
