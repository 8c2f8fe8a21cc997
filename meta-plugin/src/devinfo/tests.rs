//! Device-info files in a temp root: the names, the copy at ADD, the read-back for
//! network-status, the removal at DEL, and the cases that write nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use plexus_crds::DeviceInfo;
use serde_json::{Map, Value, json};

use super::*;
use crate::plan::{Attachment, Delegate};

const RESOURCE: &str = "intel.com/sriov_netdevice";
const VF: &str = "0000:03:02.1";
const CID: &str = "3f5e9d0c";

fn att(resource: Option<&str>, device: Option<&str>) -> Attachment {
    let Value::Object(conf) =
        json!({"cniVersion": "1.0.0", "name": "sriov-net-a", "type": "sriov"})
    else {
        unreachable!()
    };
    let mut runtime_config = Map::new();
    if let Some(d) = device {
        runtime_config.insert("deviceID".into(), Value::String(d.into()));
    }
    Attachment {
        network: "fixtures/sriov-net-a".into(),
        ifname: "net1".into(),
        is_cluster: false,
        delegate: Delegate::Conf(conf),
        runtime_config,
        cni_args: Vec::new(),
        args_cni: None,
        default_route: Vec::new(),
        resource_name: resource.map(str::to_owned),
    }
}

/// A device plugin's file, as sriov-network-device-plugin writes it (switchdev: with the VF's
/// representor), plus a field Plexus does not model, which the copy must keep.
fn write_dp(dir: &DeviceInfoDir, resource: &str, device: &str) -> Vec<u8> {
    let bytes = format!(
        r#"{{"type":"pci","version":"1.1.0","pci":{{"pci-address":"{device}","representor-device":"eth3","x-vendor-hint":"keep me"}}}}"#
    )
    .into_bytes();
    let path = dir.dp_file(resource, device);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    bytes
}

#[test]
fn file_names_replace_slashes_as_multus_does() {
    let dir = DeviceInfoDir::new("/r");
    assert_eq!(
        dir.dp_file(RESOURCE, VF),
        Path::new("/r/dp/intel.com-sriov_netdevice-0000:03:02.1-device.json")
    );
    assert_eq!(
        dir.cni_file("fixtures/sriov-net-a", CID, "net1"),
        Path::new("/r/cni/fixtures-sriov-net-a-3f5e9d0c_net1")
    );
    assert_eq!(
        dir.attachment_file(CID, &att(Some(RESOURCE), Some(VF))),
        Some(dir.cni_file("fixtures/sriov-net-a", CID, "net1"))
    );
    assert_eq!(dir.attachment_file(CID, &att(Some(RESOURCE), None)), None);
}

#[test]
fn add_copies_the_device_plugin_file_status_reads_it_del_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DeviceInfoDir::new(tmp.path());
    let bytes = write_dp(&dir, RESOURCE, VF);
    let a = att(Some(RESOURCE), Some(VF));

    let info = dir.write_for_attachment(CID, &a).unwrap().unwrap();
    assert_eq!(info.device_type, "pci");
    assert_eq!(info.pci.as_ref().unwrap().pci_address, VF);
    let file = dir.attachment_file(CID, &a).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "a byte-for-byte copy");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert_eq!(load_file(&file).unwrap(), Some(info));

    // A retried ADD replaces the file.
    dir.write_for_attachment(CID, &a).unwrap().unwrap();
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("cni"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [file.file_name().unwrap()], "no temp file left");

    remove_file(&file).unwrap();
    assert!(!file.exists());
    assert_eq!(load_file(&file).unwrap(), None);
    // DEL is idempotent.
    remove_file(&file).unwrap();
}

#[test]
fn nothing_is_written_without_a_device_a_resource_or_a_device_plugin_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DeviceInfoDir::new(tmp.path());
    write_dp(&dir, RESOURCE, VF);
    // No device handed out.
    assert_eq!(
        dir.write_for_attachment(CID, &att(Some(RESOURCE), None))
            .unwrap(),
        None
    );
    // A selection's deviceID without a resource: no device plugin to copy from.
    assert_eq!(
        dir.write_for_attachment(CID, &att(None, Some(VF))).unwrap(),
        None
    );
    // The device plugin wrote no file for this device.
    assert_eq!(
        dir.write_for_attachment(CID, &att(Some(RESOURCE), Some("0000:03:02.2")))
            .unwrap(),
        None
    );
    assert!(!tmp.path().join("cni").exists());
    // Removing what was never written is fine.
    remove_file(&dir.cni_file("fixtures/sriov-net-a", CID, "net1")).unwrap();
}

#[test]
fn a_malformed_device_plugin_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DeviceInfoDir::new(tmp.path());
    let path = dir.dp_file(RESOURCE, VF);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{\"type\": 7").unwrap();
    let e = dir
        .write_for_attachment(CID, &att(Some(RESOURCE), Some(VF)))
        .unwrap_err();
    assert!(matches!(e, DeviceInfoError::Parse { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(!tmp.path().join("cni").exists(), "nothing left behind");
}

#[test]
fn the_device_plugin_file_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DeviceInfoDir::new(tmp.path());
    assert_eq!(load_file(&dir.dp_file(RESOURCE, VF)).unwrap(), None);
    write_dp(&dir, RESOURCE, VF);
    let mut want = DeviceInfo::pci(VF);
    if let Some(pci) = want.pci.as_mut() {
        pci.representor_device = "eth3".into();
    }
    assert_eq!(load_file(&dir.dp_file(RESOURCE, VF)).unwrap(), Some(want));
}
