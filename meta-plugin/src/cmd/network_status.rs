//! network-status entries (COMPAT §4) and the `AddedInterface` list from attachment results.

use plexus_crds::{DeviceInfo, NetworkStatus};
use plexus_delegates::cni::CniResult;

use crate::journal::Record;
use crate::kube::AddedInterface;
use crate::plan::Attachment;

use super::route::status_gateways;

/// The IPs (with prefix) of the sandbox interface `ifname` in `result`; all IPs when the result
/// does not say which interface they are on.
fn iface_ips(result: &CniResult, ifname: &str) -> Vec<String> {
    let idx = result.sandbox_interface(ifname);
    result
        .ips
        .iter()
        .filter(|ip| idx.is_none() || ip.interface.is_none() || ip.interface == idx)
        .map(|ip| ip.address.to_string())
        .collect()
}

/// One network-status entry per attachment.
pub fn network_statuses(done: &[(&Attachment, &CniResult)]) -> Vec<NetworkStatus> {
    let all: Vec<&Attachment> = done.iter().map(|(a, _)| *a).collect();
    done.iter()
        .map(|(att, result)| {
            let iface = result
                .sandbox_interface(&att.ifname)
                .and_then(|i| result.interfaces.get(i));
            NetworkStatus {
                name: att.network.clone(),
                interface: Some(att.ifname.clone()),
                ips: iface_ips(result, &att.ifname)
                    .iter()
                    .map(|s| s.split('/').next().unwrap_or_default().to_owned())
                    .collect(),
                mac: iface.map(|i| i.mac.clone()).filter(|m| !m.is_empty()),
                mtu: iface.and_then(|i| i.mtu),
                default: att.is_cluster,
                dns: plexus_crds::Dns {
                    nameservers: result.dns.nameservers.clone(),
                    domain: result.dns.domain.clone(),
                    search: result.dns.search.clone(),
                    options: result.dns.options.clone(),
                },
                device_info: None,
                gateway: status_gateways(att, result, &all)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            }
        })
        .collect()
}

/// The device-info of a journaled attachment for its network-status entry: its device-info
/// file, read after the delegate ran (the delegate may have written it). `None` without a file;
/// an unreadable file is logged and left out, as Multus does.
pub fn device_info(record: &Record) -> Option<DeviceInfo> {
    let file = record.device_info_file.as_deref()?;
    crate::devinfo::load_file(file).unwrap_or_else(|e| {
        tracing::warn!(
            network = %record.attachment.network,
            ifname = %record.attachment.ifname,
            "{e}: no device-info for network-status"
        );
        None
    })
}

/// The interfaces for the `AddedInterface` Event.
pub fn added_interfaces(done: &[(&Attachment, &CniResult)]) -> Vec<AddedInterface> {
    done.iter()
        .map(|(att, result)| AddedInterface {
            ifname: att.ifname.clone(),
            ips: iface_ips(result, &att.ifname),
            network: att.network.clone(),
        })
        .collect()
}
