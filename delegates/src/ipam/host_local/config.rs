//! host-local configuration: decoding and validation with the reference plugin's rules
//! (`LoadIPAMConfig`, `RangeSet.Canonicalize`, `Range.Canonicalize`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use crate::cni::config::from_value;
use crate::cni::{CniArgs, CniVersion, NetConf, Route};
use crate::ipam::error::IpamError;
use crate::ipam::util::{args_cni_ips, ip_to_u128, parse_ip_or_cidr, string_list, u128_to_ip};

/// Where leases live when `dataDir` is not set.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One validated range: every field filled in, every address in the subnet's family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The network (no host bits).
    pub subnet: IpNet,
    /// First allocatable address, inclusive.
    pub start: IpAddr,
    /// Last allocatable address, inclusive.
    pub end: IpAddr,
    /// Reported as the gateway and never handed out.
    pub gateway: IpAddr,
}

impl Range {
    /// `ip` lies in `start..=end` (the reference's `Range.Contains`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && self.subnet.contains(&ip)
            && ip_to_u128(ip) >= ip_to_u128(self.start)
            && ip_to_u128(ip) <= ip_to_u128(self.end)
    }

    /// `ip` may be handed out by the iterator: not the network address, not the IPv4
    /// broadcast address, not the gateway.
    pub fn is_candidate(&self, ip: IpAddr) -> bool {
        ip != self.gateway
            && ip != self.subnet.network()
            && !(ip.is_ipv4() && ip == self.subnet.broadcast())
    }

    /// How many addresses the iterator can hand out from this range.
    pub fn capacity(&self) -> u128 {
        let (start, end) = (ip_to_u128(self.start), ip_to_u128(self.end));
        let mut n = (end - start).saturating_add(1);
        let mut excluded = vec![self.gateway, self.subnet.network()];
        if self.start.is_ipv4() {
            excluded.push(self.subnet.broadcast());
        }
        excluded.sort();
        excluded.dedup();
        for ip in excluded {
            if self.contains(ip) {
                n -= 1;
            }
        }
        n
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && ip_to_u128(self.start) <= ip_to_u128(other.end)
            && ip_to_u128(other.start) <= ip_to_u128(self.end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A list of ranges of one family; one address is allocated from each set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// The subnets, for messages (`10.0.0.0/30,10.0.1.0/30`).
    pub fn subnets(&self) -> String {
        self.0
            .iter()
            .map(|r| r.subnet.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The validated host-local configuration plus the addresses this request asks for.
#[derive(Debug, Clone)]
pub struct HostLocalConfig {
    /// The network name: the lease directory under `data_dir`.
    pub name: String,
    pub ranges: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
    /// From CNI_ARGS `IP=`, `args.cni.ips` and `runtimeConfig.ips`, in that order, deduplicated.
    pub requested: Vec<IpAddr>,
}

#[derive(Debug, Default, Deserialize)]
struct RawRange {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default, rename = "rangeStart")]
    range_start: Option<String>,
    #[serde(default, rename = "rangeEnd")]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawIpam {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default, rename = "rangeStart")]
    range_start: Option<String>,
    #[serde(default, rename = "rangeEnd")]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    routes: Option<Vec<Route>>,
    #[serde(default, rename = "dataDir")]
    data_dir: Option<String>,
    #[serde(default, rename = "resolvConf")]
    resolv_conf: Option<String>,
    #[serde(default)]
    ranges: Option<Vec<Option<Vec<RawRange>>>>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl HostLocalConfig {
    /// Decode and validate the `ipam` section of `conf`, with the requested addresses from
    /// `env_args` (CNI_ARGS), `args.cni.ips` and `runtimeConfig.ips`.
    pub fn load(conf: &NetConf, env_args: &CniArgs) -> Result<HostLocalConfig, IpamError> {
        let ipam = conf.ipam.clone().ok_or(IpamError::Missing)?;
        if !ipam.is_object() {
            return Err(IpamError::Config(format!(
                "ipam: expected an object, got {ipam}"
            )));
        }
        let raw: RawIpam =
            from_value(ipam).map_err(|e| IpamError::Config(format!("ipam: {}", e.msg)))?;
        let requested = requested_ips(conf, env_args)?;

        let mut raw_sets: Vec<Vec<RawRange>> = Vec::new();
        if let Some(v) = conf
            .runtime_config_value("ipRanges")
            .filter(|v| !v.is_null())
        {
            let sets: Vec<Vec<RawRange>> = from_value(v.clone())
                .map_err(|e| IpamError::Config(format!("runtimeConfig.ipRanges: {}", e.msg)))?;
            raw_sets.extend(sets);
        }
        if nonempty(&raw.subnet).is_some() {
            raw_sets.push(vec![RawRange {
                subnet: raw.subnet.clone(),
                range_start: raw.range_start.clone(),
                range_end: raw.range_end.clone(),
                gateway: raw.gateway.clone(),
            }]);
        }
        raw_sets.extend(
            raw.ranges
                .unwrap_or_default()
                .into_iter()
                .map(Option::unwrap_or_default),
        );
        if raw_sets.is_empty() {
            return Err(IpamError::Config("ipam: no IP ranges specified".into()));
        }

        let mut ranges = Vec::with_capacity(raw_sets.len());
        for (i, set) in raw_sets.iter().enumerate() {
            let set = canonicalize_set(set)
                .map_err(|m| IpamError::Config(format!("ipam: invalid range set {i}: {m}")))?;
            ranges.push(set);
        }

        let version = conf.version().map_err(|e| IpamError::Config(e.msg))?;
        let v4 = ranges.iter().filter(|s| s.0[0].start.is_ipv4()).count();
        if (v4 > 1 || ranges.len() - v4 > 1) && version < CniVersion::V0_3_0 {
            return Err(IpamError::Config(format!(
                "CNI version {version} does not support more than 1 address per family"
            )));
        }
        for (i, a) in ranges.iter().enumerate() {
            for (j, b) in ranges.iter().enumerate().skip(i + 1) {
                if a.overlaps(b) {
                    return Err(IpamError::Config(format!(
                        "ipam: range set {i} overlaps with {j}"
                    )));
                }
            }
        }

        if conf.name.is_empty()
            || conf.name == "."
            || conf.name == ".."
            || conf.name.contains('/')
            || conf.name.contains('\0')
        {
            return Err(IpamError::Config(format!(
                "name {:?} cannot be used as the lease directory under dataDir",
                conf.name
            )));
        }
        let data_dir = nonempty(&raw.data_dir).unwrap_or(DEFAULT_DATA_DIR);
        Ok(HostLocalConfig {
            name: conf.name.clone(),
            ranges,
            routes: raw.routes.unwrap_or_default(),
            data_dir: PathBuf::from(data_dir),
            resolv_conf: nonempty(&raw.resolv_conf).map(PathBuf::from),
            requested,
        })
    }
}

/// CNI_ARGS `IP=` (a comma list), then `args.cni.ips`, then `runtimeConfig.ips`; each entry an
/// address or a CIDR (its address is used).
fn requested_ips(conf: &NetConf, env_args: &CniArgs) -> Result<Vec<IpAddr>, IpamError> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |ip: IpAddr| {
        if !out.contains(&ip) {
            out.push(ip);
        }
    };
    if let Some(raw) = env_args.get("IP") {
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ip = parse_ip_or_cidr(item).ok_or_else(|| {
                IpamError::Env(format!("CNI_ARGS IP: invalid IP address {item:?}"))
            })?;
            push(ip);
        }
    }
    let from_config = [
        ("args.cni.ips", args_cni_ips(conf.args.as_ref())?),
        (
            "runtimeConfig.ips",
            string_list(conf.runtime_config_value("ips"), "runtimeConfig.ips")?,
        ),
    ];
    for (field, list) in from_config {
        for item in list {
            let ip = parse_ip_or_cidr(&item).ok_or_else(|| {
                IpamError::Config(format!("{field}: invalid IP address {item:?}"))
            })?;
            push(ip);
        }
    }
    Ok(out)
}

fn canonicalize_set(raw: &[RawRange]) -> Result<RangeSet, String> {
    if raw.is_empty() {
        return Err("empty range set".into());
    }
    let ranges = raw
        .iter()
        .map(canonicalize_range)
        .collect::<Result<Vec<_>, _>>()?;
    if ranges
        .iter()
        .any(|r| r.start.is_ipv4() != ranges[0].start.is_ipv4())
    {
        return Err("mixed address families".into());
    }
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            if a.overlaps(b) {
                return Err(format!("subnets {a} and {b} overlap"));
            }
        }
    }
    Ok(RangeSet(ranges))
}

fn parse_field(field: &str, raw: &str) -> Result<IpAddr, String> {
    raw.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| format!("{field} {raw:?} is not an IP address"))
}

fn canonicalize_range(raw: &RawRange) -> Result<Range, String> {
    let subnet_raw = nonempty(&raw.subnet).ok_or("subnet is required")?;
    let subnet: IpNet = subnet_raw
        .parse()
        .map_err(|_| format!("subnet {subnet_raw:?} is not a CIDR"))?;
    let (ones, bits) = (subnet.prefix_len(), subnet.max_prefix_len());
    if ones > bits - 2 {
        return Err(format!("Network {subnet} too small to allocate from"));
    }
    if subnet.addr() != subnet.network() {
        return Err(format!(
            "Network has host bits set. For a subnet mask of length {ones} the network address is {}",
            subnet.network()
        ));
    }
    let first = u128_to_ip(ip_to_u128(subnet.network()) + 1, subnet.addr());
    let gateway = match nonempty(&raw.gateway) {
        None => first,
        Some(s) => {
            let gw = parse_field("gateway", s)?;
            if gw.is_ipv4() != subnet.addr().is_ipv4() {
                return Err(format!(
                    "gateway {gw} is not the same protocol as subnet {subnet}"
                ));
            }
            gw
        }
    };
    let in_subnet = |field: &str, ip: IpAddr| {
        if ip.is_ipv4() == subnet.addr().is_ipv4() && subnet.contains(&ip) {
            Ok(ip)
        } else {
            Err(format!("{field} {ip} not in network {subnet}"))
        }
    };
    let start = match nonempty(&raw.range_start) {
        None => first,
        Some(s) => in_subnet("RangeStart", parse_field("rangeStart", s)?)?,
    };
    let end = match nonempty(&raw.range_end) {
        None => {
            let last = ip_to_u128(subnet.broadcast());
            u128_to_ip(
                if subnet.addr().is_ipv4() {
                    last - 1
                } else {
                    last
                },
                subnet.addr(),
            )
        }
        Some(s) => {
            let end = in_subnet("RangeEnd", parse_field("rangeEnd", s)?)?;
            if ip_to_u128(end) < ip_to_u128(start) {
                return Err(format!(
                    "RangeEnd {end} not in network {subnet} (before RangeStart {start})"
                ));
            }
            end
        }
    };
    Ok(Range {
        subnet,
        start,
        end,
        gateway,
    })
}
