//! The installer's logs: every step, to stderr (the container log), one line each.

/// Sets up logging at `level` (the plugin's own logging is configured separately, in the
/// conflist). A second call is a no-op.
pub fn init(level: tracing::Level) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
