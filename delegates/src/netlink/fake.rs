//! An in-memory [`Netlink`] with kernel-like semantics, shared by several instances through a
//! [`FakeWorld`], recording every call and supporting failure injection.
//!
//! Modelled: links per namespace (globally unique indexes except `lo` = 1 in every namespace),
//! creation directly into a target namespace, name clashes, veth peers and macvlan/ipvlan
//! children deleted with their peer/parent, moves (which bring the link down and flush its
//! addresses and routes), addresses, connected prefix routes of the addresses of up links,
//! IPv4 route checks (device up, gateway reachable), route deletion matching, per-namespace
//! sysctls (missing per-interface keys and disabled IPv6 give `SysctlError::NotFound`),
//! link down, rename (refused while up, as kernels up to 6.1 do), MTU and MAC changes,
//! SR-IOV PFs with VF settings ([`FakeWorld::add_pf`]), and physical links (those with a
//! `parent_device`) that go back to the host namespace, renamed `dev<index>` on a name clash,
//! when their namespace is removed. A path set with [`FakeWorld::set_host_path`] names the
//! host namespace as a `move_link` target.
//! Not modelled: IPv6 link-local autoconfiguration and DAD (addresses are never tentative),
//! deleting connected routes.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;
use nix::errno::Errno;

use super::{
    AddressInfo, LinkInfo, MacAddr, Netlink, NetlinkError, NewLink, NewLinkKind, RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RouteSpec, VfConfig, VfSetting, validate_ifname,
};
use crate::netns::{NetnsError, SysctlError};

#[path = "fake_vf.rs"]
mod vf;

/// One recorded [`Netlink`] call; `ns` is the namespace of the instance it was made on
/// (`None` = host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Link {
        ns: Option<PathBuf>,
        name: String,
    },
    LinkByIndex {
        ns: Option<PathBuf>,
        index: u32,
    },
    DefaultRouteLink {
        ns: Option<PathBuf>,
    },
    CreateLink {
        ns: Option<PathBuf>,
        spec: NewLink,
    },
    DeleteLink {
        ns: Option<PathBuf>,
        name: String,
    },
    SetLinkUp {
        ns: Option<PathBuf>,
        name: String,
    },
    MoveLink {
        ns: Option<PathBuf>,
        name: String,
        target: PathBuf,
        new_name: String,
    },
    AddAddress {
        ns: Option<PathBuf>,
        ifname: String,
        addr: IpNet,
    },
    Addresses {
        ns: Option<PathBuf>,
        ifname: String,
    },
    AddRoute {
        ns: Option<PathBuf>,
        route: RouteSpec,
    },
    DeleteRoute {
        ns: Option<PathBuf>,
        route: RouteSpec,
    },
    Routes {
        ns: Option<PathBuf>,
        ifname: String,
    },
    SetSysctl {
        ns: Option<PathBuf>,
        key: String,
        value: String,
    },
    SetLinkDown {
        ns: Option<PathBuf>,
        name: String,
    },
    RenameLink {
        ns: Option<PathBuf>,
        name: String,
        new_name: String,
    },
    SetLinkMtu {
        ns: Option<PathBuf>,
        name: String,
        mtu: u32,
    },
    SetLinkMac {
        ns: Option<PathBuf>,
        name: String,
        mac: MacAddr,
    },
    Vfs {
        ns: Option<PathBuf>,
        pf: String,
    },
    SetVf {
        ns: Option<PathBuf>,
        pf: String,
        vf: u32,
        setting: VfSetting,
    },
}

impl Call {
    /// The trait method name (as used by [`FakeWorld::fail_next`] and [`NetlinkError::op`]).
    pub fn op(&self) -> &'static str {
        match self {
            Self::Link { .. } => "link",
            Self::LinkByIndex { .. } => "link_by_index",
            Self::DefaultRouteLink { .. } => "default_route_link",
            Self::CreateLink { .. } => "create_link",
            Self::DeleteLink { .. } => "delete_link",
            Self::SetLinkUp { .. } => "set_link_up",
            Self::MoveLink { .. } => "move_link",
            Self::AddAddress { .. } => "add_address",
            Self::Addresses { .. } => "addresses",
            Self::AddRoute { .. } => "add_route",
            Self::DeleteRoute { .. } => "delete_route",
            Self::Routes { .. } => "routes",
            Self::SetSysctl { .. } => "set_sysctl",
            Self::SetLinkDown { .. } => "set_link_down",
            Self::RenameLink { .. } => "rename_link",
            Self::SetLinkMtu { .. } => "set_link_mtu",
            Self::SetLinkMac { .. } => "set_link_mac",
            Self::Vfs { .. } => "vfs",
            Self::SetVf { .. } => "set_vf",
        }
    }

    /// True for calls that change state (not lookups).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Self::Link { .. }
                | Self::LinkByIndex { .. }
                | Self::DefaultRouteLink { .. }
                | Self::Addresses { .. }
                | Self::Routes { .. }
                | Self::Vfs { .. }
        )
    }
}

#[derive(Debug, Clone)]
struct FakeLink {
    info: LinkInfo,
    addrs: Vec<AddressInfo>,
    peer_index: Option<u32>,
    /// The VFs of an SR-IOV PF (empty for anything else).
    vfs: Vec<VfConfig>,
}

#[derive(Debug, Default)]
struct FakeNs {
    links: Vec<FakeLink>,
    routes: Vec<RouteSpec>,
    sysctls: BTreeMap<String, String>,
    ipv6_disabled: bool,
}

impl FakeNs {
    fn with_lo() -> Self {
        let mut lo = LinkInfo::new(1, "lo");
        lo.mtu = 65536;
        lo.mac = Some(MacAddr([0; 6]));
        Self {
            links: vec![FakeLink {
                info: lo,
                addrs: Vec::new(),
                peer_index: None,
                vfs: Vec::new(),
            }],
            ..Self::default()
        }
    }

    fn by_name(&self, name: &str) -> Option<&FakeLink> {
        self.links.iter().find(|l| l.info.name == name)
    }

    fn by_name_mut(&mut self, name: &str) -> Option<&mut FakeLink> {
        self.links.iter_mut().find(|l| l.info.name == name)
    }

    /// Connected prefix routes of the addresses of up links.
    fn connected(&self) -> Vec<RouteSpec> {
        let mut out = Vec::new();
        for l in self.links.iter().filter(|l| l.info.up) {
            for a in &l.addrs {
                let mut r = RouteSpec::new(a.addr.trunc());
                r.oif = Some(l.info.name.clone());
                r.table = Some(RT_TABLE_MAIN);
                match a.addr {
                    IpNet::V4(_) => r.scope = Some(RT_SCOPE_LINK),
                    IpNet::V6(_) => {
                        r.scope = Some(RT_SCOPE_UNIVERSE);
                        r.priority = Some(256);
                    }
                }
                if a.addr.prefix_len() < a.addr.max_prefix_len() && !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }

    fn all_routes(&self) -> Vec<RouteSpec> {
        let mut v = self.connected();
        v.extend(self.routes.iter().cloned());
        v
    }
}

/// The shared in-memory model behind [`FakeNetlink`] instances; share it as
/// `Arc<Mutex<FakeWorld>>` ([`FakeWorld::shared`]). The host namespace (`None`) always exists.
#[derive(Debug)]
pub struct FakeWorld {
    namespaces: BTreeMap<Option<PathBuf>, FakeNs>,
    next_index: u32,
    calls: Vec<Call>,
    /// (op, calls of it still to let through, the error for the one after).
    failures: VecDeque<(String, usize, NetlinkError)>,
    /// A path that names the host namespace as a `move_link` target.
    host_path: Option<PathBuf>,
}

fn label(ns: &Option<PathBuf>) -> String {
    match ns {
        Some(p) => format!("netns {}", p.display()),
        None => "host netns".to_owned(),
    }
}

fn enodev(op: &'static str, what: String) -> NetlinkError {
    NetlinkError::from_errno(op, what, Errno::ENODEV as i32)
}

impl Default for FakeWorld {
    fn default() -> Self {
        let mut namespaces = BTreeMap::new();
        namespaces.insert(None, FakeNs::with_lo());
        Self {
            namespaces,
            next_index: 2,
            calls: Vec::new(),
            failures: VecDeque::new(),
            host_path: None,
        }
    }
}

impl FakeWorld {
    /// A world with only the host namespace (containing `lo`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new world, ready to share between [`FakeNetlink`] instances.
    pub fn shared() -> Arc<Mutex<FakeWorld>> {
        Arc::new(Mutex::new(Self::default()))
    }

    /// Create a namespace (with `lo`); no-op if it exists.
    pub fn add_netns(&mut self, path: impl AsRef<Path>) {
        self.namespaces
            .entry(Some(path.as_ref().to_path_buf()))
            .or_insert_with(FakeNs::with_lo);
    }

    /// Remove a namespace and everything in it; false if it did not exist.
    pub fn remove_netns(&mut self, path: impl AsRef<Path>) -> bool {
        let key = Some(path.as_ref().to_path_buf());
        let Some(mut ns) = self.namespaces.remove(&key) else {
            return false;
        };
        // Like the kernel: physical devices go back to the host, the rest is deleted (and
        // veth peers of links in a dying namespace go too).
        vf::return_physical_links(self, &mut ns);
        let gone: Vec<u32> = ns.links.iter().map(|l| l.info.index).collect();
        for idx in gone {
            remove_link_cascade(self, idx);
        }
        true
    }

    /// Whether a namespace exists.
    pub fn has_netns(&self, path: impl AsRef<Path>) -> bool {
        self.namespaces
            .contains_key(&Some(path.as_ref().to_path_buf()))
    }

    /// Seed a link (e.g. a host NIC) without recording a call; returns its index. `info.index`
    /// 0 allocates one. Panics if the namespace does not exist (test setup error).
    pub fn insert_link(&mut self, ns: Option<&Path>, mut info: LinkInfo) -> u32 {
        if info.index == 0 {
            info.index = self.next_index;
            self.next_index += 1;
        }
        let idx = info.index;
        self.next_index = self.next_index.max(idx.saturating_add(1));
        let key = ns.map(Path::to_path_buf);
        let Some(n) = self.namespaces.get_mut(&key) else {
            panic!("FakeWorld::insert_link: no namespace {}", label(&key));
        };
        n.links.push(FakeLink {
            info,
            addrs: Vec::new(),
            peer_index: None,
            vfs: Vec::new(),
        });
        idx
    }

    /// Seed an up physical-looking link `name` (mtu 1500, max mtu 9000, generated MAC);
    /// returns its index.
    pub fn add_link(&mut self, ns: Option<&Path>, name: &str) -> u32 {
        let mut info = LinkInfo::new(0, name);
        info.up = true;
        info.oper_up = true;
        info.max_mtu = Some(9000);
        info.index = self.next_index;
        info.mac = Some(gen_mac(info.index));
        self.insert_link(ns, info)
    }

    fn ns_mut(&mut self, ns: Option<&Path>) -> Option<&mut FakeNs> {
        self.namespaces.get_mut(&ns.map(Path::to_path_buf))
    }

    fn ns(&self, ns: Option<&Path>) -> Option<&FakeNs> {
        self.namespaces.get(&ns.map(Path::to_path_buf))
    }

    /// Modify a seeded link in place (e.g. set its mtu or bring it down).
    pub fn update_link(&mut self, ns: Option<&Path>, name: &str, f: impl FnOnce(&mut LinkInfo)) {
        if let Some(l) = self.ns_mut(ns).and_then(|n| n.by_name_mut(name)) {
            f(&mut l.info);
        }
    }

    /// Seed an address on a link without recording a call.
    pub fn seed_address(&mut self, ns: Option<&Path>, ifname: &str, addr: IpNet) {
        if let Some(l) = self.ns_mut(ns).and_then(|n| n.by_name_mut(ifname)) {
            l.addrs.push(AddressInfo {
                addr,
                tentative: false,
            });
        }
    }

    /// Seed a route (stored as given) without recording a call or checking it.
    pub fn seed_route(&mut self, ns: Option<&Path>, route: RouteSpec) {
        if let Some(n) = self.ns_mut(ns) {
            n.routes.push(route);
        }
    }

    /// Make `net/ipv6/...` sysctls missing in `ns`, as with IPv6 disabled.
    pub fn set_ipv6_disabled(&mut self, ns: Option<&Path>, disabled: bool) {
        if let Some(n) = self.ns_mut(ns) {
            n.ipv6_disabled = disabled;
        }
    }

    /// Links in `ns` (empty if it does not exist).
    pub fn links(&self, ns: Option<&Path>) -> Vec<LinkInfo> {
        self.ns(ns)
            .map(|n| n.links.iter().map(|l| l.info.clone()).collect())
            .unwrap_or_default()
    }

    /// One link of `ns`.
    pub fn link(&self, ns: Option<&Path>, name: &str) -> Option<LinkInfo> {
        self.ns(ns)
            .and_then(|n| n.by_name(name))
            .map(|l| l.info.clone())
    }

    /// Addresses of a link of `ns`.
    pub fn addresses_of(&self, ns: Option<&Path>, name: &str) -> Vec<AddressInfo> {
        self.ns(ns)
            .and_then(|n| n.by_name(name))
            .map(|l| l.addrs.clone())
            .unwrap_or_default()
    }

    /// All routes of `ns`: connected ones first, then added/seeded ones.
    pub fn routes_in(&self, ns: Option<&Path>) -> Vec<RouteSpec> {
        self.ns(ns).map(FakeNs::all_routes).unwrap_or_default()
    }

    /// A sysctl value written in `ns`.
    pub fn sysctl(&self, ns: Option<&Path>, key: &str) -> Option<String> {
        self.ns(ns).and_then(|n| n.sysctls.get(key).cloned())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.clone()
    }

    /// Calls that changed state, in order.
    pub fn mutations(&self) -> Vec<Call> {
        self.calls
            .iter()
            .filter(|c| c.is_mutation())
            .cloned()
            .collect()
    }

    /// Forget the recorded calls.
    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }

    /// Make the next call of `op` (a trait method name such as `"create_link"`) fail with
    /// `error` without changing state. Several injections queue up in order.
    pub fn fail_next(&mut self, op: &str, error: NetlinkError) {
        self.fail_nth(op, 0, error);
    }

    /// Let `skip` more calls of `op` through, then fail the next one with `error` (without
    /// changing state).
    pub fn fail_nth(&mut self, op: &str, skip: usize, error: NetlinkError) {
        self.failures.push_back((op.to_owned(), skip, error));
    }
}

fn gen_mac(index: u32) -> MacAddr {
    let b = index.to_be_bytes();
    MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
}

/// Remove link `index` from wherever it is, plus its veth peer and macvlan/ipvlan children.
fn remove_link_cascade(st: &mut FakeWorld, index: u32) {
    let mut todo = vec![index];
    while let Some(idx) = todo.pop() {
        for ns in st.namespaces.values_mut() {
            if let Some(pos) = ns
                .links
                .iter()
                .position(|l| l.info.index == idx && idx != 1)
            {
                let l = ns.links.remove(pos);
                ns.routes
                    .retain(|r| r.oif.as_deref() != Some(l.info.name.as_str()));
                if let Some(p) = l.peer_index {
                    todo.push(p);
                }
            }
        }
        for ns in st.namespaces.values() {
            for l in &ns.links {
                let child = matches!(l.info.kind.as_deref(), Some("macvlan" | "ipvlan"));
                if child && l.info.parent_index == Some(idx) {
                    todo.push(l.info.index);
                }
            }
        }
    }
}

/// A [`Netlink`] over a shared [`FakeWorld`], bound to one namespace.
#[derive(Debug, Clone)]
pub struct FakeNetlink {
    world: Arc<Mutex<FakeWorld>>,
    ns: Option<PathBuf>,
}

impl FakeNetlink {
    /// An instance bound to `ns` (`None` = host).
    pub fn new(world: Arc<Mutex<FakeWorld>>, ns: Option<PathBuf>) -> Self {
        Self { world, ns }
    }

    /// An instance bound to `ns` (`None` = host) over a shared world.
    pub fn bind(world: &Arc<Mutex<FakeWorld>>, ns: Option<&Path>) -> Self {
        Self::new(Arc::clone(world), ns.map(Path::to_path_buf))
    }

    /// The shared world.
    pub fn world(&self) -> &Arc<Mutex<FakeWorld>> {
        &self.world
    }

    /// Record `call`, apply any injected failure, then run `f` on the state.
    fn op<T>(
        &self,
        call: Call,
        f: impl FnOnce(&mut FakeWorld, &Option<PathBuf>) -> Result<T, NetlinkError>,
    ) -> Result<T, NetlinkError> {
        let mut guard = self.world.lock().unwrap_or_else(PoisonError::into_inner);
        let st = &mut *guard;
        let op = call.op();
        st.calls.push(call);
        if let Some(pos) = st.failures.iter().position(|(o, _, _)| o == op) {
            match &mut st.failures[pos].1 {
                0 => {
                    if let Some((_, _, err)) = st.failures.remove(pos) {
                        return Err(err);
                    }
                }
                skip => *skip -= 1,
            }
        }
        if !st.namespaces.contains_key(&self.ns) {
            return Err(NetlinkError::Netns {
                op,
                source: NetnsError::NotFound {
                    path: self.ns.clone().unwrap_or_default(),
                },
            });
        }
        f(st, &self.ns)
    }
}

fn ns_of<'a>(st: &'a mut FakeWorld, ns: &Option<PathBuf>) -> &'a mut FakeNs {
    st.namespaces
        .get_mut(ns)
        .unwrap_or_else(|| unreachable!("namespace checked in FakeNetlink::op"))
}

fn link_what(ns: &Option<PathBuf>, name: &str) -> String {
    format!("link {name:?} in {}", label(ns))
}

fn check_name(op: &'static str, ns: &Option<PathBuf>, name: &str) -> Result<(), NetlinkError> {
    validate_ifname(name).map_err(|reason| NetlinkError::Invalid {
        op,
        what: link_what(ns, name),
        reason,
    })
}

/// Normalize a route the way the kernel reports it back.
fn normalize(route: &RouteSpec) -> RouteSpec {
    let mut r = route.clone();
    r.dst = route.dst.trunc();
    r.scope = Some(route.effective_scope());
    r.table = Some(route.effective_table());
    if r.priority.is_none() && matches!(r.dst, IpNet::V6(_)) {
        r.priority = Some(1024);
    }
    r
}

fn route_matches(have: &RouteSpec, want: &RouteSpec) -> bool {
    have.dst == want.dst.trunc()
        && have.table.unwrap_or(RT_TABLE_MAIN) == want.effective_table()
        && (want.gw.is_none() || have.gw == want.gw)
        && (want.oif.is_none() || have.oif == want.oif)
        && (want.priority.is_none() || have.priority == want.priority)
}

impl Netlink for FakeNetlink {
    fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        let call = Call::Link {
            ns: self.ns.clone(),
            name: name.to_owned(),
        };
        self.op(call, |st, ns| {
            check_name("link", ns, name)?;
            Ok(ns_of(st, ns).by_name(name).map(|l| l.info.clone()))
        })
    }

    fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, NetlinkError> {
        let call = Call::LinkByIndex {
            ns: self.ns.clone(),
            index,
        };
        self.op(call, |st, ns| {
            Ok(ns_of(st, ns)
                .links
                .iter()
                .find(|l| l.info.index == index)
                .map(|l| l.info.clone()))
        })
    }

    fn default_route_link(&self) -> Result<Option<String>, NetlinkError> {
        let call = Call::DefaultRouteLink {
            ns: self.ns.clone(),
        };
        self.op(call, |st, ns| {
            let n = ns_of(st, ns);
            let routes = n.all_routes();
            for v4 in [true, false] {
                let best = routes
                    .iter()
                    .filter(|r| {
                        r.dst.prefix_len() == 0
                            && matches!(r.dst, IpNet::V4(_)) == v4
                            && r.table.unwrap_or(RT_TABLE_MAIN) == RT_TABLE_MAIN
                    })
                    .filter_map(|r| r.oif.clone().map(|o| (r.priority.unwrap_or(0), o)))
                    .min();
                if let Some((_, oif)) = best {
                    return Ok(Some(oif));
                }
            }
            Ok(None)
        })
    }

    fn create_link(&self, spec: &NewLink) -> Result<(), NetlinkError> {
        const OP: &str = "create_link";
        let call = Call::CreateLink {
            ns: self.ns.clone(),
            spec: spec.clone(),
        };
        self.op(call, |st, ns| {
            let target = match &spec.target {
                Some(p) => Some(p.clone()),
                None => ns.clone(),
            };
            let what = || {
                format!(
                    "link {:?} ({}) in {}",
                    spec.name,
                    spec.kind.kind_str(),
                    label(&target)
                )
            };
            validate_ifname(&spec.name).map_err(|reason| NetlinkError::Invalid {
                op: OP,
                what: what(),
                reason,
            })?;
            if !st.namespaces.contains_key(&target) {
                return Err(NetlinkError::Netns {
                    op: OP,
                    source: NetnsError::NotFound {
                        path: target.clone().unwrap_or_default(),
                    },
                });
            }
            let parent = match spec.kind.parent_index() {
                Some(p) => Some(
                    ns_of(st, ns)
                        .links
                        .iter()
                        .find(|l| l.info.index == p)
                        .map(|l| l.info.clone())
                        .ok_or_else(|| enodev(OP, format!("{} (parent index {p})", what())))?,
                ),
                None => None,
            };
            if ns_of(st, &target).by_name(&spec.name).is_some() {
                return Err(NetlinkError::AlreadyExists {
                    op: OP,
                    what: what(),
                });
            }
            if let Some(mac) = spec.mac
                && !mac.is_valid_unicast()
            {
                return Err(NetlinkError::from_errno(
                    OP,
                    what(),
                    Errno::EADDRNOTAVAIL as i32,
                ));
            }
            if let (Some(mtu), Some(p)) = (spec.mtu, &parent)
                && mtu > p.mtu
            {
                return Err(NetlinkError::from_errno(OP, what(), Errno::EINVAL as i32));
            }
            let index = st.next_index;
            st.next_index += 1;
            let mut info = LinkInfo::new(index, spec.name.clone());
            info.kind = Some(spec.kind.kind_str().to_owned());
            info.mac = Some(spec.mac.unwrap_or_else(|| gen_mac(index)));
            info.mtu = spec.mtu.or(parent.as_ref().map(|p| p.mtu)).unwrap_or(1500);
            info.parent_index = parent.as_ref().map(|p| p.index);
            info.max_mtu = parent.as_ref().and_then(|p| p.max_mtu);
            let mut peer = None;
            match &spec.kind {
                NewLinkKind::Macvlan { mode, .. } => info.macvlan_mode = Some(*mode),
                NewLinkKind::Ipvlan { mode, flags, .. } => {
                    info.ipvlan_mode = Some(*mode);
                    info.ipvlan_flags = Some(*flags);
                    info.mac = parent.as_ref().and_then(|p| p.mac).or(info.mac);
                }
                NewLinkKind::Veth { peer_name } => {
                    validate_ifname(peer_name).map_err(|reason| NetlinkError::Invalid {
                        op: OP,
                        what: what(),
                        reason,
                    })?;
                    if ns_of(st, ns).by_name(peer_name).is_some()
                        || (target == *ns && *peer_name == spec.name)
                    {
                        return Err(NetlinkError::AlreadyExists {
                            op: OP,
                            what: link_what(ns, peer_name),
                        });
                    }
                    let pidx = st.next_index;
                    st.next_index += 1;
                    let mut p = LinkInfo::new(pidx, peer_name.clone());
                    p.kind = Some("veth".into());
                    p.mac = Some(gen_mac(pidx));
                    p.mtu = info.mtu;
                    peer = Some(FakeLink {
                        info: p,
                        addrs: Vec::new(),
                        peer_index: Some(index),
                        vfs: Vec::new(),
                    });
                }
            }
            let peer_index = peer.as_ref().map(|p| p.info.index);
            if let Some(p) = peer {
                ns_of(st, ns).links.push(p);
            }
            ns_of(st, &target).links.push(FakeLink {
                info,
                addrs: Vec::new(),
                peer_index,
                vfs: Vec::new(),
            });
            Ok(())
        })
    }

    fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let call = Call::DeleteLink {
            ns: self.ns.clone(),
            name: name.to_owned(),
        };
        self.op(call, |st, ns| {
            check_name("delete_link", ns, name)?;
            let Some(idx) = ns_of(st, ns).by_name(name).map(|l| l.info.index) else {
                return Ok(false);
            };
            if idx == 1 {
                return Err(NetlinkError::from_errno(
                    "delete_link",
                    link_what(ns, name),
                    Errno::EOPNOTSUPP as i32,
                ));
            }
            remove_link_cascade(st, idx);
            Ok(true)
        })
    }

    fn set_link_up(&self, name: &str) -> Result<(), NetlinkError> {
        let call = Call::SetLinkUp {
            ns: self.ns.clone(),
            name: name.to_owned(),
        };
        self.op(call, |st, ns| {
            check_name("set_link_up", ns, name)?;
            let l = ns_of(st, ns)
                .by_name_mut(name)
                .ok_or_else(|| enodev("set_link_up", link_what(ns, name)))?;
            l.info.up = true;
            l.info.oper_up = true;
            Ok(())
        })
    }

    fn move_link(&self, name: &str, target: &Path, new_name: &str) -> Result<(), NetlinkError> {
        const OP: &str = "move_link";
        let call = Call::MoveLink {
            ns: self.ns.clone(),
            name: name.to_owned(),
            target: target.to_path_buf(),
            new_name: new_name.to_owned(),
        };
        self.op(call, |st, ns| {
            let tkey = st.netns_key(target);
            let what = || {
                format!(
                    "{} -> {new_name:?} in netns {}",
                    link_what(ns, name),
                    target.display()
                )
            };
            check_name(OP, ns, name)?;
            validate_ifname(new_name).map_err(|reason| NetlinkError::Invalid {
                op: OP,
                what: what(),
                reason,
            })?;
            if ns_of(st, ns).by_name(name).is_none() {
                return Err(enodev(OP, link_what(ns, name)));
            }
            let Some(tns) = st.namespaces.get(&tkey) else {
                return Err(NetlinkError::Netns {
                    op: OP,
                    source: NetnsError::NotFound {
                        path: target.to_path_buf(),
                    },
                });
            };
            if tns.by_name(new_name).is_some() {
                return Err(NetlinkError::AlreadyExists {
                    op: OP,
                    what: what(),
                });
            }
            let src = ns_of(st, ns);
            let Some(pos) = src.links.iter().position(|l| l.info.name == name) else {
                return Err(enodev(OP, link_what(ns, name)));
            };
            let mut l = src.links.remove(pos);
            src.routes.retain(|r| r.oif.as_deref() != Some(name));
            l.addrs.clear();
            l.info.up = false;
            l.info.oper_up = false;
            l.info.name = new_name.to_owned();
            ns_of(st, &tkey).links.push(l);
            Ok(())
        })
    }

    fn add_address(&self, ifname: &str, addr: IpNet) -> Result<(), NetlinkError> {
        const OP: &str = "add_address";
        let call = Call::AddAddress {
            ns: self.ns.clone(),
            ifname: ifname.to_owned(),
            addr,
        };
        self.op(call, |st, ns| {
            check_name(OP, ns, ifname)?;
            let what = || format!("address {addr} on {}", link_what(ns, ifname));
            let l = ns_of(st, ns)
                .by_name_mut(ifname)
                .ok_or_else(|| enodev(OP, link_what(ns, ifname)))?;
            if l.addrs.iter().any(|a| a.addr == addr) {
                return Err(NetlinkError::AlreadyExists {
                    op: OP,
                    what: what(),
                });
            }
            l.addrs.push(AddressInfo {
                addr,
                tentative: false,
            });
            Ok(())
        })
    }

    fn addresses(&self, ifname: &str) -> Result<Vec<AddressInfo>, NetlinkError> {
        let call = Call::Addresses {
            ns: self.ns.clone(),
            ifname: ifname.to_owned(),
        };
        self.op(call, |st, ns| {
            check_name("addresses", ns, ifname)?;
            ns_of(st, ns)
                .by_name(ifname)
                .map(|l| l.addrs.clone())
                .ok_or_else(|| enodev("addresses", link_what(ns, ifname)))
        })
    }

    fn add_route(&self, route: &RouteSpec) -> Result<(), NetlinkError> {
        const OP: &str = "add_route";
        let call = Call::AddRoute {
            ns: self.ns.clone(),
            route: route.clone(),
        };
        self.op(call, |st, ns| {
            let what = || format!("{} in {}", route.describe(), label(ns));
            route.validate().map_err(|reason| NetlinkError::Invalid {
                op: OP,
                what: what(),
                reason,
            })?;
            let n = ns_of(st, ns);
            let mut r = normalize(route);
            if let Some(oif) = &route.oif {
                let l = n
                    .by_name(oif)
                    .ok_or_else(|| enodev(OP, link_what(ns, oif)))?;
                if matches!(r.dst, IpNet::V4(_)) && !l.info.up {
                    return Err(NetlinkError::from_errno(OP, what(), Errno::ENETDOWN as i32));
                }
            }
            let connected = n.connected();
            if let (Some(IpAddr::V4(gw)), IpNet::V4(_)) = (route.gw, r.dst)
                && route.scope.is_none()
            {
                let via = connected.iter().find(|c| {
                    c.dst.contains(&IpAddr::V4(gw)) && (route.oif.is_none() || c.oif == route.oif)
                });
                match via {
                    Some(c) => {
                        if r.oif.is_none() {
                            r.oif.clone_from(&c.oif);
                        }
                    }
                    None => {
                        return Err(NetlinkError::from_errno(
                            OP,
                            what(),
                            Errno::ENETUNREACH as i32,
                        ));
                    }
                }
            }
            // no NLM_F_EXCL: only an identical route clashes (see the trait's add_route)
            let clash = n.all_routes().iter().any(|h| {
                h.dst == r.dst
                    && h.table == r.table
                    && h.priority.unwrap_or(0) == r.priority.unwrap_or(0)
                    && h.oif == r.oif
                    && h.gw == r.gw
            });
            if clash {
                return Err(NetlinkError::AlreadyExists {
                    op: OP,
                    what: what(),
                });
            }
            n.routes.push(r);
            Ok(())
        })
    }

    fn delete_route(&self, route: &RouteSpec) -> Result<(), NetlinkError> {
        const OP: &str = "delete_route";
        let call = Call::DeleteRoute {
            ns: self.ns.clone(),
            route: route.clone(),
        };
        self.op(call, |st, ns| {
            let what = || format!("{} in {}", route.describe(), label(ns));
            let n = ns_of(st, ns);
            if let Some(oif) = &route.oif
                && n.by_name(oif).is_none()
            {
                return Err(enodev(OP, link_what(ns, oif)));
            }
            match n.routes.iter().position(|h| route_matches(h, route)) {
                Some(pos) => {
                    n.routes.remove(pos);
                    Ok(())
                }
                None => Err(NetlinkError::from_errno(OP, what(), Errno::ESRCH as i32)),
            }
        })
    }

    fn routes(&self, ifname: &str) -> Result<Vec<RouteSpec>, NetlinkError> {
        let call = Call::Routes {
            ns: self.ns.clone(),
            ifname: ifname.to_owned(),
        };
        self.op(call, |st, ns| {
            check_name("routes", ns, ifname)?;
            let n = ns_of(st, ns);
            if n.by_name(ifname).is_none() {
                return Err(enodev("routes", link_what(ns, ifname)));
            }
            Ok(n.all_routes()
                .into_iter()
                .filter(|r| r.oif.as_deref() == Some(ifname))
                .collect())
        })
    }

    fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetlinkError> {
        const OP: &str = "set_sysctl";
        let call = Call::SetSysctl {
            ns: self.ns.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.op(call, |st, ns| {
            let n = ns_of(st, ns);
            let parts: Vec<&str> = key.split('/').collect();
            if key.is_empty()
                || key.starts_with('/')
                || parts
                    .iter()
                    .any(|p| p.is_empty() || *p == "." || *p == "..")
            {
                return Err(NetlinkError::Sysctl {
                    op: OP,
                    source: SysctlError::InvalidKey {
                        key: key.to_owned(),
                    },
                });
            }
            let missing = (n.ipv6_disabled && parts.get(1) == Some(&"ipv6"))
                || match parts.as_slice() {
                    ["net", "ipv4" | "ipv6", "conf" | "neigh", ifname, _] => {
                        !matches!(*ifname, "all" | "default") && n.by_name(ifname).is_none()
                    }
                    _ => false,
                };
            if missing {
                return Err(NetlinkError::Sysctl {
                    op: OP,
                    source: SysctlError::NotFound {
                        key: key.to_owned(),
                    },
                });
            }
            n.sysctls.insert(key.to_owned(), value.to_owned());
            Ok(())
        })
    }

    fn set_link_down(&self, name: &str) -> Result<(), NetlinkError> {
        let call = Call::SetLinkDown {
            ns: self.ns.clone(),
            name: name.to_owned(),
        };
        self.op(call, |st, ns| vf::set_link_down(st, ns, name))
    }

    fn rename_link(&self, name: &str, new_name: &str) -> Result<(), NetlinkError> {
        let call = Call::RenameLink {
            ns: self.ns.clone(),
            name: name.to_owned(),
            new_name: new_name.to_owned(),
        };
        self.op(call, |st, ns| vf::rename_link(st, ns, name, new_name))
    }

    fn set_link_mtu(&self, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        let call = Call::SetLinkMtu {
            ns: self.ns.clone(),
            name: name.to_owned(),
            mtu,
        };
        self.op(call, |st, ns| vf::set_link_mtu(st, ns, name, mtu))
    }

    fn set_link_mac(&self, name: &str, mac: MacAddr) -> Result<(), NetlinkError> {
        let call = Call::SetLinkMac {
            ns: self.ns.clone(),
            name: name.to_owned(),
            mac,
        };
        self.op(call, |st, ns| vf::set_link_mac(st, ns, name, mac))
    }

    fn vfs(&self, pf: &str) -> Result<Vec<VfConfig>, NetlinkError> {
        let call = Call::Vfs {
            ns: self.ns.clone(),
            pf: pf.to_owned(),
        };
        self.op(call, |st, ns| vf::vfs(st, ns, pf))
    }

    fn set_vf(&self, pf: &str, vf: u32, setting: &VfSetting) -> Result<(), NetlinkError> {
        let call = Call::SetVf {
            ns: self.ns.clone(),
            pf: pf.to_owned(),
            vf,
            setting: *setting,
        };
        self.op(call, |st, ns| vf::set_vf(st, ns, pf, vf, setting))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{IpvlanFlags, IpvlanMode, MacvlanMode};
    use super::*;

    fn lock(w: &Arc<Mutex<FakeWorld>>) -> std::sync::MutexGuard<'_, FakeWorld> {
        w.lock().expect("world lock")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    fn macvlan(name: &str, parent: u32, target: Option<&Path>) -> NewLink {
        let mut l = NewLink::new(
            name,
            NewLinkKind::Macvlan {
                parent_index: parent,
                mode: MacvlanMode::Bridge,
                bc_queue_len: None,
            },
        );
        l.target = target.map(Path::to_path_buf);
        l
    }

    #[test]
    fn create_into_target_and_clash() {
        let w = FakeWorld::shared();
        let eth0 = lock(&w).add_link(None, "eth0");
        let pod = Path::new("/run/netns/pod");
        lock(&w).add_netns(pod);
        let host = FakeNetlink::bind(&w, None);
        let mut spec = macvlan("net1", eth0, Some(pod));
        spec.mtu = Some(1400);
        spec.mac = Some("02:00:00:00:00:09".parse().expect("mac"));
        host.create_link(&spec).expect("create");
        assert!(host.link("net1").expect("lookup").is_none(), "not in host");
        let podnl = FakeNetlink::bind(&w, Some(pod));
        let l = podnl.link("net1").expect("lookup").expect("exists");
        assert_eq!(l.kind.as_deref(), Some("macvlan"));
        assert_eq!(l.mtu, 1400);
        assert_eq!(l.parent_index, Some(eth0));
        assert_eq!(l.macvlan_mode, Some(MacvlanMode::Bridge));
        assert_eq!(l.mac, spec.mac);
        assert_eq!(podnl.link_by_index(l.index).expect("idx"), Some(l.clone()));
        assert!(podnl.link("lo").expect("lo").is_some());
        let err = host.create_link(&spec).expect_err("clash");
        assert!(err.is_already_exists(), "{err}");
        assert!(err.to_string().contains("net1"), "{err}");
        // Parent missing / target missing / mtu above parent.
        let err = host
            .create_link(&macvlan("x", 999, Some(pod)))
            .expect_err("parent");
        assert!(err.is_not_found());
        let err = host
            .create_link(&macvlan("x", eth0, Some(Path::new("/run/netns/gone"))))
            .expect_err("target");
        assert!(err.is_netns_not_found(), "{err}");
        let mut big = macvlan("x", eth0, Some(pod));
        big.mtu = Some(9001);
        assert_eq!(host.create_link(&big).expect_err("mtu").errno(), Some(22));
        let ipv = NewLink::new(
            "ipv0",
            NewLinkKind::Ipvlan {
                parent_index: eth0,
                mode: IpvlanMode::L3,
                flags: IpvlanFlags::Private,
            },
        );
        host.create_link(&ipv).expect("ipvlan");
        let l = host.link("ipv0").expect("ok").expect("exists");
        assert_eq!(l.mac, lock(&w).link(None, "eth0").and_then(|e| e.mac));
        assert_eq!(
            (l.ipvlan_mode, l.ipvlan_flags),
            (Some(IpvlanMode::L3), Some(IpvlanFlags::Private))
        );
    }

    #[test]
    fn delete_is_idempotent_and_cascades() {
        let w = FakeWorld::shared();
        let eth0 = lock(&w).add_link(None, "eth0");
        let pod = Path::new("/run/netns/pod");
        lock(&w).add_netns(pod);
        let host = FakeNetlink::bind(&w, None);
        host.create_link(&macvlan("mv0", eth0, Some(pod)))
            .expect("create");
        host.create_link(&NewLink::new(
            "veth0",
            NewLinkKind::Veth {
                peer_name: "veth1".into(),
            },
        ))
        .expect("veth");
        assert!(host.delete_link("veth0").expect("del"));
        assert!(
            host.link("veth1").expect("peer").is_none(),
            "peer deleted too"
        );
        assert!(!host.delete_link("veth0").expect("del again"));
        assert!(lock(&w).remove_netns(pod));
        assert!(!lock(&w).remove_netns(pod));
        assert!(
            FakeNetlink::bind(&w, Some(pod))
                .link("mv0")
                .expect_err("ns gone")
                .is_netns_not_found()
        );
        host.create_link(&macvlan("mv1", eth0, None))
            .expect("create");
        assert!(host.delete_link("eth0").expect("del parent"));
        assert!(
            host.link("mv1").expect("child").is_none(),
            "child deleted with parent"
        );
    }

    #[test]
    fn move_rename_addresses_routes() {
        let w = FakeWorld::shared();
        let pod = Path::new("/run/netns/pod");
        lock(&w).add_netns(pod);
        let host = FakeNetlink::bind(&w, None);
        host.create_link(&NewLink::new(
            "tmp0",
            NewLinkKind::Veth {
                peer_name: "tmp1".into(),
            },
        ))
        .expect("veth");
        host.add_address("tmp0", net("192.0.2.1/24")).expect("addr");
        host.move_link("tmp0", pod, "eth0").expect("move");
        assert!(host.link("tmp0").expect("gone").is_none());
        let p = FakeNetlink::bind(&w, Some(pod));
        let l = p.link("eth0").expect("ok").expect("moved");
        assert!(!l.up);
        assert!(
            p.addresses("eth0").expect("addrs").is_empty(),
            "flushed by move"
        );
        let err = host.move_link("tmp1", pod, "eth0").expect_err("clash");
        assert!(err.is_already_exists());
        assert!(
            host.link("tmp1").expect("ok").is_some(),
            "failed move leaves it in place"
        );
        assert!(
            host.move_link("nope", pod, "x")
                .expect_err("missing")
                .is_not_found()
        );

        // IPv4 route checks: device must be up, gateway reachable.
        p.add_address("eth0", net("10.1.0.5/24")).expect("addr");
        let err = p.add_address("eth0", net("10.1.0.5/24")).expect_err("dup");
        assert!(err.is_already_exists());
        let def = RouteSpec::new(net("0.0.0.0/0")).via("10.1.0.1".parse().expect("ip"));
        assert_eq!(
            p.add_route(&def).expect_err("unreachable").errno(),
            Some(Errno::ENETUNREACH as i32)
        );
        let link_route = RouteSpec::new(net("10.9.0.0/16")).dev("eth0");
        assert_eq!(
            p.add_route(&link_route).expect_err("down").errno(),
            Some(Errno::ENETDOWN as i32)
        );
        p.set_link_up("eth0").expect("up");
        p.add_address("eth0", net("2001:db8::5/64")).expect("v6");
        p.add_route(&def).expect("default");
        p.add_route(&link_route).expect("link route");
        assert!(
            p.add_route(&link_route)
                .expect_err("dup")
                .is_already_exists()
        );
        assert_eq!(p.default_route_link().expect("def"), Some("eth0".into()));
        let routes = p.routes("eth0").expect("routes");
        let connected = RouteSpec {
            oif: Some("eth0".into()),
            table: Some(RT_TABLE_MAIN),
            scope: Some(RT_SCOPE_LINK),
            ..RouteSpec::new(net("10.1.0.0/24"))
        };
        assert!(routes.contains(&connected), "{routes:?}");
        assert!(routes.iter().any(|r| r.dst == net("0.0.0.0/0")
            && r.oif.as_deref() == Some("eth0")
            && r.scope == Some(RT_SCOPE_UNIVERSE)));
        assert!(
            routes
                .iter()
                .any(|r| r.dst == net("2001:db8::/64") && r.priority == Some(256))
        );
        p.delete_route(&link_route).expect("delete");
        assert!(
            p.delete_route(&link_route)
                .expect_err("again")
                .is_not_found()
        );
        assert!(host.routes("nope").expect_err("no link").is_not_found());
    }

    #[test]
    fn sysctls_and_failure_injection_and_calls() {
        let w = FakeWorld::shared();
        let pod = Path::new("/run/netns/pod");
        lock(&w).add_netns(pod);
        let p = FakeNetlink::bind(&w, Some(pod));
        p.set_sysctl("net/ipv4/conf/lo/arp_notify", "1")
            .expect("ok");
        assert_eq!(
            lock(&w)
                .sysctl(Some(pod), "net/ipv4/conf/lo/arp_notify")
                .as_deref(),
            Some("1")
        );
        assert!(
            p.set_sysctl("net/ipv4/conf/eth9/arp_notify", "1")
                .expect_err("no if")
                .is_sysctl_not_found()
        );
        lock(&w).set_ipv6_disabled(Some(pod), true);
        assert!(
            p.set_sysctl("net/ipv6/conf/lo/ndisc_notify", "1")
                .expect_err("v6")
                .is_sysctl_not_found()
        );
        assert!(matches!(
            p.set_sysctl("../etc/x", "1").expect_err("bad"),
            NetlinkError::Sysctl {
                source: SysctlError::InvalidKey { .. },
                ..
            }
        ));

        lock(&w).clear_calls();
        lock(&w).fail_next(
            "set_link_up",
            NetlinkError::from_errno("set_link_up", "link \"lo\"", Errno::EPERM as i32),
        );
        let err = p.set_link_up("lo").expect_err("injected");
        assert_eq!(err.errno(), Some(Errno::EPERM as i32));
        assert!(
            !lock(&w).link(Some(pod), "lo").expect("lo").up,
            "failure left no trace"
        );
        p.set_link_up("lo").expect("second call succeeds");
        assert!(p.link("lo").expect("ok").expect("lo").up);
        assert_eq!(
            lock(&w).calls(),
            vec![
                Call::SetLinkUp {
                    ns: Some(pod.to_path_buf()),
                    name: "lo".into()
                },
                Call::SetLinkUp {
                    ns: Some(pod.to_path_buf()),
                    name: "lo".into()
                },
                Call::Link {
                    ns: Some(pod.to_path_buf()),
                    name: "lo".into()
                },
            ]
        );
        assert_eq!(lock(&w).mutations().len(), 2);
        assert_eq!(lock(&w).calls()[0].op(), "set_link_up");
        assert!(p.link("this-name-is-too-long").is_err());
    }

    #[test]
    fn usable_as_trait_object_across_threads() {
        let w = FakeWorld::shared();
        let nl: Arc<dyn Netlink> = Arc::new(FakeNetlink::bind(&w, None));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let nl = Arc::clone(&nl);
                std::thread::spawn(move || {
                    nl.create_link(&NewLink::new(
                        format!("v{i}a"),
                        NewLinkKind::Veth {
                            peer_name: format!("v{i}b"),
                        },
                    ))
                })
            })
            .collect();
        for h in handles {
            h.join().expect("join").expect("create");
        }
        assert_eq!(lock(&w).links(None).len(), 9);
    }
}
