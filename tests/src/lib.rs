//! Shared fixtures for the end-to-end suites: network namespaces, binaries, reference plugins.
