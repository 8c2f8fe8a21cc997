//! CHECK compares the live VF with its record (and the record with the configuration); STATUS
//! says whether the configured VF's PF is present and up.

use super::add::{find_vf, read_vf};
use super::config::{SriovConfig, lenient_device_id};
use super::plugin::SriovPlugin;
use super::restore::{may_be_vf, pf_name};
use crate::cni::{CniError, ErrorCode, NetConf, Request};
use crate::ipam;
use crate::link::iface::verify_iface;
use crate::link::{OpenError, provider::netlink_error};

fn mismatch(what: String) -> CniError {
    CniError::new(ErrorCode::Netlink, format!("CHECK: {what}"))
}

pub(super) fn check(p: &SriovPlugin, req: &Request) -> Result<(), CniError> {
    let conf = NetConf::parse(&req.config)?;
    let cfg = SriovConfig::parse(req, &conf)?;
    let prev = conf
        .prev_result()?
        .ok_or_else(|| CniError::invalid_config("CHECK: required prevResult missing"))?;
    let pci = cfg.device_id;
    let (rec, released) = {
        let lock = p.state.lock(&pci)?;
        (p.state.load(&lock)?, p.state.load_released(&lock))
    };
    let rec = rec.ok_or_else(|| {
        mismatch(match released {
            Some(r) => format!(
                "VF {pci} has no record: it was released (container {} as {})",
                r.owner.container_id, r.owner.ifname
            ),
            None => format!("VF {pci} has no record: ADD did not attach it (or DEL released it)"),
        })
    })?;
    if !rec.owner.is(&req.container_id, &req.ifname) {
        return Err(mismatch(format!(
            "VF {pci} is held by container {} as {}, not by {} as {}",
            rec.owner.container_id, rec.owner.ifname, req.container_id, req.ifname
        )));
    }
    if ipam::is_configured(&conf) {
        ipam::check(req, &conf)?;
    }
    let vf = find_vf(p, &pci)?;
    let want = cfg.vf_settings(&rec.original.vf);
    if want != rec.changes.vf {
        return Err(mismatch(format!(
            "VF {pci}: the configuration asks for [{}] but ADD applied [{}]",
            list(&want),
            list(&rec.changes.vf)
        )));
    }
    let pf = pf_name(p, &rec);
    let live = read_vf(p.pfs.host()?.as_ref(), &pf, &vf)?;
    for setting in &rec.changes.vf {
        if !setting.holds_on(&live) {
            return Err(mismatch(format!(
                "VF {pci} (PF {pf} VF {}): {} is {}, expected {setting}",
                vf.index,
                setting.field(),
                live.current(setting)
            )));
        }
    }
    if rec.userspace {
        if !vf.is_userspace_driver() {
            return Err(mismatch(format!(
                "VF {pci} is no longer on a userspace driver (driver {})",
                vf.driver.as_deref().unwrap_or("none")
            )));
        }
        return Ok(());
    }
    let path = req
        .netns
        .as_deref()
        .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for CHECK"))?;
    let pod = p.netdevs.netns(path).map_err(OpenError::into_cni)?;
    let ifname = req.ifname.as_str();
    let link = pod
        .link(ifname)
        .map_err(|e| netlink_error(&e))?
        .ok_or_else(|| mismatch(format!("{ifname} not found in {}", path.display())))?;
    if !may_be_vf(&link, &pci) {
        return Err(mismatch(format!(
            "{ifname} in {} is device {}, not VF {pci}",
            path.display(),
            link.parent_device.as_deref().unwrap_or("?")
        )));
    }
    if let Some(mtu) = rec.changes.mtu
        && link.mtu != mtu
    {
        return Err(mismatch(format!(
            "{ifname}: MTU is {}, config says {mtu}",
            link.mtu
        )));
    }
    let idx = prev.sandbox_interface(ifname).ok_or_else(|| {
        CniError::invalid_config(format!(
            "CHECK: prevResult has no interface {ifname} in a sandbox"
        ))
    })?;
    let want_mac = &prev.interfaces[idx].mac;
    let have_mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    if !want_mac.is_empty() && !want_mac.eq_ignore_ascii_case(&have_mac) {
        return Err(mismatch(format!(
            "{ifname}: MAC is {have_mac}, prevResult says {want_mac}"
        )));
    }
    verify_iface(pod.as_ref(), ifname, idx, &prev)
}

fn list(settings: &[crate::netlink::VfSetting]) -> String {
    settings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// STATUS: code 50 when the configured VF, its PF or the PF's netdev is missing, or the PF is
/// down. A configuration without a `deviceID` (the meta-plugin injects it per pod) has no PF to
/// look at. Then IPAM's status.
pub(super) fn status(p: &SriovPlugin, req: &Request) -> Result<(), CniError> {
    let conf = NetConf::parse(&req.config)?;
    let unavailable = |msg: String| CniError::new(ErrorCode::PluginNotAvailable, msg);
    if let Some(pci) = lenient_device_id(&req.config) {
        let vf = p
            .sysfs
            .vf(&pci)
            .map_err(|e| unavailable(format!("VF {pci}: {e}")))?;
        let pf = p
            .sysfs
            .pf_of(&vf)
            .map_err(|e| unavailable(format!("PF of VF {pci}: {e}")))?;
        let name = pf.name.as_deref().ok_or_else(|| {
            unavailable(format!(
                "PF {} of VF {pci} has no netdev in the host network namespace",
                pf.pci
            ))
        })?;
        if pf.link_up == Some(false) {
            return Err(unavailable(format!("PF {name} of VF {pci} is down")));
        }
    }
    if ipam::is_configured(&conf) {
        ipam::status(req, &conf)
    } else {
        Ok(())
    }
}
