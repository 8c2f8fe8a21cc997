//! Interface names: the cluster network gets the runtime's `CNI_IFNAME`; every other network its
//! selection's `interface`, else `net<idx>` with idx its position in the full list (cluster
//! network = 0, first extra = 1). Two attachments with one name are refused before anything runs.

use std::collections::HashMap;

use plexus_delegates::cni::CniError;

/// One entry of the plan, for naming: what it requested and how errors name it.
pub(super) struct IfnameRequest<'a> {
    pub requested: Option<&'a str>,
    pub label: &'a str,
}

/// Assigns the names; entry 0 is the cluster network.
pub(super) fn assign(
    cluster_ifname: &str,
    entries: &[IfnameRequest<'_>],
) -> Result<Vec<String>, CniError> {
    let mut names = Vec::with_capacity(entries.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (idx, entry) in entries.iter().enumerate() {
        let name = if idx == 0 {
            cluster_ifname.to_owned()
        } else {
            entry
                .requested
                .map_or_else(|| format!("net{idx}"), str::to_owned)
        };
        if let Some(&first) = seen.get(&name) {
            return Err(CniError::invalid_config(format!(
                "interface name {name:?} is used twice in the pod: by {} (position {first}) and by {} (position {idx}); set a distinct \"interface\" in the selection",
                entries[first].label, entry.label
            )));
        }
        seen.insert(name.clone(), idx);
        names.push(name);
    }
    Ok(names)
}
