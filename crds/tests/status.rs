//! The network-status annotation: golden bytes (COMPAT §4) and round trips of real API bodies.

use plexus_crds::{
    DeviceInfo, Dns, NETWORK_STATUS_ANNOTATION, NetworkStatus, VdpaDevice, parse_network_status,
    write_network_status,
};

/// The example of COMPAT §4, verbatim.
const COMPAT_EXAMPLE: &str = r#"[{
    "name": "cbr0",
    "interface": "eth0",
    "ips": [
        "10.244.1.7"
    ],
    "mac": "8a:2c:11:4e:5f:01",
    "default": true,
    "dns": {},
    "gateway": [
        "10.244.1.1"
    ]
},{
    "name": "default/sriov-net-a",
    "interface": "net1",
    "ips": [
        "10.56.217.171"
    ],
    "mac": "ce:d8:06:08:e6:3f",
    "mtu": 1500,
    "dns": {},
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:03:02.1"
        }
    }
}]"#;

fn compat_example_statuses() -> Vec<NetworkStatus> {
    vec![
        NetworkStatus {
            name: "cbr0".into(),
            interface: Some("eth0".into()),
            ips: vec!["10.244.1.7".into()],
            mac: Some("8a:2c:11:4e:5f:01".into()),
            mtu: None,
            default: true,
            dns: Dns::default(),
            device_info: None,
            gateway: vec!["10.244.1.1".into()],
        },
        NetworkStatus {
            name: "default/sriov-net-a".into(),
            interface: Some("net1".into()),
            ips: vec!["10.56.217.171".into()],
            mac: Some("ce:d8:06:08:e6:3f".into()),
            mtu: Some(1500),
            default: false,
            dns: Dns::default(),
            device_info: Some(DeviceInfo::pci("0000:03:02.1")),
            gateway: Vec::new(),
        },
    ]
}

#[test]
fn compat_example_byte_for_byte() {
    assert_eq!(
        write_network_status(&compat_example_statuses()).unwrap(),
        COMPAT_EXAMPLE
    );
}

#[test]
fn compat_example_parses_and_round_trips() {
    let parsed = parse_network_status(COMPAT_EXAMPLE).unwrap();
    assert_eq!(parsed, compat_example_statuses());
    assert_eq!(write_network_status(&parsed).unwrap(), COMPAT_EXAMPLE);
}

fn annotation_of(body: &str) -> String {
    let pod: serde_json::Value = serde_json::from_str(body).expect("pod JSON");
    pod["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]
        .as_str()
        .expect("network-status annotation")
        .to_owned()
}

#[test]
fn real_api_bodies_round_trip() {
    // pod-get.json has no network-status yet; the pods/status responses do.
    let pod: serde_json::Value = serde_json::from_str(include_str!("data/pod-get.json")).unwrap();
    assert!(pod["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION].is_null());

    for body in [
        include_str!("data/pod-status-merge-patch-response.json"),
        include_str!("data/pod-status-ssa-response.json"),
    ] {
        let value = annotation_of(body);
        let parsed = parse_network_status(&value).unwrap();
        assert_eq!(write_network_status(&parsed).unwrap(), value);
    }
    let parsed = parse_network_status(&annotation_of(include_str!(
        "data/pod-status-merge-patch-response.json"
    )))
    .unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].name, "cbr0");
    assert!(parsed[0].default);
}

#[test]
fn device_info_sections() {
    let value = r#"[{
    "name": "ns/vdpa",
    "dns": {},
    "device-info": {
        "type": "vdpa",
        "version": "1.1.0",
        "vdpa": {
            "parent-device": "vdpa:0000:65:00.3",
            "driver": "vhost",
            "path": "/dev/vhost-vdpa-1",
            "pci-address": "0000:65:00.3",
            "pf-pci-address": "0000:65:00.0",
            "representor-device": "eth5"
        }
    }
},{
    "name": "ns/vu",
    "dns": {},
    "device-info": {
        "type": "vhost-user",
        "version": "1.0.0",
        "vhost-user": {
            "mode": "server",
            "path": "/var/run/vhost.sock"
        }
    }
},{
    "name": "ns/rdma",
    "dns": {},
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:03:02.1",
            "vhost-net": "/dev/vhost-net",
            "rdma-device": "mlx5_3",
            "pf-pci-address": "0000:03:00.0",
            "representor-device": "pf0vf1"
        }
    }
},{
    "name": "ns/memif",
    "dns": {},
    "device-info": {
        "type": "memif",
        "version": "1.1.0",
        "memif": {
            "role": "master",
            "path": "/run/memif.sock",
            "mode": "ethernet"
        }
    }
}]"#;
    let parsed = parse_network_status(value).unwrap();
    assert_eq!(
        parsed[0]
            .device_info
            .as_ref()
            .unwrap()
            .vdpa
            .as_ref()
            .unwrap()
            .driver,
        "vhost"
    );
    assert_eq!(
        parsed[2]
            .device_info
            .as_ref()
            .unwrap()
            .pci
            .as_ref()
            .unwrap()
            .rdma_device,
        "mlx5_3"
    );
    assert_eq!(
        parsed[0]
            .device_info
            .as_ref()
            .unwrap()
            .vdpa
            .as_ref()
            .unwrap()
            .representor_device,
        "eth5"
    );
    assert_eq!(
        parsed[2]
            .device_info
            .as_ref()
            .unwrap()
            .pci
            .as_ref()
            .unwrap()
            .representor_device,
        "pf0vf1"
    );
    assert_eq!(write_network_status(&parsed).unwrap(), value);
}

/// `representor-device` (device-info spec 1.1.0) written from the typed value, byte for byte:
/// last in its section, after `pf-pci-address`, and omitted when empty.
#[test]
fn representor_device_is_written_last_and_omitted_when_empty() {
    let mut pci = DeviceInfo::pci("0000:03:02.1");
    if let Some(p) = pci.pci.as_mut() {
        p.pf_pci_address = "0000:03:00.0".into();
        p.representor_device = "eth3".into();
    }
    let vdpa = DeviceInfo {
        device_type: "vdpa".into(),
        version: "1.1.0".into(),
        vdpa: Some(VdpaDevice {
            parent_device: "vdpa:0000:65:00.3".into(),
            driver: "virtio".into(),
            representor_device: "eth7".into(),
            ..VdpaDevice::default()
        }),
        ..DeviceInfo::default()
    };
    let statuses = [
        NetworkStatus {
            name: "ns/vf".into(),
            device_info: Some(pci),
            ..NetworkStatus::default()
        },
        NetworkStatus {
            name: "ns/vdpa".into(),
            device_info: Some(vdpa),
            ..NetworkStatus::default()
        },
        NetworkStatus {
            name: "ns/plain".into(),
            device_info: Some(DeviceInfo::pci("0000:03:02.2")),
            ..NetworkStatus::default()
        },
    ];
    let want = r#"[{
    "name": "ns/vf",
    "dns": {},
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:03:02.1",
            "pf-pci-address": "0000:03:00.0",
            "representor-device": "eth3"
        }
    }
},{
    "name": "ns/vdpa",
    "dns": {},
    "device-info": {
        "type": "vdpa",
        "version": "1.1.0",
        "vdpa": {
            "parent-device": "vdpa:0000:65:00.3",
            "driver": "virtio",
            "representor-device": "eth7"
        }
    }
},{
    "name": "ns/plain",
    "dns": {},
    "device-info": {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:03:02.2"
        }
    }
}]"#;
    assert_eq!(write_network_status(&statuses).unwrap(), want);
    assert_eq!(parse_network_status(want).unwrap(), statuses);
}

#[test]
fn parse_accepts_compact_layout_and_unknown_fields() {
    let parsed = parse_network_status(
        r#"[{"name":"a","interface":"net1","ips":["10.0.0.2","fd00::2"],"mac":"02:00:00:00:00:01","future":1,"dns":{}}]"#,
    )
    .unwrap();
    assert_eq!(parsed[0].ips, ["10.0.0.2", "fd00::2"]);
    assert_eq!(
        write_network_status(&parsed).unwrap(),
        "[{\n    \"name\": \"a\",\n    \"interface\": \"net1\",\n    \"ips\": [\n        \"10.0.0.2\",\n        \"fd00::2\"\n    ],\n    \"mac\": \"02:00:00:00:00:01\",\n    \"dns\": {}\n}]"
    );
}
