//! The Plexus SR-IOV device plugin. Not built yet: the work is tracked by the SR-IOV issue, and until
//! it lands this crate ships no binary, so nothing can mistake it for a working daemon.
