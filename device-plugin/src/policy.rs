//! GetPreferredAllocation: which of the devices kubelet offers to hand a container.
//!
//! 1. Everything in `must_include` is chosen first.
//! 2. NUMA: when the chosen devices sit on at most one NUMA node and some node has enough of the
//!    offered devices for the rest of the request, only that node is used (the must-include node
//!    if there is one; otherwise the node whose devices span the most PFs, then the one with the
//!    most devices, then the lowest id). When no single node fits, any node is used.
//! 3. Spread: the rest is taken one device at a time from the PF that has the fewest chosen
//!    devices so far (ties: lowest PF address), lowest VF address first, so a request spreads
//!    across PFs (and so across ports and failure domains).
//!
//! Devices kubelet offers that are not in the pool any more have no PF or NUMA node; they are
//! taken last.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use plexus_delegates::sriov::sysfs::PciAddress;

/// Where a device sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placement {
    pub pf: Option<PciAddress>,
    pub numa_node: Option<u32>,
}

/// The preferred `size` devices out of `available`, including `must_include`. `placement` looks
/// up a device ID. Returns fewer than `size` only when `available` has fewer.
pub fn preferred(
    available: &[String],
    must_include: &[String],
    size: usize,
    placement: impl Fn(&str) -> Placement,
) -> Vec<String> {
    let mut chosen: Vec<String> = Vec::new();
    for id in must_include {
        if !chosen.contains(id) {
            chosen.push(id.clone());
        }
    }
    if chosen.len() >= size {
        return chosen;
    }
    let need = size - chosen.len();
    let mut offered: Vec<(String, Placement)> = available
        .iter()
        .filter(|id| !chosen.contains(id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|id| (id.clone(), placement(id)))
        .collect();

    let chosen_nodes: BTreeSet<u32> = chosen
        .iter()
        .filter_map(|id| placement(id).numa_node)
        .collect();
    if chosen_nodes.len() <= 1
        && let Some(node) = pick_node(&offered, chosen_nodes.first().copied(), need)
    {
        offered.retain(|(_, p)| p.numa_node == Some(node));
    }

    // per PF: how many are chosen already, and the offered devices in address order
    let mut per_pf: BTreeMap<(bool, Option<PciAddress>), (usize, VecDeque<String>)> =
        BTreeMap::new();
    for id in &chosen {
        let pf = placement(id).pf;
        per_pf.entry((pf.is_none(), pf)).or_default().0 += 1;
    }
    for (id, p) in offered {
        per_pf
            .entry((p.pf.is_none(), p.pf))
            .or_default()
            .1
            .push_back(id);
    }
    while chosen.len() < size {
        // unknown PFs (`true` sorts last) only when no known PF has devices left
        let next = per_pf
            .iter_mut()
            .filter(|(_, (_, left))| !left.is_empty())
            .min_by_key(|((unknown, pf), (count, _))| (*unknown, *count, *pf));
        let Some((_, (count, left))) = next else {
            break;
        };
        let Some(id) = left.pop_front() else {
            break;
        };
        *count += 1;
        chosen.push(id);
    }
    chosen
}

/// The NUMA node to keep the request on, if one has `need` offered devices: `wanted` when given
/// (and it fits), else the best fitting node.
fn pick_node(offered: &[(String, Placement)], wanted: Option<u32>, need: usize) -> Option<u32> {
    let mut nodes: BTreeMap<u32, (usize, BTreeSet<PciAddress>)> = BTreeMap::new();
    for (_, p) in offered {
        if let Some(n) = p.numa_node {
            let e = nodes.entry(n).or_default();
            e.0 += 1;
            if let Some(pf) = p.pf {
                e.1.insert(pf);
            }
        }
    }
    match wanted {
        Some(n) => nodes.get(&n).filter(|(count, _)| *count >= need).map(|_| n),
        None => nodes
            .iter()
            .filter(|(_, (count, _))| *count >= need)
            .max_by(|(a_id, (a_count, a_pfs)), (b_id, (b_count, b_pfs))| {
                (a_pfs.len(), a_count, std::cmp::Reverse(*a_id)).cmp(&(
                    b_pfs.len(),
                    b_count,
                    std::cmp::Reverse(*b_id),
                ))
            })
            .map(|(id, _)| *id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` VFs on PF `pf` (bus number) on NUMA `node`, named `0000:<pf>:<vf>.0`.
    fn vfs(pf: u8, node: Option<u32>, n: u8) -> Vec<(String, Placement)> {
        (1..=n)
            .map(|i| {
                (
                    format!("0000:{pf:02x}:{i:02x}.0"),
                    Placement {
                        pf: Some(PciAddress::new(0, pf, 0, 0)),
                        numa_node: node,
                    },
                )
            })
            .collect()
    }

    fn run(devices: &[(String, Placement)], must: &[&str], size: usize) -> Vec<String> {
        let available: Vec<String> = devices.iter().map(|(id, _)| id.clone()).collect();
        let must: Vec<String> = must.iter().map(|s| s.to_string()).collect();
        preferred(&available, &must, size, |id| {
            devices
                .iter()
                .find(|(d, _)| d == id)
                .map(|(_, p)| *p)
                .unwrap_or_default()
        })
    }

    fn pfs_of(ids: &[String]) -> Vec<String> {
        ids.iter().map(|id| id[5..7].to_string()).collect()
    }

    #[test]
    fn spreads_across_pfs() {
        let devs = [vfs(0x10, Some(0), 4), vfs(0x20, Some(0), 4)].concat();
        let got = run(&devs, &[], 4);
        assert_eq!(pfs_of(&got), ["10", "20", "10", "20"]);
        assert_eq!(got[0], "0000:10:01.0");
        assert_eq!(got[2], "0000:10:02.0");
    }

    #[test]
    fn keeps_to_one_numa_node_when_the_request_fits() {
        // node 0: one PF with 2 VFs; node 1: two PFs with 3 VFs each
        let devs = [
            vfs(0x10, Some(0), 2),
            vfs(0x80, Some(1), 3),
            vfs(0x90, Some(1), 3),
        ]
        .concat();
        let got = run(&devs, &[], 2);
        // node 1 spans more PFs
        assert_eq!(pfs_of(&got), ["80", "90"]);
        let got = run(&devs, &[], 6);
        assert_eq!(pfs_of(&got), ["80", "90", "80", "90", "80", "90"]);
        // 7 fit on no single node: spread over everything
        let got = run(&devs, &[], 7);
        assert_eq!(got.len(), 7);
        assert!(pfs_of(&got).contains(&"10".to_string()));
    }

    #[test]
    fn must_include_fixes_the_numa_node_and_counts_for_the_spread() {
        let devs = [
            vfs(0x10, Some(0), 3),
            vfs(0x11, Some(0), 3),
            vfs(0x80, Some(1), 4),
            vfs(0x90, Some(1), 4),
        ]
        .concat();
        let got = run(&devs, &["0000:10:02.0"], 3);
        assert_eq!(got[0], "0000:10:02.0");
        // stays on node 0; the next one comes from the other PF of node 0 first
        assert_eq!(pfs_of(&got), ["10", "11", "10"]);
        assert!(!got[1..].contains(&"0000:10:02.0".to_string()));
    }

    #[test]
    fn must_include_beyond_size_and_short_offers() {
        let devs = vfs(0x10, None, 3);
        let got = run(&devs, &["0000:10:01.0", "0000:10:02.0"], 1);
        assert_eq!(got, ["0000:10:01.0", "0000:10:02.0"]);
        assert_eq!(run(&devs, &[], 5).len(), 3);
        assert!(run(&devs, &[], 0).is_empty());
    }

    #[test]
    fn no_numa_information_still_spreads() {
        let devs = [vfs(0x10, None, 2), vfs(0x20, None, 2)].concat();
        assert_eq!(pfs_of(&run(&devs, &[], 2)), ["10", "20"]);
    }

    #[test]
    fn unknown_devices_are_taken_last() {
        let mut devs = vfs(0x10, Some(0), 2);
        devs.push(("0000:ff:00.1".into(), Placement::default()));
        let got = run(&devs, &[], 2);
        assert_eq!(pfs_of(&got), ["10", "10"]);
        assert_eq!(run(&devs, &[], 3)[2], "0000:ff:00.1");
    }
}
