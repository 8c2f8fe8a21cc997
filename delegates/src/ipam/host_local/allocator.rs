//! Address selection, the reference allocator's strategy: per range set, round-robin starting
//! after `last_reserved_ip.<set>`, wrapping around, never handing out the gateway (nor the
//! network or IPv4 broadcast address).

use std::net::IpAddr;

use ipnet::IpNet;

use super::config::{Range, RangeSet};
use super::store::Locked;
use crate::cni::IpConfig;
use crate::ipam::error::IpamError;
use crate::ipam::util::{ip_to_u128, u128_to_ip};

/// Walks a range set once, starting after the last reserved address (or at the first range's
/// start), yielding candidate addresses with their range.
#[derive(Debug)]
pub struct RangeIter<'a> {
    set: &'a RangeSet,
    idx: usize,
    cur: Option<u128>,
    first: Option<u128>,
}

impl<'a> RangeIter<'a> {
    pub fn new(set: &'a RangeSet, last_reserved: Option<IpAddr>) -> RangeIter<'a> {
        let resume = last_reserved.and_then(|last| {
            set.0
                .iter()
                .position(|r| r.contains(last))
                .map(|i| (i, last))
        });
        match resume {
            Some((idx, last)) => RangeIter {
                set,
                idx,
                cur: Some(ip_to_u128(last)),
                first: None,
            },
            None => RangeIter {
                set,
                idx: 0,
                cur: None,
                first: None,
            },
        }
    }
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        let set: &'a RangeSet = self.set;
        if set.0.is_empty() {
            return None;
        }
        loop {
            let cur = match self.cur {
                None => {
                    let start = ip_to_u128(set.0[self.idx].start);
                    self.first = Some(start);
                    start
                }
                Some(cur) => {
                    let next = if cur == ip_to_u128(set.0[self.idx].end) {
                        self.idx = (self.idx + 1) % set.0.len();
                        ip_to_u128(set.0[self.idx].start)
                    } else {
                        cur + 1
                    };
                    match self.first {
                        None => self.first = Some(next),
                        Some(first) if first == next => return None,
                        Some(_) => {}
                    }
                    next
                }
            };
            self.cur = Some(cur);
            let range = &set.0[self.idx];
            let ip = u128_to_ip(cur, range.start);
            if range.is_candidate(ip) {
                return Some((ip, range));
            }
        }
    }
}

fn ip_config(ip: IpAddr, range: &Range) -> Result<IpConfig, IpamError> {
    let address = IpNet::new(ip, range.subnet.prefix_len()).map_err(|e| {
        IpamError::Alloc(format!("address {ip}/{}: {e}", range.subnet.prefix_len()))
    })?;
    Ok(IpConfig {
        interface: None,
        address,
        gateway: Some(range.gateway),
    })
}

/// Allocate one address from range set `set_idx` for (container, ifname): `requested` when
/// given, otherwise the next free one.
pub fn allocate(
    store: &Locked<'_>,
    set: &RangeSet,
    set_idx: usize,
    container_id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> Result<IpConfig, IpamError> {
    if let Some(ip) = requested {
        let range = set
            .range_for(ip)
            .ok_or_else(|| IpamError::Alloc(format!("{ip} not in range set {set}")))?;
        if ip == range.gateway {
            return Err(IpamError::Alloc(format!(
                "requested ip {ip} is subnet's gateway"
            )));
        }
        if !store.reserve(ip, container_id, ifname, set_idx)? {
            return Err(IpamError::Alloc(format!(
                "requested IP address {ip} is not available in range set {set}"
            )));
        }
        return ip_config(ip, range);
    }

    for held in store.get_by_id(container_id, ifname)? {
        if set.contains(held) {
            return Err(IpamError::Alloc(format!(
                "{held} has been allocated to {container_id}, duplicate allocation is not allowed"
            )));
        }
    }
    for (ip, range) in RangeIter::new(set, store.last_reserved(set_idx)) {
        if store.reserve(ip, container_id, ifname, set_idx)? {
            return ip_config(ip, range);
        }
    }
    Err(exhausted(set))
}

/// The exhaustion error for `set`, naming its ranges and subnets.
pub fn exhausted(set: &RangeSet) -> IpamError {
    IpamError::Exhausted(format!(
        "no IP addresses available in range set: {set} (subnet {})",
        set.subnets()
    ))
}
