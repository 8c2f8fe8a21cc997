//! Kubernetes-facing types and formats of Plexus. Filled in by the meta-plugin work (issue 3).
