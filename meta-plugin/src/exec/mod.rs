//! Running one [`Attachment`]: building each plugin's stdin the way libcni does (conf or conflist
//! chain, `prevResult`, capability injection, `args.cni`), and running it in-process (built-in
//! macvlan/ipvlan) or by executing the plugin from `binDir` + `CNI_PATH`.
//!
//! Everything the runtime sent that a delegate needs again at DEL time is in [`Invocation`],
//! which is journaled beside the attachment.

pub mod stdin;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use plexus_delegates::cni::exec::{DEFAULT_TIMEOUT, Started, exec_plugin, start_plugin};
use plexus_delegates::cni::{CniArgs, CniError, CniResult, CniVersion, Command, Plugin, Request};
use plexus_delegates::ipvlan::IpvlanPlugin;
use plexus_delegates::macvlan::MacvlanPlugin;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::plan::Attachment;

pub use stdin::{effective_runtime_config, plugin_stdin};

/// The runtime's side of a delegate call, resolved once at ADD and journaled for DEL/CHECK/GC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` of the ADD (`None` when the runtime sent none, as on a second DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` the runtime asked the meta-plugin for (matched by GC's valid-attachments).
    pub runtime_ifname: String,
    /// `CNI_ARGS` for the delegate: the runtime's, then the attachment's, `IgnoreUnknown=1` kept.
    pub cni_args: Vec<(String, String)>,
    /// `CNI_PATH` for the delegate: `binDir`, then the runtime's `CNI_PATH`.
    pub cni_path: Vec<PathBuf>,
    /// The runtimeConfig keys injected into plugins that declare them as capabilities.
    pub runtime_config: Map<String, Value>,
}

#[cfg(test)]
impl Invocation {
    /// A test invocation: container `c1` in `/run/netns/x`, runtime ifname `eth0`.
    pub fn for_test() -> Self {
        Invocation {
            container_id: "c1".into(),
            netns: Some("/run/netns/x".into()),
            runtime_ifname: "eth0".into(),
            cni_args: vec![("IgnoreUnknown".into(), "1".into())],
            cni_path: vec!["/opt/cni/bin".into()],
            runtime_config: Map::new(),
        }
    }
}

impl Invocation {
    /// Build from the runtime's request, the meta-plugin's `binDir` and runtimeConfig, for
    /// `att`.
    pub fn new(
        req: &Request,
        bin_dir: &std::path::Path,
        runtime_config: &Map<String, Value>,
        att: &Attachment,
    ) -> Self {
        let mut args = req.args.clone();
        for (k, v) in &att.cni_args {
            args.set(k, v);
        }
        args.set("IgnoreUnknown", "1");
        let mut cni_path = vec![bin_dir.to_path_buf()];
        cni_path.extend(req.path.iter().filter(|p| p.as_path() != bin_dir).cloned());
        Invocation {
            container_id: req.container_id.clone(),
            netns: req.netns.clone(),
            runtime_ifname: req.ifname.clone(),
            cni_args: args.pairs().to_vec(),
            cni_path,
            runtime_config: effective_runtime_config(runtime_config, att),
        }
    }

    fn cni_args(&self) -> Result<CniArgs, CniError> {
        let raw: Vec<String> = self
            .cni_args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        CniArgs::parse(&raw.join(";"))
    }
}

/// A delegate step that failed: which plugin of the chain, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("delegate {plugin:?}: {error}")]
pub struct StepError {
    /// The plugin `type` that failed.
    pub plugin: String,
    pub error: CniError,
}

impl StepError {
    fn new(plugin: &str, error: CniError) -> Self {
        StepError {
            plugin: plugin.to_owned(),
            error,
        }
    }
}

/// Whether a plugin type runs in-process.
pub fn is_builtin(plugin_type: &str) -> bool {
    builtin(plugin_type).is_some()
}

fn builtin(plugin_type: &str) -> Option<Box<dyn Plugin>> {
    match plugin_type {
        "macvlan" | "plexus-macvlan" => Some(Box::new(MacvlanPlugin::default())),
        "ipvlan" | "plexus-ipvlan" => Some(Box::new(IpvlanPlugin::default())),
        "sriov" | "plexus-sriov" => {
            Some(Box::new(plexus_delegates::sriov::SriovPlugin::from_env()))
        }
        _ => None,
    }
}

/// The `cniVersion` the delegate speaks (list or conf), defaulting like libcni.
pub fn delegate_version(att: &Attachment) -> Result<CniVersion, CniError> {
    let (crate::plan::Delegate::Conf(m) | crate::plan::Delegate::ConfList(m)) = &att.delegate;
    CniVersion::from_config(m.get("cniVersion").and_then(Value::as_str))
}

/// The request one plugin (one link of the chain) gets for `verb` with the given stdin.
fn plugin_request(
    verb: Command,
    att: &Attachment,
    inv: &Invocation,
    stdin: Vec<u8>,
) -> Result<Request, CniError> {
    Ok(Request {
        command: verb,
        container_id: inv.container_id.clone(),
        netns: inv.netns.clone(),
        ifname: att.ifname.clone(),
        args: inv.cni_args()?,
        path: inv.cni_path.clone(),
        config: stdin,
    })
}

/// Runs one plugin (one link of the chain) for `verb` with the given stdin; `started` is that
/// plugin already started for it ([`prestart`]).
fn run_plugin(
    verb: Command,
    plugin_type: &str,
    att: &Attachment,
    inv: &Invocation,
    stdin: Vec<u8>,
    started: Option<Started>,
) -> Result<Option<CniResult>, CniError> {
    let req = plugin_request(verb, att, inv, stdin)?;
    let started_at = Instant::now();
    let out = match (started, builtin(plugin_type)) {
        (Some(started), _) => started.finish(&req.config),
        (None, Some(p)) => match verb {
            Command::Add => p.add(&req).map(Some),
            Command::Del => p.del(&req).map(|()| None),
            Command::Check => p.check(&req).map(|()| None),
            Command::Status => p.status(&req).map(|()| None),
            Command::Gc => p.gc(&req).map(|()| None),
            Command::Version => Ok(None),
        },
        (None, None) => exec_plugin(plugin_type, &req, &req.config),
    };
    tracing::debug!(
        command = verb.as_str(),
        container = %inv.container_id,
        network = %att.network,
        ifname = %att.ifname,
        delegate = plugin_type,
        builtin = is_builtin(plugin_type),
        duration_us = started_at.elapsed().as_micros() as u64,
        ok = out.is_ok(),
        "delegate step"
    );
    out
}

/// Starts the first plugin of `att`'s chain for ADD when it is executed (not built in), before
/// the attachment's record is durable: its process start (milliseconds for a Go plugin)
/// overlaps the journal's fsync, and it acts only once [`add`] gives it its configuration,
/// after the record is durable (a CNI plugin reads its configuration before it does anything;
/// see [`Started`]; dropped unused, the plugin is ended). `None` for a built-in, and when it
/// cannot be started now: [`add`] then starts it as usual and reports what fails.
pub fn prestart(att: &Attachment, inv: &Invocation) -> Option<Started> {
    let first = *att.delegate.plugins().first()?;
    let ty = plugin_type(first);
    if is_builtin(ty) {
        return None;
    }
    let req = plugin_request(Command::Add, att, inv, Vec::new()).ok()?;
    match start_plugin(ty, &req, DEFAULT_TIMEOUT) {
        Ok(started) => Some(started),
        Err(e) => {
            tracing::debug!(network = %att.network, delegate = ty, "not started early: {e}");
            None
        }
    }
}

/// ADD: runs the conf, or the conflist's plugins in order, each with the previous result;
/// `prestarted` is the first plugin already started ([`prestart`]). Returns the final result and
/// the time spent in delegates.
pub fn add(
    att: &Attachment,
    inv: &Invocation,
    prestarted: Option<Started>,
) -> Result<(CniResult, Duration), StepError> {
    let started = Instant::now();
    let version =
        delegate_version(att).map_err(|e| StepError::new(att.delegate.first_type(), e))?;
    let mut prestarted = prestarted;
    let mut prev: Option<CniResult> = None;
    for (i, plugin) in att.delegate.plugins().into_iter().enumerate() {
        let ty = plugin_type(plugin);
        let stdin = plugin_stdin(att, i, &inv.runtime_config, prev.as_ref(), version)
            .map_err(|e| StepError::new(ty, e))?;
        let result = run_plugin(Command::Add, ty, att, inv, stdin, prestarted.take())
            .map_err(|e| StepError::new(ty, e))?
            .ok_or_else(|| {
                StepError::new(ty, CniError::internal("ADD returned no result".to_owned()))
            })?;
        prev = Some(result);
    }
    let result = prev.ok_or_else(|| {
        StepError::new(
            "",
            CniError::invalid_config(format!("network {:?} has no plugins", att.network)),
        )
    })?;
    Ok((result, started.elapsed()))
}

/// DEL: the plugins in reverse order, each with the final result as prevResult (from 0.4.0 on,
/// like libcni). Keeps going after a failure; returns every failure.
pub fn del(att: &Attachment, inv: &Invocation, result: Option<&CniResult>) -> Vec<StepError> {
    let version = match delegate_version(att) {
        Ok(v) => v,
        Err(e) => return vec![StepError::new(att.delegate.first_type(), e)],
    };
    let prev = result.filter(|_| version >= CniVersion::V0_4_0);
    let mut errors = Vec::new();
    let plugins = att.delegate.plugins();
    for (i, plugin) in plugins.iter().enumerate().rev() {
        let ty = plugin_type(plugin);
        let out = plugin_stdin(att, i, &inv.runtime_config, prev, version)
            .and_then(|stdin| run_plugin(Command::Del, ty, att, inv, stdin, None));
        if let Err(e) = out {
            errors.push(StepError::new(ty, e));
        }
    }
    errors
}

/// CHECK: every plugin in order with the journaled result as prevResult.
pub fn check(att: &Attachment, inv: &Invocation, result: &CniResult) -> Result<(), StepError> {
    let version =
        delegate_version(att).map_err(|e| StepError::new(att.delegate.first_type(), e))?;
    for (i, plugin) in att.delegate.plugins().into_iter().enumerate() {
        let ty = plugin_type(plugin);
        plugin_stdin(att, i, &inv.runtime_config, Some(result), version)
            .and_then(|stdin| run_plugin(Command::Check, ty, att, inv, stdin, None))
            .map_err(|e| StepError::new(ty, e))?;
    }
    Ok(())
}

/// STATUS or GC of a network (no container): every plugin in order; `extra` keys (GC's
/// `cni.dev/valid-attachments`) are added to each plugin's stdin.
pub fn status_or_gc(
    verb: Command,
    att: &Attachment,
    inv: &Invocation,
    extra: &Map<String, Value>,
) -> Result<(), StepError> {
    let version =
        delegate_version(att).map_err(|e| StepError::new(att.delegate.first_type(), e))?;
    if !version.supports_status_and_gc() {
        // libcni: STATUS and GC are no-ops for networks older than 1.1.0.
        tracing::debug!(network = %att.network, %version, command = verb.as_str(), "skipped: network version has no {}", verb.as_str());
        return Ok(());
    }
    for (i, plugin) in att.delegate.plugins().into_iter().enumerate() {
        let ty = plugin_type(plugin);
        let run = || -> Result<(), CniError> {
            let stdin = plugin_stdin(att, i, &inv.runtime_config, None, version)?;
            let mut v: Map<String, Value> = serde_json::from_slice(&stdin)
                .map_err(|e| CniError::internal(format!("re-reading built stdin: {e}")))?;
            for (k, x) in extra {
                v.insert(k.clone(), x.clone());
            }
            let bytes = serde_json::to_vec(&Value::Object(v))
                .map_err(|e| CniError::internal(format!("encoding stdin: {e}")))?;
            run_plugin(verb, ty, att, inv, bytes, None).map(|_| ())
        };
        run().map_err(|e| StepError::new(ty, e))?;
    }
    Ok(())
}

/// A plugin conf's `type`.
pub fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Delegate;
    use serde_json::json;

    #[test]
    fn invocation_merges_cni_args_and_keeps_ignore_unknown() {
        let req = Request {
            command: Command::Add,
            container_id: "c".into(),
            netns: Some("/run/netns/p".into()),
            ifname: "eth0".into(),
            args: CniArgs::parse("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IgnoreUnknown=0").unwrap(),
            path: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
            config: vec![],
        };
        let Value::Object(conf) = json!({"name": "n", "type": "bridge"}) else {
            panic!()
        };
        let att = Attachment {
            network: "ns/n".into(),
            ifname: "net1".into(),
            is_cluster: false,
            delegate: Delegate::Conf(conf),
            runtime_config: Map::new(),
            cni_args: vec![
                ("IP".into(), "10.1.1.1/24".into()),
                ("MAC".into(), "02:00:00:00:00:01".into()),
            ],
            args_cni: None,
            default_route: vec![],
            resource_name: None,
        };
        let inv = Invocation::new(
            &req,
            std::path::Path::new("/opt/cni/bin"),
            &Map::new(),
            &att,
        );
        let args = inv.cni_args().unwrap();
        assert_eq!(
            args.to_env(),
            "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IgnoreUnknown=1;IP=10.1.1.1/24;MAC=02:00:00:00:00:01"
        );
        // binDir first, no duplicate
        assert_eq!(
            inv.cni_path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(inv.runtime_ifname, "eth0");
        assert!(is_builtin("macvlan") && is_builtin("plexus-ipvlan") && !is_builtin("bridge"));
    }
}
