//! DEL of a sandbox that Multus set up before the node switched to Plexus: nothing is journaled
//! for it, but Multus's cache file `<multusCacheDir>/<containerID>` says what its own DEL would
//! undo. The delegates' DELs run from it as Multus's DEL runs them, without the API server:
//!
//! - in reverse order of the cached list (the cluster network, the first, last);
//! - interface: the selection's `interface`, else `CNI_IFNAME` for the first delegate and
//!   `net<position>` for the others;
//! - each delegate's cached configuration bytes ([`format`]); a conflist without `cniVersion`
//!   gets the meta-plugin config's;
//! - `CNI_ARGS` and capability args as Multus builds them ([`runtime`]); `CNI_PATH` is `binDir`
//!   then the runtime's `CNI_PATH`;
//! - prevResult (delegates from CNI 0.4.0 on) from libcni's result cache, which Multus keeps in
//!   the same directory: `<multusCacheDir>/results/<network name>-<containerID>-<ifname>`;
//!   removed after that delegate's DEL succeeded, as libcni does;
//! - the delegate's device-info file removed after its DEL, whatever the DEL answered.
//!
//! Unlike Multus, whose DEL without `retryDeleteOnError` drops the cache file whatever the
//! delegates answered, the file is removed only when every delegate DEL succeeded (the journal's
//! rule): a failed DEL names the networks and keeps the file, and the runtime's retry runs them
//! all again (DEL is idempotent). A cache file that cannot be decoded is an error naming it, and
//! nothing is run. The file is locked while its DEL runs, so two DELs of one sandbox do not
//! both run it.
//!
//! What Multus's DEL did with the API server is not done: it read the pod only to re-resolve the
//! delegates when the cache file was missing (here: no file, nothing to do) and to log its UID,
//! and it cleared the pod's network-status annotation (Plexus's DEL never writes to the API).

mod format;
mod runtime;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use plexus_delegates::cni::{CniError, CniResult, ErrorCode, Request};
use serde_json::Value;

use crate::config::PlexusConfig;
use crate::devinfo::DeviceInfoDir;
use crate::exec::Invocation;
use crate::plan::{Attachment, Delegate};

use super::detach::detach_attachment;
use format::CachedDelegate;
use runtime::MultusRuntimeConfig;

/// The subdirectory of Multus's cache directory where libcni keeps its result cache.
const RESULTS_DIR: &str = "results";

/// libcni's result cache format marker.
const CNI_CACHE_V1: &str = "cniCacheV1";

/// Runs the DEL of `req`'s sandbox from its Multus cache file. `None` when there is no such
/// file; else the failures (empty: everything deleted and the file removed).
pub(super) fn del_from_multus_cache(
    config: &PlexusConfig,
    req: &Request,
) -> Result<Option<Vec<String>>, CniError> {
    let path = config.multus_cache_dir.join(&req.container_id);
    let Some(cache) = LockedCache::open(&path)? else {
        return Ok(None);
    };
    let bytes = cache.read()?;
    let delegates = format::decode(&bytes).map_err(|reason| corrupt(&path, &reason))?;
    let rc = MultusRuntimeConfig::from_runtime_config(&config.runtime_config)
        .map_err(CniError::invalid_config)?;
    tracing::info!(
        file = %path.display(),
        delegates = delegates.len(),
        "nothing journaled; a Multus cache file exists: running its delegates' DEL"
    );
    let steps = plan(&delegates, config, req, &rc);
    let mut errors = Vec::new();
    for step in steps.iter().rev() {
        if let Err(cause) = step.run() {
            let msg = format!(
                "network {:?} (interface {}): {cause}; the Multus cache file {} is kept for the next DEL",
                step.network(),
                step.att.ifname,
                path.display()
            );
            tracing::error!(
                network = %step.att.network,
                ifname = %step.att.ifname,
                delegate = step.att.delegate.first_type(),
                "DEL from the Multus cache failed: {cause}"
            );
            errors.push(msg);
        }
    }
    if errors.is_empty() {
        cache.remove()?;
        tracing::info!(file = %path.display(), "Multus cache file removed");
    }
    Ok(Some(errors))
}

fn corrupt(path: &Path, reason: &str) -> CniError {
    CniError::new(
        ErrorCode::Decode,
        format!(
            "Multus cache file {} cannot be read: {reason}; nothing was deleted (undo this sandbox's networks by hand, then remove the file)",
            path.display()
        ),
    )
}

/// A Multus cache file, locked (`flock`) for as long as this value lives.
struct LockedCache {
    path: PathBuf,
    file: File,
}

impl LockedCache {
    /// Opens and locks the file; `None` when there is no regular file there (a directory is a
    /// Plexus journal without a lock file, not Multus's), or when another DEL removed it while
    /// this one waited for the lock.
    fn open(path: &Path) -> Result<Option<LockedCache>, CniError> {
        let io = |op: &str, e: std::io::Error| {
            CniError::new(
                ErrorCode::Io,
                format!("Multus cache file {}: {op}: {e}", path.display()),
            )
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(io("open", e)),
        };
        let held = file.metadata().map_err(|e| io("stat", e))?;
        if !held.is_file() {
            return Ok(None);
        }
        file.lock().map_err(|e| io("lock", e))?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
            _ => return Ok(None),
        }
        Ok(Some(LockedCache {
            path: path.to_path_buf(),
            file,
        }))
    }

    fn read(&self) -> Result<Vec<u8>, CniError> {
        let mut bytes = Vec::new();
        (&self.file).read_to_end(&mut bytes).map_err(|e| {
            CniError::new(
                ErrorCode::Io,
                format!("Multus cache file {}: read: {e}", self.path.display()),
            )
        })?;
        Ok(bytes)
    }

    /// Removes the file durably (its directory fsynced).
    fn remove(&self) -> Result<(), CniError> {
        let io = |op: &str, p: &Path, e: std::io::Error| {
            CniError::new(ErrorCode::Io, format!("{}: {op}: {e}", p.display()))
        };
        fs::remove_file(&self.path).map_err(|e| io("remove", &self.path, e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("fsync directory", dir, e))?;
        }
        Ok(())
    }
}

/// One delegate DEL, resolved.
#[derive(Debug)]
struct Step {
    att: Attachment,
    inv: Invocation,
    /// libcni's result cache of this delegate (prevResult), when it has a usable name.
    result_file: Option<PathBuf>,
    /// The delegate's device-info file, when it has a device ID.
    device_info_file: Option<PathBuf>,
}

/// Resolves every cached delegate into its DEL, in list order.
fn plan(
    delegates: &[CachedDelegate],
    config: &PlexusConfig,
    req: &Request,
    rc: &MultusRuntimeConfig,
) -> Vec<Step> {
    let devinfo = DeviceInfoDir::new(&config.device_info_dir);
    let cni_args = runtime::cni_args(&req.args);
    let mut cni_path = vec![config.bin_dir.clone()];
    cni_path.extend(req.path.iter().cloned());
    delegates
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ifname = d.ifname_request.clone().unwrap_or_else(|| {
                if i == 0 {
                    req.ifname.clone()
                } else {
                    format!("net{i}")
                }
            });
            let (capability_args, device_info_file) = rc.capability_args(i, d, |name| {
                devinfo
                    .cni_file(name, &req.container_id, &ifname)
                    .display()
                    .to_string()
            });
            let delegate = with_list_version(d, config.cni_version.as_deref());
            let result_file = result_file_name(delegate.name(), &req.container_id, &ifname)
                .map(|n| config.multus_cache_dir.join(RESULTS_DIR).join(n));
            Step {
                att: Attachment {
                    network: d.name.clone(),
                    ifname,
                    is_cluster: i == 0,
                    delegate,
                    runtime_config: Default::default(),
                    cni_args: Vec::new(),
                    args_cni: None,
                    default_route: Vec::new(),
                    resource_name: d.resource_name.clone(),
                },
                inv: Invocation {
                    container_id: req.container_id.clone(),
                    netns: req.netns.clone(),
                    runtime_ifname: req.ifname.clone(),
                    cni_args: cni_args.clone(),
                    cni_path: cni_path.clone(),
                    runtime_config: capability_args,
                },
                result_file,
                device_info_file: device_info_file.map(PathBuf::from),
            }
        })
        .collect()
}

/// Multus's DEL sets a conflist's missing `cniVersion` to its own config's.
fn with_list_version(d: &CachedDelegate, version: Option<&str>) -> Delegate {
    match (&d.delegate, version) {
        (Delegate::ConfList(list), Some(v)) if d.list_without_version && !v.is_empty() => {
            let mut list = list.clone();
            list.insert("cniVersion".to_owned(), Value::String(v.to_owned()));
            Delegate::ConfList(list)
        }
        (delegate, _) => delegate.clone(),
    }
}

/// `<name>-<containerID>-<ifname>`, libcni's result cache file name; `None` for a name libcni
/// could not have cached under (empty, or not one path component).
fn result_file_name(name: &str, container_id: &str, ifname: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return None;
    }
    Some(format!("{name}-{container_id}-{ifname}"))
}

/// The result in libcni's cache file (the `cniCacheV1` format, or a bare result as older
/// libcni wrote it). A missing file is no result, as for libcni; an unusable one is logged and
/// the DEL goes on without prevResult.
fn cached_result(path: &Path) -> Option<CniResult> {
    let bytes = fs::read(path).ok()?;
    let parsed = serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| CniError::decode(e.to_string()))
        .and_then(|v| {
            let raw = if v.get("kind").and_then(Value::as_str) == Some(CNI_CACHE_V1) {
                v.get("result").cloned().unwrap_or(Value::Null)
            } else {
                v
            };
            CniResult::from_json(&raw)
        });
    match parsed {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(
                file = %path.display(),
                "libcni result cache unusable, DEL goes on without prevResult: {e}"
            );
            None
        }
    }
}

impl Step {
    fn network(&self) -> &str {
        &self.att.network
    }

    /// The delegate DEL, then the device-info file ([`detach_attachment`]); once the delegate
    /// DEL succeeded also libcni's result cache.
    fn run(&self) -> Result<(), String> {
        let result = self.result_file.as_deref().and_then(cached_result);
        let detached = detach_attachment(
            &self.att,
            self.device_info_file.as_deref(),
            &self.inv,
            result.as_ref(),
        );
        let delegate_ok = detached.as_ref().err().is_none_or(|f| !f.delegate_failed);
        if delegate_ok && let Some(file) = &self.result_file {
            remove_result_file(file);
        }
        detached.map_err(|f| f.cause)
    }
}

/// libcni removes a delegate's result cache once its DEL succeeded; a failure to do so leaves
/// only a stale file behind, so it is logged, not reported.
fn remove_result_file(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %path.display(), "cannot remove libcni result cache: {e}"),
    }
}
