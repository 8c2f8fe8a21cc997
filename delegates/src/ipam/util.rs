//! Small helpers shared by the IPAM modules: address arithmetic and JSON key lookup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::error::IpamError;

/// An address as a number, so ranges can be walked in either family.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Back from a number, in the family of `like`. IPv4 values are truncated to 32 bits.
pub fn u128_to_ip(value: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((value & 0xffff_ffff) as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Parse a bare address or the address part of a CIDR, in canonical form (IPv4-mapped IPv6
/// addresses become IPv4, as Go's `To4` does).
pub fn parse_ip_or_cidr(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    let ip = match raw.split_once('/') {
        Some((addr, prefix)) => {
            let ip: IpAddr = addr.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            prefix.parse::<u8>().ok().filter(|p| *p <= max)?;
            ip
        }
        None => raw.parse().ok()?,
    };
    Some(ip.to_canonical())
}

/// Look `key` up in a JSON object: exact match first, then ASCII case-insensitively (Go's
/// decoder matches keys that way).
pub fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A JSON list of strings (`null` or absent → empty), naming `field` in errors.
pub fn string_list(value: Option<&Value>, field: &str) -> Result<Vec<String>, IpamError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(IpamError::Config(format!(
                    "{field}: expected a string, got {other}"
                ))),
            })
            .collect(),
        Some(other) => Err(IpamError::Config(format!(
            "{field}: expected a list, got {other}"
        ))),
    }
}

/// `args.cni.ips` of the network configuration (the conventions' per-attachment IPs).
pub fn args_cni_ips(args: Option<&Value>) -> Result<Vec<String>, IpamError> {
    let cni = args
        .and_then(Value::as_object)
        .and_then(|a| get_ci(a, "cni"))
        .and_then(Value::as_object);
    string_list(cni.and_then(|c| get_ci(c, "ips")), "args.cni.ips")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_cidrs_canonically() {
        assert_eq!(
            parse_ip_or_cidr("10.0.0.5"),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            parse_ip_or_cidr(" 10.0.0.5/24 "),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            parse_ip_or_cidr("::ffff:10.0.0.5"),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            parse_ip_or_cidr("fd00::5/64"),
            Some("fd00::5".parse().unwrap())
        );
        for bad in ["", "x", "10.0.0.5/33", "10.0.0.5/", "fd00::/129"] {
            assert_eq!(parse_ip_or_cidr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn u128_round_trips() {
        for ip in ["10.1.2.3", "255.255.255.255", "fd00::1", "::"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(u128_to_ip(ip_to_u128(ip), ip), ip);
        }
    }
}
