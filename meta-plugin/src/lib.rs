//! The Plexus meta-plugin. Not built yet: the work is tracked by the meta-plugin issue, and until it
//! lands this crate ships no binary, so nothing can mistake it for a working plugin.
