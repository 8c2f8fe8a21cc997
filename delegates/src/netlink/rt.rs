//! The real [`Netlink`] implementation over rtnetlink.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use futures::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVeth, IpVlanFlags, IpVlanMode, LinkAttribute,
    LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, MacVlanMode, State,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{AddressMessageBuilder, Handle};

use super::{
    AddressInfo, IpvlanFlags, IpvlanMode, LinkInfo, MacAddr, MacvlanMode, NetlinkError, NewLink,
    NewLinkKind, RT_TABLE_MAIN, RouteSpec, validate_ifname,
};
use crate::netlink::Netlink;
use crate::netns::{NetNs, write_sysctl};

#[path = "rt_vf.rs"]
mod vf;

/// [`Netlink`] over an rtnetlink socket created inside one network namespace.
///
/// The socket is created on a short-lived thread inside the namespace (sockets stay bound to the
/// namespace they were created in) and then driven from the calling thread by a small
/// current-thread tokio runtime owned by the instance (`block_on` per call). Do not call it from
/// inside an async runtime (use `spawn_blocking`); such calls fail with
/// [`NetlinkError::Protocol`].
pub struct RtNetlink {
    /// Always `Some` until dropped (taken in `Drop` to shut down without blocking).
    rt: Option<tokio::runtime::Runtime>,
    handle: Handle,
    netns: NetNs,
    label: String,
}

impl std::fmt::Debug for RtNetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtNetlink")
            .field("netns", &self.label)
            .finish_non_exhaustive()
    }
}

enum Raw {
    Errno(i32),
    Protocol(String),
}

impl RtNetlink {
    /// Open a netlink connection in `netns` (`None`: the calling thread's namespace).
    pub fn open(netns: Option<&NetNs>) -> Result<Self, NetlinkError> {
        const OP: &str = "open";
        let label = match netns {
            Some(ns) => format!("netns {}", ns.path().display()),
            None => "current netns".to_owned(),
        };
        let proto = |message: String| NetlinkError::Protocol {
            op: OP,
            what: label.clone(),
            message,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| proto(format!("cannot build runtime: {e}")))?;
        let (ns, conn) = match netns {
            None => {
                let ns =
                    NetNs::current().map_err(|source| NetlinkError::Netns { op: OP, source })?;
                let _guard = rt.enter();
                (ns, rtnetlink::new_connection())
            }
            Some(ns) => {
                let rth = rt.handle().clone();
                let conn = ns
                    .run_in(move || {
                        let _guard = rth.enter();
                        rtnetlink::new_connection()
                    })
                    .map_err(|source| NetlinkError::Netns { op: OP, source })?;
                let ns = ns
                    .try_clone()
                    .map_err(|source| NetlinkError::Netns { op: OP, source })?;
                (ns, conn)
            }
        };
        let (conn, handle, _unsolicited) =
            conn.map_err(|e| proto(format!("cannot open netlink socket: {e}")))?;
        rt.spawn(conn);
        Ok(Self {
            rt: Some(rt),
            handle,
            netns: ns,
            label,
        })
    }

    /// The namespace this instance is bound to.
    pub fn netns(&self) -> &NetNs {
        &self.netns
    }

    fn link_what(&self, name: &str) -> String {
        format!("link {name:?} in {}", self.label)
    }

    /// Send one request and collect the inner messages of the reply.
    fn exec(
        &self,
        op: &'static str,
        what: impl FnOnce() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(NetlinkError::Protocol {
                op,
                what: what(),
                message: "RtNetlink called from inside an async runtime; use spawn_blocking".into(),
            });
        }
        let mut handle = self.handle.clone();
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let Some(rt) = &self.rt else {
            unreachable!("runtime is only taken in Drop")
        };
        let res = rt.block_on(async move {
            let mut resp = handle
                .request(req)
                .map_err(|e| Raw::Protocol(e.to_string()))?;
            let mut out = Vec::new();
            while let Some(m) = resp.next().await {
                match m.payload {
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    NetlinkPayload::Error(e) => {
                        if let Some(code) = e.code {
                            return Err(Raw::Errno(code.get().saturating_abs()));
                        }
                    }
                    NetlinkPayload::Done(d) if d.code < 0 => {
                        return Err(Raw::Errno(d.code.saturating_abs()));
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(Raw::Protocol("netlink buffer overrun".into()));
                    }
                    _ => {}
                }
            }
            Ok(out)
        });
        res.map_err(|raw| match raw {
            Raw::Errno(errno) => NetlinkError::from_errno(op, what(), errno),
            Raw::Protocol(message) => NetlinkError::Protocol {
                op,
                what: what(),
                message,
            },
        })
    }

    fn check_name(&self, op: &'static str, name: &str) -> Result<(), NetlinkError> {
        validate_ifname(name).map_err(|reason| NetlinkError::Invalid {
            op,
            what: self.link_what(name),
            reason,
        })
    }

    fn get_link(
        &self,
        op: &'static str,
        what: impl FnOnce() -> String,
        msg: LinkMessage,
    ) -> Result<Option<LinkInfo>, NetlinkError> {
        match self.exec(op, what, RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Index of an existing link, or NotFound naming it.
    fn index_of(&self, op: &'static str, name: &str) -> Result<u32, NetlinkError> {
        self.check_name(op, name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.get_link(op, || self.link_what(name), msg)?
            .map(|l| l.index)
            .ok_or_else(|| NetlinkError::NotFound {
                op,
                what: self.link_what(name),
                errno: nix::errno::Errno::ENODEV as i32,
            })
    }

    /// One RTM_SETLINK moving link `index` into `ns` under `name`.
    fn set_netns(
        &self,
        op: &'static str,
        what: &dyn Fn() -> String,
        index: u32,
        ns: &NetNs,
        name: &str,
    ) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        self.set_link(op, what, msg)
    }

    /// Best-effort: bring link `name` back from `target` into this instance's namespace.
    fn move_back(&self, target: &NetNs, name: &str) {
        let back = RtNetlink::open(Some(target)).and_then(|there| match there.link(name)? {
            Some(l) => there.set_netns(
                "move_link",
                &|| format!("link {name:?} back from netns {}", target.path().display()),
                l.index,
                &self.netns,
                name,
            ),
            None => Ok(()),
        });
        if let Err(e) = back {
            tracing::warn!(
                link = name,
                target = %target.path().display(),
                error = %e,
                "could not move link back after a failed move_link"
            );
        }
    }

    fn open_target(op: &'static str, path: &Path) -> Result<NetNs, NetlinkError> {
        NetNs::open(path).map_err(|source| NetlinkError::Netns { op, source })
    }

    fn dump_routes(
        &self,
        op: &'static str,
        what: impl FnOnce() -> String,
        family: AddressFamily,
    ) -> Result<Vec<RouteMessage>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        let msgs = self.exec(
            op,
            what,
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    fn route_message(
        &self,
        op: &'static str,
        route: &RouteSpec,
        delete: bool,
    ) -> Result<RouteMessage, NetlinkError> {
        let what = || format!("{} in {}", route.describe(), self.label);
        route.validate().map_err(|reason| NetlinkError::Invalid {
            op,
            what: what(),
            reason,
        })?;
        let dst = route.dst.trunc();
        let mut m = RouteMessage::default();
        m.header.address_family = match dst {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = dst.prefix_len();
        m.header.kind = RouteType::Unicast;
        let table = route.effective_table();
        m.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        if delete {
            m.header.protocol = RouteProtocol::Unspec;
            m.header.scope = route.scope.map_or(RouteScope::NoWhere, RouteScope::from);
        } else {
            m.header.protocol = RouteProtocol::Boot;
            m.header.scope = RouteScope::from(route.effective_scope());
        }
        m.attributes.push(RouteAttribute::Table(table));
        if dst.prefix_len() > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
        }
        if let Some(gw) = route.gw {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = &route.oif {
            let idx = self.index_of(op, oif)?;
            m.attributes.push(RouteAttribute::Oif(idx));
        }
        if let Some(p) = route.priority {
            m.attributes.push(RouteAttribute::Priority(p));
        }
        if let (Some(mtu), false) = (route.mtu, delete) {
            m.attributes
                .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
        }
        Ok(m)
    }

    /// Create a link of an arbitrary kind with no parameters (kernel feature probes).
    #[cfg(any(test, feature = "test-fixtures"))]
    pub(crate) fn create_link_of_kind(&self, name: &str, kind: &str) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(
                InfoKind::from(kind),
            )]));
        self.exec(
            "create_link",
            || format!("link {name:?} ({kind}) in {}", self.label),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}

impl Drop for RtNetlink {
    fn drop(&mut self) {
        // Never blocks, so dropping inside an async context does not panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Netlink for RtNetlink {
    fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        self.check_name("link", name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.get_link("link", || self.link_what(name), msg)
    }

    fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, NetlinkError> {
        if index == 0 {
            return Ok(None);
        }
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(
            "link_by_index",
            || format!("link index {index} in {}", self.label),
            msg,
        )
    }

    fn default_route_link(&self) -> Result<Option<String>, NetlinkError> {
        const OP: &str = "default_route_link";
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let routes =
                self.dump_routes(OP, || format!("default route in {}", self.label), family)?;
            let best = routes
                .iter()
                .filter(|r| {
                    r.header.destination_prefix_length == 0
                        && r.header.kind == RouteType::Unicast
                        && route_table(r) == RT_TABLE_MAIN
                })
                .filter_map(|r| route_oif(r).map(|oif| (route_priority(r), oif)))
                .min();
            if let Some((_, oif)) = best {
                return Ok(self.link_by_index(oif)?.map(|l| l.name));
            }
        }
        Ok(None)
    }

    fn create_link(&self, spec: &NewLink) -> Result<(), NetlinkError> {
        const OP: &str = "create_link";
        let target = spec
            .target
            .as_deref()
            .map(|p| Self::open_target(OP, p))
            .transpose()?;
        let where_ = match &spec.target {
            Some(p) => format!("netns {}", p.display()),
            None => self.label.clone(),
        };
        let what = || match spec.kind.parent_index() {
            Some(p) => format!(
                "link {:?} ({} on parent index {p} of {}) in {where_}",
                spec.name,
                spec.kind.kind_str(),
                self.label
            ),
            None => format!(
                "link {:?} ({}) in {where_}",
                spec.name,
                spec.kind.kind_str()
            ),
        };
        validate_ifname(&spec.name).map_err(|reason| NetlinkError::Invalid {
            op: OP,
            what: what(),
            reason,
        })?;
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(parent) = spec.kind.parent_index() {
            msg.attributes.push(LinkAttribute::Link(parent));
        }
        if let Some(ns) = &target {
            msg.attributes
                .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        }
        let (kind, data) = match &spec.kind {
            NewLinkKind::Macvlan {
                mode, bc_queue_len, ..
            } => {
                let mut d = vec![InfoMacVlan::Mode(macvlan_to_nl(*mode))];
                if let Some(q) = bc_queue_len {
                    d.push(InfoMacVlan::BcQueueLen(*q));
                }
                (InfoKind::MacVlan, InfoData::MacVlan(d))
            }
            NewLinkKind::Ipvlan { mode, flags, .. } => (
                InfoKind::IpVlan,
                InfoData::IpVlan(vec![
                    InfoIpVlan::Mode(ipvlan_mode_to_nl(*mode)),
                    InfoIpVlan::Flags(ipvlan_flags_to_nl(*flags)),
                ]),
            ),
            NewLinkKind::Veth { peer_name } => {
                validate_ifname(peer_name).map_err(|reason| NetlinkError::Invalid {
                    op: OP,
                    what: what(),
                    reason,
                })?;
                let mut peer = LinkMessage::default();
                peer.attributes
                    .push(LinkAttribute::IfName(peer_name.clone()));
                (InfoKind::Veth, InfoData::Veth(InfoVeth::Peer(peer)))
            }
        };
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(kind),
            NlLinkInfo::Data(data),
        ]));
        self.exec(
            OP,
            what,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        drop(target);
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        const OP: &str = "delete_link";
        self.check_name(OP, name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.exec(
            OP,
            || self.link_what(name),
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn set_link_up(&self, name: &str) -> Result<(), NetlinkError> {
        const OP: &str = "set_link_up";
        let mut msg = self.named(OP, name)?;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.set_link(OP, || self.link_what(name), msg)
    }

    fn move_link(&self, name: &str, target: &Path, new_name: &str) -> Result<(), NetlinkError> {
        const OP: &str = "move_link";
        let what = || {
            format!(
                "link {name:?} in {} -> {new_name:?} in netns {}",
                self.label,
                target.display()
            )
        };
        validate_ifname(new_name).map_err(|reason| NetlinkError::Invalid {
            op: OP,
            what: what(),
            reason,
        })?;
        let index = self.index_of(OP, name)?;
        let ns = Self::open_target(OP, target)?;
        match self.set_netns(OP, &what, index, &ns, new_name) {
            Err(e) if e.is_already_exists() => {
                // When only `new_name` clashes in the target, the kernel moves the link under its
                // old name and then fails the rename. Move it back so it is never left
                // half-named in the target.
                if matches!(self.link(name), Ok(None)) {
                    self.move_back(&ns, name);
                }
                Err(e)
            }
            r => r,
        }
    }

    fn add_address(&self, ifname: &str, addr: IpNet) -> Result<(), NetlinkError> {
        const OP: &str = "add_address";
        let index = self.index_of(OP, ifname)?;
        let msg = match addr {
            IpNet::V4(a) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(a.addr(), a.prefix_len())
                .build(),
            IpNet::V6(a) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(a.addr(), a.prefix_len())
                .build(),
        };
        self.exec(
            OP,
            || format!("address {addr} on {}", self.link_what(ifname)),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    fn addresses(&self, ifname: &str) -> Result<Vec<AddressInfo>, NetlinkError> {
        const OP: &str = "addresses";
        let index = self.index_of(OP, ifname)?;
        let mut req = AddressMessage::default();
        req.header.index = index;
        let msgs = self.exec(
            OP,
            || format!("addresses of {}", self.link_what(ifname)),
            RouteNetlinkMessage::GetAddress(req),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => parse_address(&a),
                _ => None,
            })
            .collect())
    }

    fn add_route(&self, route: &RouteSpec) -> Result<(), NetlinkError> {
        const OP: &str = "add_route";
        let msg = self.route_message(OP, route, false)?;
        self.exec(
            OP,
            || format!("{} in {}", route.describe(), self.label),
            RouteNetlinkMessage::NewRoute(msg),
            // no NLM_F_EXCL, like the reference plugins: a second network's default route is
            // added beside the first one instead of failing the ADD
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        )
        .map(drop)
    }

    fn delete_route(&self, route: &RouteSpec) -> Result<(), NetlinkError> {
        const OP: &str = "delete_route";
        let msg = self.route_message(OP, route, true)?;
        self.exec(
            OP,
            || format!("{} in {}", route.describe(), self.label),
            RouteNetlinkMessage::DelRoute(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map(drop)
    }

    fn routes(&self, ifname: &str) -> Result<Vec<RouteSpec>, NetlinkError> {
        const OP: &str = "routes";
        let index = self.index_of(OP, ifname)?;
        let msgs = self.dump_routes(
            OP,
            || format!("routes of {}", self.link_what(ifname)),
            AddressFamily::Unspec,
        )?;
        Ok(msgs
            .iter()
            .filter(|r| r.header.kind == RouteType::Unicast && route_oif(r) == Some(index))
            .filter_map(|r| parse_route(r, ifname))
            .collect())
    }

    fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetlinkError> {
        const OP: &str = "set_sysctl";
        self.netns
            .run_in(|| write_sysctl(key, value))
            .map_err(|source| NetlinkError::Netns { op: OP, source })?
            .map_err(|source| NetlinkError::Sysctl { op: OP, source })
    }

    fn set_sysctls(
        &self,
        pairs: &[(String, &str)],
    ) -> Result<Vec<Result<(), NetlinkError>>, NetlinkError> {
        const OP: &str = "set_sysctl";
        // One thread in the namespace for all of them: each entry would cost a thread spawn.
        let written = self
            .netns
            .run_in(|| {
                pairs
                    .iter()
                    .map(|(key, value)| write_sysctl(key, value))
                    .collect::<Vec<_>>()
            })
            .map_err(|source| NetlinkError::Netns { op: OP, source })?;
        Ok(written
            .into_iter()
            .map(|r| r.map_err(|source| NetlinkError::Sysctl { op: OP, source }))
            .collect())
    }

    fn set_link_down(&self, name: &str) -> Result<(), NetlinkError> {
        self.link_set_down(name)
    }

    fn rename_link(&self, name: &str, new_name: &str) -> Result<(), NetlinkError> {
        self.link_rename(name, new_name)
    }

    fn set_link_mtu(&self, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        self.link_set_mtu(name, mtu)
    }

    fn set_link_mac(&self, name: &str, mac: MacAddr) -> Result<(), NetlinkError> {
        self.link_set_mac(name, mac)
    }

    fn vfs(&self, pf: &str) -> Result<Vec<super::VfConfig>, NetlinkError> {
        self.pf_vfs(pf)
    }

    fn set_vf(&self, pf: &str, vf: u32, setting: &super::VfSetting) -> Result<(), NetlinkError> {
        self.pf_set_vf(pf, vf, setting)
    }
}

fn macvlan_to_nl(m: MacvlanMode) -> MacVlanMode {
    match m {
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

fn macvlan_from_nl(m: MacVlanMode) -> Option<MacvlanMode> {
    Some(match m {
        MacVlanMode::Private => MacvlanMode::Private,
        MacVlanMode::Vepa => MacvlanMode::Vepa,
        MacVlanMode::Bridge => MacvlanMode::Bridge,
        MacVlanMode::Passthrough => MacvlanMode::Passthru,
        MacVlanMode::Source => MacvlanMode::Source,
        _ => return None,
    })
}

fn ipvlan_mode_to_nl(m: IpvlanMode) -> IpVlanMode {
    match m {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
        IpvlanMode::L3s => IpVlanMode::L3S,
    }
}

fn ipvlan_mode_from_nl(m: IpVlanMode) -> Option<IpvlanMode> {
    Some(match m {
        IpVlanMode::L2 => IpvlanMode::L2,
        IpVlanMode::L3 => IpvlanMode::L3,
        IpVlanMode::L3S => IpvlanMode::L3s,
        _ => return None,
    })
}

fn ipvlan_flags_to_nl(f: IpvlanFlags) -> IpVlanFlags {
    match f {
        IpvlanFlags::Bridge => IpVlanFlags::empty(),
        IpvlanFlags::Private => IpVlanFlags::Private,
        IpvlanFlags::Vepa => IpVlanFlags::Vepa,
    }
}

fn ipvlan_flags_from_nl(f: IpVlanFlags) -> IpvlanFlags {
    if f.contains(IpVlanFlags::Private) {
        IpvlanFlags::Private
    } else if f.contains(IpVlanFlags::Vepa) {
        IpvlanFlags::Vepa
    } else {
        IpvlanFlags::Bridge
    }
}

fn parse_link(msg: LinkMessage) -> LinkInfo {
    let mut info = LinkInfo::new(msg.header.index, String::new());
    info.mtu = 0;
    info.up = msg.header.flags.contains(LinkFlags::Up);
    let lower_up = msg.header.flags.contains(LinkFlags::LowerUp);
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => info.name = n,
            LinkAttribute::Address(a) => info.mac = MacAddr::try_from(a.as_slice()).ok(),
            LinkAttribute::Mtu(m) => info.mtu = m,
            LinkAttribute::MaxMtu(m) => info.max_mtu = Some(m),
            LinkAttribute::Link(p) => info.parent_index = Some(p),
            LinkAttribute::ParentDevName(d) => info.parent_device = Some(d),
            LinkAttribute::OperState(s) => {
                info.oper_up = s == State::Up || (s == State::Unknown && lower_up && info.up);
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        NlLinkInfo::Kind(k) => info.kind = Some(k.to_string()),
                        NlLinkInfo::Data(InfoData::MacVlan(d)) => {
                            for x in d {
                                if let InfoMacVlan::Mode(m) = x {
                                    info.macvlan_mode = macvlan_from_nl(m);
                                }
                            }
                        }
                        NlLinkInfo::Data(InfoData::IpVlan(d)) => {
                            for x in d {
                                match x {
                                    InfoIpVlan::Mode(m) => {
                                        info.ipvlan_mode = ipvlan_mode_from_nl(m)
                                    }
                                    InfoIpVlan::Flags(f) => {
                                        info.ipvlan_flags = Some(ipvlan_flags_from_nl(f));
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    info
}

fn parse_address(a: &AddressMessage) -> Option<AddressInfo> {
    let mut local = None;
    let mut address = None;
    let mut tentative = a.header.flags.contains(AddressHeaderFlags::Tentative);
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => tentative |= f.contains(AddressFlags::Tentative),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let addr = IpNet::new(ip, a.header.prefix_len).ok()?;
    Some(AddressInfo { addr, tentative })
}

fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn route_priority(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

fn route_oif(r: &RouteMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        RouteAttribute::MultiPath(hops) => hops.first().map(|h| h.interface_index),
        _ => None,
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn parse_route(r: &RouteMessage, ifname: &str) -> Option<RouteSpec> {
    let unspecified: IpAddr = match r.header.address_family {
        AddressFamily::Inet => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut dst = unspecified;
    let mut spec = RouteSpec::new(IpNet::new(unspecified, 0).ok()?);
    for attr in &r.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = route_ip(a)?,
            RouteAttribute::Gateway(a) => spec.gw = route_ip(a),
            RouteAttribute::Priority(p) => spec.priority = Some(*p),
            RouteAttribute::Metrics(ms) => {
                for m in ms {
                    if let RouteMetric::Mtu(mtu) = m {
                        spec.mtu = Some(*mtu);
                    }
                }
            }
            _ => {}
        }
    }
    spec.dst = IpNet::new(dst, r.header.destination_prefix_length).ok()?;
    spec.oif = Some(ifname.to_owned());
    spec.table = Some(route_table(r));
    spec.scope = Some(u8::from(r.header.scope));
    Some(spec)
}
