//! The `k8s.v1.cni.cncf.io/networks` and `v1.multus-cni.io/default-network` annotations.

use std::net::IpAddr;

use plexus_crds::{
    NetworkSelection, SelectionError, parse_default_network_annotation, parse_networks_annotation,
};
use serde_json::json;

fn sel(ns: Option<&str>, name: &str, ifname: Option<&str>) -> NetworkSelection {
    NetworkSelection {
        namespace: ns.map(Into::into),
        name: name.into(),
        interface: ifname.map(Into::into),
        ..NetworkSelection::default()
    }
}

fn err(value: &str) -> String {
    parse_networks_annotation(value)
        .expect_err("annotation must be rejected")
        .to_string()
}

#[test]
fn text_form() {
    assert_eq!(
        parse_networks_annotation(" a , ns-1/b , c@net-x ,ns2/d@eth9").unwrap(),
        vec![
            sel(None, "a", None),
            sel(Some("ns-1"), "b", None),
            sel(None, "c", Some("net-x")),
            sel(Some("ns2"), "d", Some("eth9")),
        ]
    );
    // Whitespace around the separators is trimmed, like Multus.
    assert_eq!(
        parse_networks_annotation("ns / b @ if0").unwrap(),
        vec![sel(Some("ns"), "b", Some("if0"))]
    );
    // The same NAD may appear twice.
    assert_eq!(parse_networks_annotation("a,a").unwrap().len(), 2);
    assert!(parse_networks_annotation("").unwrap().is_empty());
    assert!(parse_networks_annotation("  ").unwrap().is_empty());
}

#[test]
fn text_form_errors_name_field_value_and_index() {
    let e = err("a,,b");
    assert!(e.contains("entry 1") && e.contains("empty item"), "{e}");
    let e = err("a,Bad_Name");
    assert!(
        e.contains("entry 1") && e.contains("\"name\"") && e.contains("Bad_Name"),
        "{e}"
    );
    let e = err("x/y/z");
    assert!(
        e.contains("entry 0") && e.contains("x/y/z") && e.contains("'/'"),
        "{e}"
    );
    let e = err("a@b@c");
    assert!(e.contains("'@'"), "{e}");
    let e = err("a@this-name-is-too-long");
    assert!(
        e.contains("\"interface\"") && e.contains("this-name-is-too-long") && e.contains("15"),
        "{e}"
    );
    let e = err("a@..");
    assert!(e.contains("'.' or '..'"), "{e}");
    let e = err("NS/a");
    assert!(e.contains("\"namespace\"") && e.contains("NS"), "{e}");
    assert!(err("/a").contains("\"namespace\""));
    assert!(err("a@").contains("\"interface\""));
    assert!(err("ns/").contains("\"name\""));
    assert!(err(&"a".repeat(64)).contains("63"));
}

#[test]
fn json_form_every_key() {
    let value = json!([{
        "name": "sriov-net",
        "namespace": "net-ns",
        "ips": ["10.1.1.5/24", "fd00::5"],
        "mac": "02:23:45:67:89:01",
        "interface": "sr0",
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 1000, "egressBurst": 2000},
        "cni-args": {"foo": "bar", "n": 1},
        "default-route": ["10.1.1.1", "fd00::1"],
        "infiniband-guid": "c2:11:22:33:44:55:66:77",
        "deviceID": "0000:03:02.1",
        "unknown-key": true
    }, {
        "name": "claimed",
        "ipam-claim-reference": "my-claim"
    }])
    .to_string();
    let got = parse_networks_annotation(&value).unwrap();
    assert_eq!(
        got[0],
        NetworkSelection {
            namespace: Some("net-ns".into()),
            name: "sriov-net".into(),
            interface: Some("sr0".into()),
            ips: vec!["10.1.1.5/24".into(), "fd00::5".into()],
            mac: Some("02:23:45:67:89:01".into()),
            default_route: vec![
                "10.1.1.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ],
            port_mappings: Some(
                json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
            ),
            bandwidth: Some(
                json!({"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 1000, "egressBurst": 2000})
            ),
            cni_args: Some(json!({"foo": "bar", "n": 1}).as_object().unwrap().clone()),
            infiniband_guid: Some("c2:11:22:33:44:55:66:77".into()),
            device_id: Some("0000:03:02.1".into()),
            ipam_claim_reference: None,
        }
    );
    assert_eq!(got[1].ipam_claim_reference.as_deref(), Some("my-claim"));
    assert_eq!(got[1].namespace, None);
}

#[test]
fn json_form_from_real_pod() {
    let pod: serde_json::Value = serde_json::from_str(include_str!("data/pod-get.json")).unwrap();
    let value = pod["metadata"]["annotations"][plexus_crds::NETWORKS_ANNOTATION]
        .as_str()
        .unwrap();
    let got = parse_networks_annotation(value).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].name, "macvlan-conf");
    assert_eq!(got[0].interface.as_deref(), Some("net-mv"));
    assert_eq!(got[0].ips, ["10.10.1.30/16"]);
    assert_eq!(got[0].mac.as_deref(), Some("02:23:45:67:89:01"));
    assert_eq!(got[1], sel(None, "sriov-net-a", None));
}

#[test]
fn json_legacy_interface_request_and_case_insensitive_keys() {
    // `interfaceRequest` maps to the interface when `interface` is absent (Multus compatibility).
    let got = parse_networks_annotation(r#"[{"name":"a","interfaceRequest":"old0"}]"#).unwrap();
    assert_eq!(got[0].interface.as_deref(), Some("old0"));
    let got =
        parse_networks_annotation(r#"[{"name":"a","interfaceRequest":"old0","interface":"new0"}]"#)
            .unwrap();
    assert_eq!(got[0].interface.as_deref(), Some("new0"));
    // Go's encoding/json matches keys case-insensitively.
    let got =
        parse_networks_annotation(r#"[{"Name":"a","Interface":"x0","IPs":["1.2.3.4"]}]"#).unwrap();
    assert_eq!(got[0].name, "a");
    assert_eq!(got[0].interface.as_deref(), Some("x0"));
    assert_eq!(got[0].ips, ["1.2.3.4"]);
    // Empty strings and nulls are absent values.
    let got = parse_networks_annotation(
        r#"[{"name":"a","namespace":"","mac":null,"interface":"","ips":null}]"#,
    )
    .unwrap();
    assert_eq!(got[0], sel(None, "a", None));
    assert!(parse_networks_annotation("[]").unwrap().is_empty());
}

#[test]
fn json_form_errors() {
    // A value with `"`, `[` or `{` is JSON; a bare object is not a list.
    let e = parse_networks_annotation(r#"{"name":"a"}"#).unwrap_err();
    assert!(
        matches!(
            e,
            SelectionError::NotAList {
                found: "an object",
                ..
            }
        ),
        "{e}"
    );
    assert!(err(r#""a""#).contains("got a string"));
    let e = err(r#"[{"name":"a"},"#);
    assert!(e.contains("invalid JSON"), "{e}");
    let e = err(r#"[{"name":"a"}, "b"]"#);
    assert!(e.contains("entry 1 must be an object"), "{e}");
    let cases = [
        (r#"[{"namespace":"x"}]"#, "\"name\"", "(missing)"),
        (r#"[{"name":""}]"#, "\"name\"", "\"\""),
        (r#"[{"name":"A"}]"#, "\"name\"", "\"A\""),
        (r#"[{"name":5}]"#, "\"name\"", "5"),
        (
            r#"[{"name":"a","namespace":"a.b"}]"#,
            "\"namespace\"",
            "a.b",
        ),
        (
            r#"[{"name":"a","interface":"a/b"}]"#,
            "\"interface\"",
            "a/b",
        ),
        (
            r#"[{"name":"a","interface":"with space"}]"#,
            "\"interface\"",
            "with space",
        ),
        (
            r#"[{"name":"a","ips":["10.1.1.300"]}]"#,
            "\"ips\"",
            "10.1.1.300",
        ),
        (
            r#"[{"name":"a","ips":["10.1.1.3/40"]}]"#,
            "\"ips\"",
            "10.1.1.3/40",
        ),
        (r#"[{"name":"a","ips":"10.1.1.3"}]"#, "\"ips\"", "10.1.1.3"),
        (
            r#"[{"name":"a","mac":"02:23:45:67:89"}]"#,
            "\"mac\"",
            "02:23:45:67:89",
        ),
        (
            r#"[{"name":"a","infiniband-guid":"nope"}]"#,
            "\"infiniband-guid\"",
            "nope",
        ),
        (
            r#"[{"name":"a","default-route":["10.0.0"]}]"#,
            "\"default-route\"",
            "10.0.0",
        ),
        (r#"[{"name":"a","cni-args":[1]}]"#, "\"cni-args\"", "[1]"),
        (r#"[{"name":"a","bandwidth":[]}]"#, "\"bandwidth\"", "[]"),
        (
            r#"[{"name":"a","bandwidth":{"ingressRate":"x"}}]"#,
            "\"bandwidth\"",
            "ingressRate",
        ),
        (
            r#"[{"name":"a","portMappings":{"hostPort":1}}]"#,
            "\"portMappings\"",
            "hostPort",
        ),
        (
            r#"[{"name":"a","portMappings":[{"hostPort":"80"}]}]"#,
            "\"portMappings\"",
            "\"80\"",
        ),
        (
            r#"[{"name":"a","ips":["10.1.1.3"],"ipam-claim-reference":"c"}]"#,
            "\"ipam-claim-reference\"",
            "\"c\"",
        ),
    ];
    for (value, field, shown) in cases {
        let e = err(value);
        assert!(e.contains("entry 0"), "{value}: {e}");
        assert!(e.contains(field), "{value}: {e}");
        assert!(e.contains(shown), "{value}: {e}");
    }
    // The index is the entry's position.
    let e = err(r#"[{"name":"a"},{"name":"b"},{"name":"c","mac":"x"}]"#);
    assert!(e.contains("entry 2"), "{e}");
}

#[test]
fn default_network_annotation() {
    assert_eq!(
        parse_default_network_annotation("kube-system/calico").unwrap(),
        sel(Some("kube-system"), "calico", None)
    );
    assert_eq!(
        parse_default_network_annotation(" flannel ").unwrap(),
        sel(None, "flannel", None)
    );
    assert_eq!(
        parse_default_network_annotation(r#"[{"name":"c","namespace":"n"}]"#).unwrap(),
        sel(Some("n"), "c", None)
    );
    let e = parse_default_network_annotation("a,b").unwrap_err();
    assert!(
        matches!(e, SelectionError::DefaultNetworkCount { count: 2, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(plexus_crds::DEFAULT_NETWORK_ANNOTATION)
    );
    assert!(parse_default_network_annotation("").is_err());
    let e = parse_default_network_annotation("x/Bad")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(plexus_crds::DEFAULT_NETWORK_ANNOTATION) && e.contains("Bad"),
        "{e}"
    );
}
