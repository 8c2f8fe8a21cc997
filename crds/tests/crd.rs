//! The NAD CRD: committed manifest vs generated, equivalence with Multus's CRD, real API bodies.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::core::{CustomResourceExt, ObjectList, Resource};
use plexus_crds::{NadResolution, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/manifests/network-attachment-definition.yaml"
);
const REGENERATE: &str =
    "cargo run -p plexus-crds --example crdgen > crds/manifests/network-attachment-definition.yaml";

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).expect("test data file")
}

#[test]
fn committed_manifest_is_up_to_date() {
    let generated = plexus_crds::crd_manifest_yaml().unwrap();
    let committed = std::fs::read_to_string(MANIFEST).unwrap_or_default();
    assert!(
        committed == generated,
        "crds/manifests/network-attachment-definition.yaml is stale or missing; regenerate it with:\n    {REGENERATE}\n--- generated ---\n{generated}"
    );
    // And it parses back into the same CRD.
    let parsed: CustomResourceDefinition = serde_yaml::from_str(&committed).unwrap();
    assert_eq!(parsed, plexus_crds::nad::crd());
}

/// Schema semantics, without descriptions and without the root `apiVersion`/`kind`/`metadata`
/// properties, which the API server validates implicitly whether they are listed or not.
fn semantics(schema: &JSONSchemaProps, root: bool) -> JSONSchemaProps {
    let mut s = schema.clone();
    s.description = None;
    s.title = None;
    if let Some(props) = s.properties.as_mut() {
        if root {
            for implicit in ["apiVersion", "kind", "metadata"] {
                props.remove(implicit);
            }
        }
        for value in props.values_mut() {
            *value = semantics(value, false);
        }
    }
    s
}

#[test]
fn equivalent_to_upstream_multus_crd() {
    let upstream: CustomResourceDefinition =
        serde_yaml::from_str(&data("upstream-nad-crd.yaml")).unwrap();
    let ours = plexus_crds::nad::crd();

    assert_eq!(ours.metadata.name, upstream.metadata.name);
    assert_eq!(ours.spec.group, "k8s.cni.cncf.io");
    assert_eq!(ours.spec.group, upstream.spec.group);
    assert_eq!(ours.spec.scope, "Namespaced");
    assert_eq!(ours.spec.scope, upstream.spec.scope);
    assert_eq!(ours.spec.names, upstream.spec.names);
    assert_eq!(
        ours.spec.names.short_names.as_deref(),
        Some(&["nad".to_owned(), "net-attach-def".to_owned()][..])
    );
    assert_eq!(
        NetworkAttachmentDefinition::shortnames(),
        ["nad", "net-attach-def"]
    );
    assert_eq!(
        NetworkAttachmentDefinition::plural(&()),
        "network-attachment-definitions"
    );
    assert_eq!(
        NetworkAttachmentDefinition::api_version(&()),
        "k8s.cni.cncf.io/v1"
    );

    assert_eq!(ours.spec.versions.len(), 1);
    assert_eq!(upstream.spec.versions.len(), 1);
    let (o, u) = (&ours.spec.versions[0], &upstream.spec.versions[0]);
    assert_eq!((o.name.as_str(), o.served, o.storage), ("v1", true, true));
    assert_eq!(
        (&o.name, o.served, o.storage),
        (&u.name, u.served, u.storage)
    );
    assert_eq!(o.subresources, u.subresources);
    assert_eq!(o.additional_printer_columns, u.additional_printer_columns);

    let schema_of = |v: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion| {
        v.schema.as_ref().unwrap().open_api_v3_schema.clone().unwrap()
    };
    let (os, us) = (schema_of(o), schema_of(u));
    // Same meaning: same types, same properties, nothing required, nothing nullable, unknown
    // fields pruned (no x-kubernetes-preserve-unknown-fields anywhere).
    assert_eq!(semantics(&os, true), semantics(&us, true));
    let spec = &os.properties.as_ref().unwrap()["spec"];
    assert_eq!(spec.type_.as_deref(), Some("object"));
    assert_eq!(spec.x_kubernetes_preserve_unknown_fields, None);
    assert_eq!(spec.required, None);
    let config = &spec.properties.as_ref().unwrap()["config"];
    assert_eq!(config.type_.as_deref(), Some("string"));
    assert_eq!(config.nullable, None);
    assert_eq!(
        os.required, None,
        "spec must not be required (empty-spec NADs exist)"
    );
    assert_eq!(os.x_kubernetes_preserve_unknown_fields, None);
    // Descriptions are carried over too.
    assert_eq!(
        os.description,
        us.description
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
    );
}

#[test]
fn real_nad_bodies_deserialize_and_resolve() {
    let sriov: NetworkAttachmentDefinition =
        serde_json::from_str(&data("nad-get-sriov.json")).unwrap();
    assert_eq!(sriov.resource_name(), Some("intel.com/sriov_netdevice"));
    assert!(!sriov.spec_is_empty());
    let NadResolution::Config(conf) = sriov.resolve().unwrap() else {
        panic!("expected a config")
    };
    assert_eq!(conf.name(), Some("sriov-net-a"));
    assert_eq!(conf.as_map()["type"], "sriov");

    // No "name" in spec.config: the NAD's name is injected.
    let macvlan: NetworkAttachmentDefinition =
        serde_json::from_str(&data("nad-get-macvlan.json")).unwrap();
    assert_eq!(macvlan.resource_name(), None);
    let NadResolution::Config(conf) = macvlan.resolve().unwrap() else {
        panic!("expected a config")
    };
    assert_eq!(conf.name(), Some("macvlan-conf"));
    assert_eq!(conf.cni_version(), Some("1.0.0"));
    assert!(!conf.is_list());

    // No spec at all: search confDir by the NAD's name.
    let empty: NetworkAttachmentDefinition =
        serde_json::from_str(&data("nad-get-empty-spec.json")).unwrap();
    assert!(empty.spec_is_empty());
    assert_eq!(empty.spec, NetworkAttachmentDefinitionSpec::default());
    assert_eq!(
        empty.resolve().unwrap(),
        NadResolution::SearchConfDir {
            name: "from-file".into()
        }
    );
    assert_eq!(empty.metadata.namespace.as_deref(), Some("fixtures"));

    let list: ObjectList<NetworkAttachmentDefinition> =
        serde_json::from_str(&data("nad-list.json")).unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["from-file", "macvlan-conf", "sriov-net-a"]);
    assert!(list.items[0].spec_is_empty());
}

#[test]
fn nad_serializes_like_the_api_server_expects() {
    let nad = NetworkAttachmentDefinition::new(
        "mv",
        NetworkAttachmentDefinitionSpec {
            config: Some(r#"{"type":"macvlan"}"#.into()),
        },
    );
    let json = serde_json::to_value(&nad).unwrap();
    assert_eq!(json["apiVersion"], "k8s.cni.cncf.io/v1");
    assert_eq!(json["kind"], "NetworkAttachmentDefinition");
    assert_eq!(json["spec"]["config"], r#"{"type":"macvlan"}"#);
    let back: NetworkAttachmentDefinition = serde_json::from_value(json).unwrap();
    assert_eq!(back, nad);
    // An empty config string is an empty spec too (Multus compares with the zero spec).
    let nad = NetworkAttachmentDefinition::new(
        "x",
        NetworkAttachmentDefinitionSpec {
            config: Some(String::new()),
        },
    );
    assert!(nad.spec_is_empty());
    // `spec: null` is accepted as the empty spec.
    let nad: NetworkAttachmentDefinition = serde_json::from_str(
        r#"{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"n"},"spec":null}"#,
    )
    .unwrap();
    assert!(nad.spec_is_empty());
}
