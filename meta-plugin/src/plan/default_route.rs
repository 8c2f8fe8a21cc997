//! `default-route`: at most one IPv4 and one IPv6 gateway for the whole pod (COMPAT §3). The
//! attachment that asked gets them; execution removes the other attachments' default routes of
//! that family.

use std::net::IpAddr;

use plexus_delegates::cni::CniError;

/// Checks the gateways each entry asked for (`label`, gateways) across the whole plan.
pub(super) fn check(entries: &[(&str, &[IpAddr])]) -> Result<(), CniError> {
    let mut v4: Option<(&str, IpAddr)> = None;
    let mut v6: Option<(&str, IpAddr)> = None;
    for (label, gateways) in entries {
        for gw in gateways.iter().copied() {
            let (slot, family) = if gw.is_ipv4() {
                (&mut v4, "IPv4")
            } else {
                (&mut v6, "IPv6")
            };
            if let Some((first_label, first_gw)) = slot {
                return Err(CniError::invalid_config(format!(
                    "default-route: at most one {family} default gateway per pod, but {first_label} asks for {first_gw} and {label} asks for {gw}"
                )));
            }
            *slot = Some((label, gw));
        }
    }
    Ok(())
}
