//! `resolvConf`: read a resolv.conf into the result's DNS block, like the reference plugin.

use std::path::Path;

use crate::cni::Dns;
use crate::ipam::error::IpamError;

/// Parse resolv.conf text: `nameserver` (first word), `domain`, `search` and `options` (all
/// words); comments (`#`, `;`) and other keys are skipped.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let rest = fields[1..].iter().map(|s| s.to_string());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = fields[1].to_string(),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

pub fn read_resolv_conf(path: &Path) -> Result<Dns, IpamError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| IpamError::io(format!("resolvConf {:?}: cannot read", path.display()), e))?;
    Ok(parse_resolv_conf(&text))
}
