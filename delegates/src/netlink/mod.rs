//! A narrow, synchronous netlink interface ([`Netlink`]) bound to one network namespace, with the
//! real implementation over rtnetlink ([`RtNetlink`]) and an in-memory recording fake
//! ([`FakeNetlink`]) for unit-testing delegate logic without root.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;

use crate::netns::{NetnsError, SysctlError};

mod fake;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod netdevsim_fixture;
mod rt;
#[cfg(test)]
mod tests;
mod vf;
#[cfg(test)]
mod vf_tests;

pub use fake::{Call, FakeNetlink, FakeWorld};
pub use rt::RtNetlink;
pub use vf::{VF_QOS_MAX, VF_VLAN_MAX, VfConfig, VfLinkState, VfSetting, VlanProto};

/// Main routing table id.
pub const RT_TABLE_MAIN: u32 = 254;
/// Universe route scope (`RT_SCOPE_UNIVERSE`).
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// Link route scope (`RT_SCOPE_LINK`).
pub const RT_SCOPE_LINK: u8 = 253;
/// Host route scope (`RT_SCOPE_HOST`).
pub const RT_SCOPE_HOST: u8 = 254;
/// Maximum interface name length (`IFNAMSIZ - 1`).
pub const IFNAME_MAX_LEN: usize = 15;

/// Synchronous netlink operations. One instance is bound to ONE network namespace; names and
/// indexes are resolved in it.
pub trait Netlink: Send + Sync {
    /// Look a link up by name; `Ok(None)` when it does not exist.
    fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError>;
    /// Look a link up by index; `Ok(None)` when it does not exist.
    fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, NetlinkError>;
    /// Name of the output link of the IPv4 default route in the main table (falling back to
    /// IPv6); `Ok(None)` when there is none.
    fn default_route_link(&self) -> Result<Option<String>, NetlinkError>;
    /// Create a link, directly in `spec.target` under its final name when set.
    fn create_link(&self, spec: &NewLink) -> Result<(), NetlinkError>;
    /// Delete a link; `Ok(false)` if it did not exist.
    fn delete_link(&self, name: &str) -> Result<bool, NetlinkError>;
    /// Set a link administratively up.
    fn set_link_up(&self, name: &str) -> Result<(), NetlinkError>;
    /// Move a link into the netns at `target` and rename it to `new_name`, in one request.
    fn move_link(&self, name: &str, target: &Path, new_name: &str) -> Result<(), NetlinkError>;
    /// Add an address; an existing identical address is [`NetlinkError::AlreadyExists`].
    fn add_address(&self, ifname: &str, addr: IpNet) -> Result<(), NetlinkError>;
    /// Addresses of a link (both families).
    fn addresses(&self, ifname: &str) -> Result<Vec<AddressInfo>, NetlinkError>;
    /// Add a route, like `ip route add` without `NLM_F_EXCL` (what the reference plugins send):
    /// a route to the same destination through another gateway or device is added beside the
    /// existing one; only an identical route is [`NetlinkError::AlreadyExists`].
    fn add_route(&self, route: &RouteSpec) -> Result<(), NetlinkError>;
    /// Delete a route; a missing route is [`NetlinkError::NotFound`].
    fn delete_route(&self, route: &RouteSpec) -> Result<(), NetlinkError>;
    /// Unicast routes through `ifname` in any table, both families.
    fn routes(&self, ifname: &str) -> Result<Vec<RouteSpec>, NetlinkError>;
    /// Write `/proc/sys/<key>` from a thread inside this instance's netns.
    fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetlinkError>;
    /// [`Netlink::set_sysctl`] for each `(key, value)`, in order, one result each; the outer
    /// error when the netns cannot be entered (an implementation may enter it once for all).
    fn set_sysctls(
        &self,
        pairs: &[(String, &str)],
    ) -> Result<Vec<Result<(), NetlinkError>>, NetlinkError> {
        Ok(pairs
            .iter()
            .map(|(key, value)| self.set_sysctl(key, value))
            .collect())
    }
    /// Set a link administratively down.
    fn set_link_down(&self, name: &str) -> Result<(), NetlinkError>;
    /// Rename a link in place. Kernels up to 6.1 refuse to rename a link that is up (EBUSY),
    /// so bring it down first.
    fn rename_link(&self, name: &str, new_name: &str) -> Result<(), NetlinkError>;
    /// Set a link's MTU.
    fn set_link_mtu(&self, name: &str, mtu: u32) -> Result<(), NetlinkError>;
    /// Set a link's MAC address.
    fn set_link_mac(&self, name: &str, mac: MacAddr) -> Result<(), NetlinkError>;
    /// The VFs of PF `pf` as its driver reports them (`IFLA_VFINFO_LIST` of a link request
    /// with `IFLA_EXT_MASK` `RTEXT_FILTER_VF`), by index; empty when it has none.
    fn vfs(&self, pf: &str) -> Result<Vec<VfConfig>, NetlinkError>;
    /// Change one setting of VF `vf` through its PF `pf` (one `RTM_SETLINK`).
    fn set_vf(&self, pf: &str, vf: u32, setting: &VfSetting) -> Result<(), NetlinkError>;
}

/// Errors from [`Netlink`] operations. `op` is the trait method name, `what` names the link,
/// address or route (and the namespace).
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The object does not exist (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL).
    #[error("{op}: {what} not found (errno {errno})")]
    NotFound {
        op: &'static str,
        what: String,
        errno: i32,
    },
    /// The object already exists (EEXIST).
    #[error("{op}: {what} already exists")]
    AlreadyExists { op: &'static str, what: String },
    /// Any other kernel error.
    #[error("{op}: {what}: {message} (errno {errno})")]
    Other {
        op: &'static str,
        what: String,
        errno: i32,
        message: String,
    },
    /// The request was rejected before reaching the kernel.
    #[error("{op}: {what}: invalid request: {reason}")]
    Invalid {
        op: &'static str,
        what: String,
        reason: String,
    },
    /// Netlink protocol trouble (socket, unexpected or undecodable message).
    #[error("{op}: {what}: netlink protocol error: {message}")]
    Protocol {
        op: &'static str,
        what: String,
        message: String,
    },
    /// Opening or entering a namespace failed.
    #[error("{op}: {source}")]
    Netns {
        op: &'static str,
        #[source]
        source: NetnsError,
    },
    /// Writing a sysctl failed.
    #[error("{op}: {source}")]
    Sysctl {
        op: &'static str,
        #[source]
        source: SysctlError,
    },
}

impl NetlinkError {
    /// True for [`NetlinkError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for [`NetlinkError::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }

    /// True when the target network namespace does not exist.
    pub fn is_netns_not_found(&self) -> bool {
        matches!(self, Self::Netns { source, .. } if source.is_not_found())
    }

    /// True when a sysctl does not exist (e.g. IPv6 disabled).
    pub fn is_sysctl_not_found(&self) -> bool {
        matches!(self, Self::Sysctl { source, .. } if source.is_not_found())
    }

    /// The kernel errno, when the kernel reported one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::NotFound { errno, .. } | Self::Other { errno, .. } => Some(*errno),
            Self::AlreadyExists { .. } => Some(libc_eexist()),
            _ => None,
        }
    }

    /// The operation name.
    pub fn op(&self) -> &'static str {
        match self {
            Self::NotFound { op, .. }
            | Self::AlreadyExists { op, .. }
            | Self::Other { op, .. }
            | Self::Invalid { op, .. }
            | Self::Protocol { op, .. }
            | Self::Netns { op, .. }
            | Self::Sysctl { op, .. } => op,
        }
    }

    /// Map a kernel errno (positive) to a variant.
    pub fn from_errno(op: &'static str, what: impl Into<String>, errno: i32) -> Self {
        use nix::errno::Errno;
        let what = what.into();
        match Errno::from_raw(errno) {
            Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL => {
                Self::NotFound { op, what, errno }
            }
            Errno::EEXIST => Self::AlreadyExists { op, what },
            e => Self::Other {
                op,
                what,
                errno,
                message: e.desc().to_owned(),
            },
        }
    }
}

fn libc_eexist() -> i32 {
    nix::errno::Errno::EEXIST as i32
}

/// Check an interface name the way the kernel does (`dev_valid_name`).
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > IFNAME_MAX_LEN {
        return Err(format!(
            "interface name {name:?} is longer than {IFNAME_MAX_LEN} bytes"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is reserved"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "interface name {name:?} contains '/', ':' or whitespace"
        ));
    }
    Ok(())
}

/// A parse error for the mode/flag enums and [`MacAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?} (expected {expected})")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, default $def:ident, { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(
                #[doc = concat!("`", $s, "`")]
                #[serde(rename = $s)]
                $variant,
            )+
        }

        impl $name {
            /// All values.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The reference plugins' lower-case spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$def
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(ParseError {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($s, " "),+),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// macvlan mode (`mode` of the reference macvlan plugin). Default: bridge.
    MacvlanMode, "macvlan mode", default Bridge, {
    Private => "private",
    Vepa => "vepa",
    Bridge => "bridge",
    Passthru => "passthru",
    Source => "source",
});

string_enum!(
    /// ipvlan mode (`mode` of the reference ipvlan plugin). Default: l2.
    IpvlanMode, "ipvlan mode", default L2, {
    L2 => "l2",
    L3 => "l3",
    L3s => "l3s",
});

string_enum!(
    /// ipvlan flags (`linkFlags`-style: bridge, private, vepa). Default: bridge.
    IpvlanFlags, "ipvlan flag", default Bridge, {
    Bridge => "bridge",
    Private => "private",
    Vepa => "vepa",
});

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True if the group (multicast) bit is set (includes broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True if the locally-administered bit is set.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// True for an address usable as a unicast interface address (not zero, not multicast).
    pub fn is_valid_unicast(&self) -> bool {
        !self.is_zero() && !self.is_multicast()
    }

    /// Parse and require a unicast interface address.
    pub fn parse_unicast(s: &str) -> Result<Self, ParseError> {
        let mac: MacAddr = s.parse()?;
        if mac.is_valid_unicast() {
            Ok(mac)
        } else {
            Err(ParseError {
                what: "MAC address",
                value: s.to_owned(),
                expected: "a non-zero unicast address",
            })
        }
    }

    /// The octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError {
            what: "MAC address",
            value: s.to_owned(),
            expected: "aa:bb:cc:dd:ee:ff",
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl TryFrom<&[u8]> for MacAddr {
    type Error = ParseError;
    fn try_from(b: &[u8]) -> Result<Self, ParseError> {
        <[u8; 6]>::try_from(b).map(MacAddr).map_err(|_| ParseError {
            what: "MAC address",
            value: format!("{b:02x?}"),
            expected: "6 bytes",
        })
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A link as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` ("macvlan", "veth", ...); `None` for physical devices.
    pub kind: Option<String>,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up (operstate UP, or UNKNOWN with carrier).
    pub oper_up: bool,
    /// `IFLA_LINK`: the parent's index (in the parent's namespace).
    pub parent_index: Option<u32>,
    pub macvlan_mode: Option<MacvlanMode>,
    pub ipvlan_mode: Option<IpvlanMode>,
    pub ipvlan_flags: Option<IpvlanFlags>,
    pub max_mtu: Option<u32>,
    /// `IFLA_PARENT_DEV_NAME`: the bus device behind the link (a PCI address for a NIC or a
    /// VF); `None` for virtual links or when the kernel does not say.
    pub parent_device: Option<String>,
}

impl LinkInfo {
    /// A minimal link description (for seeding fakes).
    pub fn new(index: u32, name: impl Into<String>) -> Self {
        Self {
            index,
            name: name.into(),
            kind: None,
            mac: None,
            mtu: 1500,
            up: false,
            oper_up: false,
            parent_index: None,
            macvlan_mode: None,
            ipvlan_mode: None,
            ipvlan_flags: None,
            max_mtu: None,
            parent_device: None,
        }
    }
}

/// What kind of link to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLinkKind {
    Macvlan {
        /// Parent index, resolved in the netlink instance's namespace.
        parent_index: u32,
        mode: MacvlanMode,
        bc_queue_len: Option<u32>,
    },
    Ipvlan {
        /// Parent index, resolved in the netlink instance's namespace.
        parent_index: u32,
        mode: IpvlanMode,
        flags: IpvlanFlags,
    },
    /// A veth pair (tests and demos); the peer stays in the instance's namespace.
    Veth { peer_name: String },
}

impl NewLinkKind {
    /// `IFLA_INFO_KIND` string.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Self::Macvlan { .. } => "macvlan",
            Self::Ipvlan { .. } => "ipvlan",
            Self::Veth { .. } => "veth",
        }
    }

    /// The parent index, for kinds that have one.
    pub fn parent_index(&self) -> Option<u32> {
        match self {
            Self::Macvlan { parent_index, .. } | Self::Ipvlan { parent_index, .. } => {
                Some(*parent_index)
            }
            Self::Veth { .. } => None,
        }
    }
}

/// A link to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub name: String,
    pub kind: NewLinkKind,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// Netns path: the link is created directly in that netns under its final name
    /// (`IFLA_NET_NS_FD`). `None`: the instance's own netns.
    pub target: Option<PathBuf>,
}

impl NewLink {
    /// A link with no mtu, mac or target.
    pub fn new(name: impl Into<String>, kind: NewLinkKind) -> Self {
        Self {
            name: name.into(),
            kind,
            mtu: None,
            mac: None,
            target: None,
        }
    }
}

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressInfo {
    pub addr: IpNet,
    /// IPv6 duplicate address detection still in progress (`IFA_F_TENTATIVE`).
    pub tentative: bool,
}

/// A route. On add, a route with a gateway and no scope gets universe scope, one without a
/// gateway link scope (IPv4; IPv6 routes are always universe). `table: None` is the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<String>,
    pub mtu: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
}

impl RouteSpec {
    /// A route to `dst` with everything else unset.
    pub fn new(dst: IpNet) -> Self {
        Self {
            dst,
            gw: None,
            oif: None,
            mtu: None,
            priority: None,
            table: None,
            scope: None,
        }
    }

    /// Builder: gateway.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gw = Some(gw);
        self
    }

    /// Builder: output interface.
    pub fn dev(mut self, oif: impl Into<String>) -> Self {
        self.oif = Some(oif.into());
        self
    }

    /// The scope used when adding: explicit, else universe with a gateway (or for IPv6), else
    /// link.
    pub fn effective_scope(&self) -> u8 {
        match (self.scope, self.gw, self.dst) {
            (Some(s), _, _) => s,
            (None, _, IpNet::V6(_)) | (None, Some(_), _) => RT_SCOPE_UNIVERSE,
            (None, None, IpNet::V4(_)) => RT_SCOPE_LINK,
        }
    }

    /// The table used: explicit or main.
    pub fn effective_table(&self) -> u32 {
        self.table.unwrap_or(RT_TABLE_MAIN)
    }

    /// Human-readable description used in error messages (`ip route` style).
    pub fn describe(&self) -> String {
        let mut s = format!("route {}", self.dst);
        if let Some(gw) = self.gw {
            s.push_str(&format!(" via {gw}"));
        }
        if let Some(dev) = &self.oif {
            s.push_str(&format!(" dev {dev}"));
        }
        if let Some(t) = self.table {
            s.push_str(&format!(" table {t}"));
        }
        if let Some(p) = self.priority {
            s.push_str(&format!(" metric {p}"));
        }
        s
    }

    /// Check the family consistency of `dst` and `gw`.
    pub fn validate(&self) -> Result<(), String> {
        match (self.dst, self.gw) {
            (IpNet::V4(_), Some(IpAddr::V6(_))) | (IpNet::V6(_), Some(IpAddr::V4(_))) => Err(
                format!("gateway family differs from destination {}", self.dst),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod type_tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for m in MacvlanMode::ALL {
            assert_eq!(m.as_str().parse::<MacvlanMode>(), Ok(*m));
        }
        for m in IpvlanMode::ALL {
            assert_eq!(m.as_str().parse::<IpvlanMode>(), Ok(*m));
        }
        for m in IpvlanFlags::ALL {
            assert_eq!(m.as_str().parse::<IpvlanFlags>(), Ok(*m));
        }
        assert_eq!(MacvlanMode::default(), MacvlanMode::Bridge);
        assert_eq!(IpvlanMode::default(), IpvlanMode::L2);
        assert_eq!(IpvlanFlags::default(), IpvlanFlags::Bridge);
        assert_eq!("passthru".parse(), Ok(MacvlanMode::Passthru));
        assert_eq!("l3s".parse(), Ok(IpvlanMode::L3s));
        let e = "Bridge".parse::<MacvlanMode>().expect_err("case sensitive");
        assert!(e.to_string().contains("macvlan mode"), "{e}");
        assert!("l4".parse::<IpvlanMode>().is_err());
        let j = serde_json::to_string(&IpvlanMode::L3s).expect("ser");
        assert_eq!(j, "\"l3s\"");
        let m: MacvlanMode = serde_json::from_str("\"vepa\"").expect("de");
        assert_eq!(m, MacvlanMode::Vepa);
    }

    #[test]
    fn mac_parse_display() {
        let m: MacAddr = "AA:bb:0C:dd:ee:0f".parse().expect("parse");
        assert_eq!(m.0, [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]);
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:0f");
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "a:bb:cc:dd:ee:ff",
            "zz:bb:cc:dd:ee:ff",
            "aa-bb-cc-dd-ee-ff",
            "+a:bb:cc:dd:ee:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(m.is_local());
        assert!(
            !MacAddr::parse_unicast("02:00:00:00:00:01")
                .expect("ok")
                .is_multicast()
        );
        assert!(MacAddr::parse_unicast("01:00:5e:00:00:01").is_err());
        assert!(MacAddr::parse_unicast("00:00:00:00:00:00").is_err());
        assert!(MacAddr::parse_unicast("ff:ff:ff:ff:ff:ff").is_err());
        assert_eq!(
            MacAddr::try_from(&[1u8, 2, 3, 4, 5, 6][..]),
            Ok(MacAddr([1, 2, 3, 4, 5, 6]))
        );
        assert!(MacAddr::try_from(&[1u8, 2][..]).is_err());
        let j = serde_json::to_string(&m).expect("ser");
        assert_eq!(j, "\"aa:bb:0c:dd:ee:0f\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&j).expect("de"), m);
    }

    #[test]
    fn route_scope_defaults() {
        let v4: IpNet = "10.0.0.0/8".parse().expect("net");
        let v6: IpNet = "2001:db8::/64".parse().expect("net");
        assert_eq!(RouteSpec::new(v4).effective_scope(), RT_SCOPE_LINK);
        assert_eq!(
            RouteSpec::new(v4)
                .via("10.0.0.1".parse().expect("ip"))
                .effective_scope(),
            RT_SCOPE_UNIVERSE
        );
        assert_eq!(RouteSpec::new(v6).effective_scope(), RT_SCOPE_UNIVERSE);
        assert!(
            RouteSpec::new(v4)
                .via("::1".parse().expect("ip"))
                .validate()
                .is_err()
        );
        let d = RouteSpec::new(v4)
            .via("10.0.0.1".parse().expect("ip"))
            .dev("eth0")
            .describe();
        assert_eq!(d, "route 10.0.0.0/8 via 10.0.0.1 dev eth0");
    }

    #[test]
    fn ifname_validation_and_errno_mapping() {
        assert!(validate_ifname("eth0.100").is_ok());
        assert!(validate_ifname("").is_err());
        assert!(validate_ifname("0123456789abcdef").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(NetlinkError::from_errno("link", "link x", 19).is_not_found());
        assert!(NetlinkError::from_errno("create_link", "link x", 17).is_already_exists());
        let e = NetlinkError::from_errno("create_link", "link \"x\"", 22);
        assert_eq!(e.errno(), Some(22));
        assert!(e.to_string().contains("link \"x\""), "{e}");
    }
}
