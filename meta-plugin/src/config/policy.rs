//! Which networks a pod may use (`namespaceIsolation`, `globalNamespaces`) and which pods get
//! `defaultNetworks` (`systemNamespaces`). Pure functions.

use super::ConfigError;

/// The namespace rules of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// `namespaceIsolation`: a pod may use only NADs of its own namespace or a global one.
    pub namespace_isolation: bool,
    /// `globalNamespaces`: NADs here are usable from every namespace.
    pub global_namespaces: Vec<String>,
    /// `systemNamespaces`: pods here do not get `defaultNetworks`.
    pub system_namespaces: Vec<String>,
}

impl Default for NamespacePolicy {
    fn default() -> Self {
        NamespacePolicy {
            namespace_isolation: false,
            global_namespaces: vec![super::DEFAULT_GLOBAL_NAMESPACE.to_owned()],
            system_namespaces: vec![super::DEFAULT_SYSTEM_NAMESPACE.to_owned()],
        }
    }
}

impl NamespacePolicy {
    /// Whether a pod in `pod_namespace` may use a NAD in `nad_namespace`.
    pub fn allows(&self, pod_namespace: &str, nad_namespace: &str) -> bool {
        !self.namespace_isolation
            || pod_namespace == nad_namespace
            || self.global_namespaces.iter().any(|g| g == nad_namespace)
    }

    /// [`Self::allows`] as a check for a network the pod selected: `source` says where the
    /// selection came from (the networks annotation, the default-network annotation), for the
    /// message. Applies to both annotations; `clusterNetwork`/`defaultNetworks` from the
    /// configuration are the administrator's choice and are not checked.
    pub fn check(
        &self,
        pod_namespace: &str,
        nad_namespace: &str,
        nad_name: &str,
        source: &str,
    ) -> Result<(), ConfigError> {
        if self.allows(pod_namespace, nad_namespace) {
            return Ok(());
        }
        Err(ConfigError::NamespaceIsolation {
            pod_namespace: pod_namespace.to_owned(),
            namespace: nad_namespace.to_owned(),
            name: nad_name.to_owned(),
            source_name: source.to_owned(),
            global: self.global_namespaces.clone(),
        })
    }

    /// Whether a pod in `pod_namespace` gets the configured `defaultNetworks` (not in a system
    /// namespace).
    pub fn wants_default_networks(&self, pod_namespace: &str) -> bool {
        !self.system_namespaces.iter().any(|s| s == pod_namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_crds::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};

    fn isolated() -> NamespacePolicy {
        NamespacePolicy {
            namespace_isolation: true,
            global_namespaces: vec!["default".into(), "shared".into()],
            system_namespaces: vec!["kube-system".into()],
        }
    }

    #[test]
    fn without_isolation_everything_is_allowed() {
        let p = NamespacePolicy::default();
        assert!(p.allows("team-a", "team-b"));
        assert!(
            p.check("team-a", "team-b", "x", NETWORKS_ANNOTATION)
                .is_ok()
        );
    }

    #[test]
    fn isolation_allows_own_and_global_namespaces_only() {
        let p = isolated();
        assert!(p.allows("team-a", "team-a"));
        assert!(p.allows("team-a", "default"));
        assert!(p.allows("team-a", "shared"));
        assert!(!p.allows("team-a", "team-b"));
        assert!(!p.allows("team-a", "kube-system"));
    }

    #[test]
    fn isolation_error_names_pod_namespace_network_and_source() {
        let e = isolated()
            .check("team-a", "team-b", "macvlan", DEFAULT_NETWORK_ANNOTATION)
            .unwrap_err();
        assert_eq!(e.code(), 7);
        let msg = e.to_string();
        assert!(msg.contains("\"team-a\""), "{msg}");
        assert!(msg.contains("team-b/macvlan"), "{msg}");
        assert!(msg.contains(DEFAULT_NETWORK_ANNOTATION), "{msg}");
        assert!(msg.contains("[\"default\", \"shared\"]"), "{msg}");
    }

    #[test]
    fn system_namespaces_skip_default_networks() {
        let p = isolated();
        assert!(!p.wants_default_networks("kube-system"));
        assert!(p.wants_default_networks("team-a"));
        let p = NamespacePolicy {
            system_namespaces: vec![],
            ..NamespacePolicy::default()
        };
        assert!(p.wants_default_networks("kube-system"));
    }
}
