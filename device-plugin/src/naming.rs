//! Names shared with kubelet, pods and the meta-plugin. They are part of the contract: pods read
//! the env vars, the meta-plugin finds the device-info files by name.

use plexus_delegates::sriov::sysfs::PciAddress;

/// `PCIDEVICE_<PREFIX>_<NAME>`: upper case, every character other than a letter or digit
/// becomes `_` (`intel.com/sriov_a` → `PCIDEVICE_INTEL_COM_SRIOV_A`). Its value is the
/// comma-separated list of the allocated PCI addresses.
pub fn env_name(prefix: &str, name: &str) -> String {
    let mut out = String::from("PCIDEVICE_");
    for c in prefix
        .chars()
        .chain(std::iter::once('_'))
        .chain(name.chars())
    {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push('_');
        }
    }
    out
}

/// [`env_name`] + `_INFO`: the JSON details of each allocated device.
pub fn info_env_name(prefix: &str, name: &str) -> String {
    env_name(prefix, name) + "_INFO"
}

/// The pool's socket file name in the device-plugins dir (also the `endpoint` sent to kubelet).
/// `/` cannot appear in a file name, so the resource `intel.com/sriov_a` becomes
/// `plexus-intel.com_sriov_a.sock`.
pub fn socket_name(prefix: &str, name: &str) -> String {
    format!("plexus-{prefix}_{name}.sock")
}

/// The device-info file name the Network Plumbing WG device-info spec fixes for device plugins:
/// `<resource with '/' replaced by '-'>-<pci address>-device.json`, so the meta-plugin can find
/// it from the resource name and the device ID alone.
pub fn devinfo_file_name(resource: &str, pci: &PciAddress) -> String {
    format!(
        "{}-{}-device.json",
        resource.replace('/', "-"),
        pci.to_string().replace('/', "-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_upper_case_and_replace_separators() {
        assert_eq!(
            env_name("intel.com", "sriov_a"),
            "PCIDEVICE_INTEL_COM_SRIOV_A"
        );
        assert_eq!(
            env_name("my-vendor.example.io", "netDev1"),
            "PCIDEVICE_MY_VENDOR_EXAMPLE_IO_NETDEV1"
        );
        assert_eq!(
            info_env_name("intel.com", "sriov_a"),
            "PCIDEVICE_INTEL_COM_SRIOV_A_INFO"
        );
    }

    #[test]
    fn file_names() {
        let pci: PciAddress = "0000:03:02.1".parse().unwrap();
        assert_eq!(
            devinfo_file_name("intel.com/sriov_a", &pci),
            "intel.com-sriov_a-0000:03:02.1-device.json"
        );
        assert_eq!(
            socket_name("intel.com", "sriov_a"),
            "plexus-intel.com_sriov_a.sock"
        );
    }
}
