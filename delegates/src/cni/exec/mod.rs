//! Executing an external CNI plugin from `CNI_PATH` exactly as a runtime (libcni) does.
//!
//! - The binary is `plugin_type` looked up in the request's `CNI_PATH` directories, first match
//!   that is a regular executable file. Types that could escape those directories (empty, `/`,
//!   NUL, `.`, `..`) are refused with code 7 before the filesystem is touched.
//! - Environment: ours (like libcni: `PATH` etc.), with `CNI_COMMAND`, `CNI_CONTAINERID`,
//!   `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH` replaced by the request's. `CNI_NETNS` is
//!   left out (also when the runtime gave it to us) when the request has no netns.
//! - stdin is the given configuration; stdout is captured whole; stderr is copied to our stderr
//!   (and logged at debug), its first 4 KiB kept for error details.
//! - A deadline (default [`DEFAULT_TIMEOUT`]) covers the run; on expiry the plugin is killed.
//! - Exit 0: ADD's stdout is parsed as a result of any layout; other verbs' stdout is ignored.
//!   Non-zero exit with a CNI error object on stdout: that error, same code and details, its
//!   message prefixed with `plugin "<type>": `. Anything else is [`ErrorCode::Delegate`] with
//!   the exit status and the first 4 KiB of stdout and stderr in the details.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::{CniError, ErrorCode};
use super::request::{Command, Request};
use super::result::CniResult;
use super::version::CniVersion;

/// How long a plugin may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

mod talk;

use talk::{DETAIL_LIMIT, Ended};

/// libcni retries "text file busy" (the binary being written, or a write fd briefly inherited by
/// another thread's fork) 5 times, sleeping 1 s; we retry as often with a shorter backoff, within
/// the deadline.
const ETXTBSY_RETRIES: u32 = 5;

/// The variables a runtime sets for a plugin; inherited values of these never reach it.
const CNI_VARS: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// Run plugin `plugin_type` for `req`'s verb, container, netns, ifname, CNI_ARGS and CNI_PATH,
/// with `stdin` as its network configuration. ADD returns the parsed result; other verbs `None`.
pub fn exec_plugin(
    plugin_type: &str,
    req: &Request,
    stdin: &[u8],
) -> Result<Option<CniResult>, CniError> {
    exec_plugin_timeout(plugin_type, req, stdin, DEFAULT_TIMEOUT)
}

/// [`exec_plugin`] with a deadline other than [`DEFAULT_TIMEOUT`].
pub fn exec_plugin_timeout(
    plugin_type: &str,
    req: &Request,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Option<CniResult>, CniError> {
    exec_with_env(
        plugin_type,
        req,
        stdin,
        timeout,
        std::env::vars_os().collect(),
    )
}

/// Ask plugin `plugin_type` (found in `path`) which spec versions it supports (the VERSION verb,
/// sent with our latest version as libcni does).
pub fn exec_version(plugin_type: &str, path: &[PathBuf]) -> Result<Vec<String>, CniError> {
    let req = Request {
        command: Command::Version,
        container_id: String::new(),
        netns: None,
        ifname: String::new(),
        args: Default::default(),
        path: path.to_vec(),
        config: Vec::new(),
    };
    let stdin = serde_json::json!({ "cniVersion": CniVersion::LATEST.as_str() }).to_string();
    let run = run(
        plugin_type,
        &req,
        stdin.as_bytes(),
        DEFAULT_TIMEOUT,
        std::env::vars_os().collect(),
    )?;
    if !run.status.success() {
        return Err(run.failure(plugin_type, Command::Version));
    }
    parse_version_reply(&run.stdout).map_err(|msg| {
        CniError::new(
            ErrorCode::Delegate,
            format!("plugin {plugin_type:?} answered VERSION with {msg}"),
        )
        .with_details(run.details())
    })
}

/// libcni's decoding of a VERSION reply: 0.2.0 plugins may omit `supportedVersions`.
fn parse_version_reply(stdout: &[u8]) -> Result<Vec<String>, String> {
    let v: Value =
        serde_json::from_slice(stdout).map_err(|e| format!("an unreadable reply: {e}"))?;
    let version = v
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if version.is_empty() {
        return Err("a reply without cniVersion".into());
    }
    match v.get("supportedVersions").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("a non-string version {s}"))
            })
            .collect(),
        _ if version == "0.2.0" => Ok(vec!["0.1.0".into(), "0.2.0".into()]),
        _ => Err("a reply without supportedVersions".into()),
    }
}

/// Refuse plugin types that are not a plain file name (they could leave the CNI_PATH dirs).
pub fn validate_plugin_type(plugin_type: &str) -> Result<(), CniError> {
    let bad = plugin_type.is_empty()
        || plugin_type.contains('/')
        || plugin_type.contains('\0')
        || plugin_type.contains("..")
        || plugin_type == ".";
    if bad {
        return Err(CniError::invalid_config(format!(
            "invalid plugin type {plugin_type:?}: must be a file name in CNI_PATH"
        )));
    }
    Ok(())
}

/// The first `dirs/plugin_type` that is a regular executable file (symlinks followed).
pub fn find_plugin(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    validate_plugin_type(plugin_type)?;
    if dirs.is_empty() {
        return Err(CniError::invalid_config(format!(
            "failed to find plugin {plugin_type:?}: no CNI_PATH directories to search"
        )));
    }
    let mut unusable = Vec::new();
    for dir in dirs {
        let candidate = dir.join(plugin_type);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(m) if m.is_file() => {
                unusable.push(format!("{} is not executable", candidate.display()))
            }
            Ok(_) => unusable.push(format!("{} is not a regular file", candidate.display())),
            Err(_) => {}
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let err = CniError::invalid_config(format!(
        "failed to find plugin {plugin_type:?} in path [{}]",
        searched.join(", ")
    ));
    Err(if unusable.is_empty() {
        err
    } else {
        err.with_details(unusable.join("; "))
    })
}

/// What a finished plugin left behind.
struct Finished {
    binary: PathBuf,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr_head: Vec<u8>,
}

impl Finished {
    /// `stdout: "..."; stderr: "..."`, each cut to [`DETAIL_LIMIT`] bytes.
    fn details(&self) -> String {
        let mut parts = Vec::new();
        for (name, bytes) in [("stdout", &self.stdout), ("stderr", &self.stderr_head)] {
            let head = &bytes[..bytes.len().min(DETAIL_LIMIT)];
            let text = String::from_utf8_lossy(head);
            let text = text.trim();
            if !text.is_empty() {
                let cut = if bytes.len() > DETAIL_LIMIT {
                    " (truncated)"
                } else {
                    ""
                };
                parts.push(format!("{name}: {text:?}{cut}"));
            }
        }
        parts.join("; ")
    }

    /// The error for a non-zero exit or a signal.
    fn failure(&self, plugin_type: &str, command: Command) -> CniError {
        let verb = command.as_str();
        if let Some(e) = cni_error_object(&self.stdout) {
            return e.context(format!("plugin {plugin_type:?}"));
        }
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("failed {verb} with exit status {code}"),
            (None, Some(sig)) => {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                format!("was killed by signal {sig} ({name}) during {verb}")
            }
            (None, None) => format!("ended {verb} with {}", self.status),
        };
        CniError::new(
            ErrorCode::Delegate,
            format!("plugin {plugin_type:?} ({}) {how}", self.binary.display()),
        )
        .with_details(self.details())
    }
}

/// A CNI error object (`{"code", "msg", "details"}`) printed by a failing plugin, if any. An
/// object without a valid code keeps its message under [`ErrorCode::Delegate`].
fn cni_error_object(stdout: &[u8]) -> Option<CniError> {
    let v: Value = serde_json::from_slice(stdout).ok()?;
    let obj = v.as_object()?;
    let msg = obj.get("msg").and_then(Value::as_str);
    let code = obj
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok());
    let code = match (code, msg) {
        (Some(c), _) if c != 0 => c,
        (_, Some(_)) => ErrorCode::Delegate as u32,
        _ => return None,
    };
    let details = obj
        .get("details")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(CniError {
        code,
        msg: msg.unwrap_or_default().to_string(),
        details: details.to_string(),
    })
}

/// [`exec_plugin_timeout`] with an explicit inherited environment (tests pass their own).
fn exec_with_env(
    plugin_type: &str,
    req: &Request,
    stdin: &[u8],
    timeout: Duration,
    base_env: Vec<(OsString, OsString)>,
) -> Result<Option<CniResult>, CniError> {
    start_with_env(plugin_type, req, timeout, base_env)?.finish(stdin)
}

/// Find, spawn, feed and wait for the plugin; any exit status is returned to the caller.
fn run(
    plugin_type: &str,
    req: &Request,
    stdin: &[u8],
    timeout: Duration,
    base_env: Vec<(OsString, OsString)>,
) -> Result<Finished, CniError> {
    start_with_env(plugin_type, req, timeout, base_env)?.talk(stdin)
}

/// A plugin process that runs but has not been given its configuration yet.
///
/// A CNI plugin reads its configuration from stdin before it acts (the reference plugins' skel
/// reads it first thing, and without it a plugin knows neither its network nor its IPAM), so
/// nothing happens until [`Started::finish`] writes it. A caller can so overlap the plugin's
/// process start (a Go runtime's is milliseconds) with work that must be done before the plugin
/// acts. Dropped unfinished, the plugin reads end-of-file and is killed and reaped.
#[derive(Debug)]
pub struct Started {
    /// `Some` until finished or dropped.
    child: Option<Child>,
    binary: PathBuf,
    plugin_type: String,
    command: Command,
    deadline: Instant,
    timeout: Duration,
}

/// Starts `plugin_type` for `req` (environment as [`exec_plugin`] sets it), without its
/// configuration yet; `timeout` counts from now.
pub fn start_plugin(
    plugin_type: &str,
    req: &Request,
    timeout: Duration,
) -> Result<Started, CniError> {
    start_with_env(plugin_type, req, timeout, std::env::vars_os().collect())
}

fn start_with_env(
    plugin_type: &str,
    req: &Request,
    timeout: Duration,
    base_env: Vec<(OsString, OsString)>,
) -> Result<Started, CniError> {
    let deadline = Instant::now() + timeout;
    let binary = find_plugin(plugin_type, &req.path)?;
    let verb = req.command.as_str();
    let cni_path = std::env::join_paths(&req.path).map_err(|e| {
        CniError::invalid_config(format!(
            "cannot pass CNI_PATH to plugin {plugin_type:?}: {e}"
        ))
    })?;

    let mut cmd = Process::new(&binary);
    cmd.env_clear()
        .envs(
            base_env
                .into_iter()
                .filter(|(k, _)| !CNI_VARS.iter().any(|v| k == v)),
        )
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", &req.container_id)
        .env("CNI_IFNAME", &req.ifname)
        .env("CNI_ARGS", req.args.to_env())
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(netns) = &req.netns {
        cmd.env("CNI_NETNS", netns);
    }
    tracing::debug!(plugin = plugin_type, binary = %binary.display(), command = verb, "executing plugin");

    let spawning = Instant::now();
    let child = spawn(&mut cmd, &binary, plugin_type, deadline)?;
    tracing::debug!(
        plugin = plugin_type,
        pid = child.id(),
        spawn_us = spawning.elapsed().as_micros() as u64,
        "plugin started"
    );
    Ok(Started {
        child: Some(child),
        binary,
        plugin_type: plugin_type.to_owned(),
        command: req.command,
        deadline,
        timeout,
    })
}

impl Started {
    /// Gives the plugin its configuration and waits for it: ADD's result, or the error, as
    /// [`exec_plugin`] returns them.
    pub fn finish(mut self, stdin: &[u8]) -> Result<Option<CniResult>, CniError> {
        let run = self.talk(stdin)?;
        let plugin_type = self.plugin_type.as_str();
        if !run.status.success() {
            return Err(run.failure(plugin_type, self.command));
        }
        match self.command {
            Command::Add => CniResult::from_bytes(&run.stdout).map(Some).map_err(|e| {
                CniError::new(
                    ErrorCode::Delegate,
                    format!(
                        "plugin {plugin_type:?} returned an unreadable ADD result: {}",
                        e.msg
                    ),
                )
                .with_details(run.details())
            }),
            Command::Del | Command::Check | Command::Status | Command::Gc | Command::Version => {
                Ok(None)
            }
        }
    }

    /// Feeds stdin, reads the output and reaps the plugin (killing it at the deadline); any
    /// exit status is returned to the caller.
    fn talk(&mut self, stdin: &[u8]) -> Result<Finished, CniError> {
        let (plugin_type, verb, timeout) = (
            self.plugin_type.as_str(),
            self.command.as_str(),
            self.timeout,
        );
        let binary = self.binary.clone();
        let Some(mut child) = self.child.take() else {
            return Err(CniError::internal(format!(
                "plugin {plugin_type:?} was already waited for"
            )));
        };
        let ended = talk::talk(&mut child, stdin, plugin_type, self.deadline);
        let (status, stdout, stderr_head) = match ended {
            Ok(Ended::Finished {
                status,
                stdout,
                stderr_head,
            }) => (status, stdout, stderr_head),
            Ok(Ended::Running) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CniError::new(
                    ErrorCode::Delegate,
                    format!(
                        "plugin {plugin_type:?} ({}) did not finish {verb} within the {}s timeout; killed it",
                        binary.display(),
                        timeout.as_secs_f64()
                    ),
                ));
            }
            Ok(Ended::StdoutHeld { status }) => {
                return Err(CniError::new(
                    ErrorCode::Delegate,
                    format!(
                        "plugin {plugin_type:?} ({}) exited ({status}) but its stdout stayed open past \
                         the {}s timeout (a process it started keeps it)",
                        binary.display(),
                        timeout.as_secs_f64()
                    ),
                ));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CniError::new(
                    ErrorCode::Delegate,
                    format!(
                        "talking to plugin {plugin_type:?} ({}) failed: {e}",
                        binary.display()
                    ),
                ));
            }
        };
        Ok(Finished {
            binary,
            status,
            stdout,
            stderr_head,
        })
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // End-of-file on stdin before any configuration: the plugin gives up without acting.
            drop(child.stdin.take());
            let _ = child.kill();
            let _ = child.wait();
            tracing::debug!(plugin = %self.plugin_type, "started plugin abandoned before its configuration");
        }
    }
}

fn spawn(
    cmd: &mut Process,
    binary: &Path,
    plugin_type: &str,
    deadline: Instant,
) -> Result<Child, CniError> {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                    && attempt < ETXTBSY_RETRIES
                    && Instant::now() + backoff < deadline =>
            {
                attempt += 1;
                tracing::debug!(binary = %binary.display(), attempt, "text file busy, retrying");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                let hint = match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        " (the file or its #! interpreter does not exist)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        " (not executable, or on a noexec mount)"
                    }
                    _ => "",
                };
                return Err(CniError::new(
                    ErrorCode::Delegate,
                    format!(
                        "cannot execute plugin {plugin_type:?} ({}): {e}{hint}",
                        binary.display()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;
    use crate::cni::args::CniArgs;

    /// Write an executable `#!/bin/sh` plugin named `name` into `dir`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o755)
            .open(&path)
            .unwrap();
        f.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
            .unwrap();
        f.sync_all().unwrap();
        path
    }

    fn request(command: Command, dirs: &[&Path], netns: Option<&str>) -> Request {
        Request {
            command,
            container_id: "15b07cd189fb".into(),
            netns: netns.map(PathBuf::from),
            ifname: "net1".into(),
            args: CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns").unwrap(),
            path: dirs.iter().map(|d| d.to_path_buf()).collect(),
            config: Vec::new(),
        }
    }

    const DUMP_ENV: &str = r#"out="$(dirname "$0")/seen"
{
  printf 'COMMAND=%s\n' "$CNI_COMMAND"
  printf 'CONTAINERID=%s\n' "$CNI_CONTAINERID"
  printf 'NETNS=%s\n' "${CNI_NETNS-<unset>}"
  printf 'IFNAME=%s\n' "$CNI_IFNAME"
  printf 'ARGS=%s\n' "$CNI_ARGS"
  printf 'PATH=%s\n' "$CNI_PATH"
  printf 'KEEP=%s\n' "${KEEP-<unset>}"
} > "$out.env"
cat > "$out.stdin"
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1"}],"dns":{}}'"#;

    #[test]
    fn env_and_stdin_are_passed_exactly() {
        let bin = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        script(bin.path(), "dump", DUMP_ENV);
        let req = request(Command::Add, &[other.path(), bin.path()], None);
        let inherited = vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("KEEP".into(), "yes".into()),
            ("CNI_NETNS".into(), "/var/run/netns/leaked".into()),
            ("CNI_IFNAME".into(), "leaked".into()),
        ];
        let config = br#"{"cniVersion":"1.0.0","name":"n","type":"dump"}"#;
        let result = exec_with_env("dump", &req, config, DEFAULT_TIMEOUT, inherited)
            .unwrap()
            .unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.1.2.3/24");

        let env = fs::read_to_string(bin.path().join("seen.env")).unwrap();
        let expected = format!(
            "COMMAND=ADD\nCONTAINERID=15b07cd189fb\nNETNS=<unset>\nIFNAME=net1\n\
             ARGS=IgnoreUnknown=1;K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns\nPATH={}:{}\nKEEP=yes\n",
            other.path().display(),
            bin.path().display()
        );
        assert_eq!(env, expected);
        assert_eq!(fs::read(bin.path().join("seen.stdin")).unwrap(), config);
        // CNI_ARGS round-trips through our own parser
        let args_line = env.lines().find_map(|l| l.strip_prefix("ARGS=")).unwrap();
        assert_eq!(CniArgs::parse(args_line).unwrap(), req.args);
    }

    #[test]
    fn netns_is_passed_when_set_and_del_ignores_stdout() {
        let bin = tempfile::tempdir().unwrap();
        script(
            bin.path(),
            "dump",
            &format!("{DUMP_ENV}\necho trailing garbage"),
        );
        let req = request(Command::Del, &[bin.path()], Some("/var/run/netns/cni-1"));
        assert_eq!(exec_plugin("dump", &req, b"{}").unwrap(), None);
        let env = fs::read_to_string(bin.path().join("seen.env")).unwrap();
        assert!(
            env.contains("COMMAND=DEL\n") && env.contains("NETNS=/var/run/netns/cni-1\n"),
            "{env}"
        );
    }

    #[test]
    fn cni_error_object_passes_through_with_plugin_context() {
        let bin = tempfile::tempdir().unwrap();
        script(
            bin.path(),
            "host-local",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"no IP addresses available","details":"range 10.0.0.0/30"}'; exit 1"#,
        );
        let e = exec_plugin(
            "host-local",
            &request(Command::Add, &[bin.path()], None),
            b"{}",
        )
        .unwrap_err();
        assert_eq!(e.code, 11);
        assert_eq!(e.msg, r#"plugin "host-local": no IP addresses available"#);
        assert_eq!(e.details, "range 10.0.0.0/30");
    }

    #[test]
    fn garbage_and_exit_status_are_delegate_errors_with_output() {
        let bin = tempfile::tempdir().unwrap();
        script(
            bin.path(),
            "broken",
            "echo 'panic: not json' ; echo 'oops on stderr' >&2 ; exit 3",
        );
        let e =
            exec_plugin("broken", &request(Command::Add, &[bin.path()], None), b"{}").unwrap_err();
        assert!(e.is(ErrorCode::Delegate), "{e}");
        assert!(
            e.msg.contains("exit status 3") && e.msg.contains("broken"),
            "{e}"
        );
        assert!(
            e.details.contains("panic: not json") && e.details.contains("oops on stderr"),
            "{e}"
        );

        // exit 0 but an unreadable ADD result
        script(
            bin.path(),
            "liar",
            "echo '{\"ips\":[{\"address\":\"nope\"}]}'",
        );
        let e =
            exec_plugin("liar", &request(Command::Add, &[bin.path()], None), b"{}").unwrap_err();
        assert!(
            e.is(ErrorCode::Delegate) && e.msg.contains("unreadable ADD result"),
            "{e}"
        );
        assert!(e.details.contains("nope"), "{e}");
    }

    #[test]
    fn killed_by_signal_is_reported() {
        let bin = tempfile::tempdir().unwrap();
        script(bin.path(), "suicide", "kill -9 $$");
        let e = exec_plugin(
            "suicide",
            &request(Command::Check, &[bin.path()], None),
            b"{}",
        )
        .unwrap_err();
        assert!(e.is(ErrorCode::Delegate));
        assert!(e.msg.contains("signal 9 (SIGKILL) during CHECK"), "{e}");
    }

    #[test]
    fn timeout_kills_the_plugin() {
        let bin = tempfile::tempdir().unwrap();
        script(bin.path(), "sleeper", "exec sleep 30");
        let req = request(Command::Add, &[bin.path()], None);
        let e = exec_plugin_timeout("sleeper", &req, b"{}", Duration::from_secs(1)).unwrap_err();
        assert!(e.is(ErrorCode::Delegate));
        assert!(
            e.msg.contains("sleeper") && e.msg.contains("ADD") && e.msg.contains("timeout"),
            "{e}"
        );
    }

    #[test]
    fn a_leftover_process_holding_stdout_is_reported_at_the_deadline() {
        let bin = tempfile::tempdir().unwrap();
        // The plugin exits at once; the `sleep` it leaves behind inherited its stdout.
        script(bin.path(), "leaves-child", "sleep 30 &\nexit 0");
        let req = request(Command::Del, &[bin.path()], None);
        let started = Instant::now();
        let e = exec_plugin_timeout("leaves-child", &req, b"{}", Duration::from_millis(200))
            .unwrap_err();
        assert!(
            e.is(ErrorCode::Delegate) && e.msg.contains("stdout stayed open"),
            "{e}"
        );
        // Bounded by the deadline plus the drain after the exit, not by the leftover's 30 s.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_plugin_writing_much_output_before_reading_stdin_does_not_deadlock() {
        let bin = tempfile::tempdir().unwrap();
        // 256 KiB to stdout and to stderr (more than both pipes hold) before reading stdin.
        script(
            bin.path(),
            "chatty",
            "head -c 262144 /dev/zero | tr '\\0' e >&2\n\
             head -c 262144 /dev/zero | tr '\\0' ' '\n\
             cat > /dev/null\n\
             echo '{\"cniVersion\":\"1.0.0\"}'",
        );
        let padding = "x".repeat(256 * 1024);
        let config =
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"chatty","pad":"{padding}"}}"#);
        let run = run(
            "chatty",
            &request(Command::Add, &[bin.path()], None),
            config.as_bytes(),
            DEFAULT_TIMEOUT,
            std::env::vars_os().collect(),
        )
        .unwrap();
        assert!(run.status.success());
        assert_eq!(
            run.stdout.len(),
            262144 + r#"{"cniVersion":"1.0.0"}"#.len() + 1
        );
        // Only the head of stderr is kept for the details.
        assert_eq!(run.stderr_head, vec![b'e'; DETAIL_LIMIT]);
    }

    #[test]
    fn a_started_plugin_acts_only_once_given_its_configuration() {
        let bin = tempfile::tempdir().unwrap();
        let acted = bin.path().join("acted");
        let pid_file = bin.path().join("pid");
        // Like any CNI plugin: reads its configuration first, then acts.
        script(
            bin.path(),
            "reads-first",
            &format!(
                "echo $$ > {pid}\nconfig=$(cat)\n[ -n \"$config\" ] || exit 1\ntouch {acted}\n\
                 echo '{{\"cniVersion\":\"1.0.0\"}}'",
                pid = pid_file.display(),
                acted = acted.display()
            ),
        );
        let req = request(Command::Add, &[bin.path()], None);

        // Started, then finished: the same result exec_plugin gives.
        let started = start_plugin("reads-first", &req, DEFAULT_TIMEOUT).unwrap();
        let result = started.finish(br#"{"cniVersion":"1.0.0"}"#).unwrap();
        assert!(result.is_some());
        assert!(acted.exists());
        std::fs::remove_file(&acted).unwrap();
        std::fs::remove_file(&pid_file).unwrap();

        // Started, then abandoned: it never acted, and nothing is left running.
        let started = start_plugin("reads-first", &req, DEFAULT_TIMEOUT).unwrap();
        let waited = Instant::now();
        while !pid_file.exists() && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid: u32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(started);
        assert_eq!(proc_state(pid), None, "plugin {pid} is left behind");
        assert!(!acted.exists(), "an abandoned plugin acted");
    }

    /// The state letter of `/proc/<pid>/stat` (`Z` for a zombie), `None` when the pid is gone.
    fn proc_state(pid: u32) -> Option<char> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    #[test]
    fn timeout_kills_a_hanging_plugin_and_reaps_it() {
        let bin = tempfile::tempdir().unwrap();
        let pid_file = bin.path().join("pid");
        // `exec` keeps the shell's pid, so the recorded pid is the process that hangs.
        script(
            bin.path(),
            "hang",
            &format!("echo $$ > {}\nexec sleep 600", pid_file.display()),
        );
        let req = request(Command::Del, &[bin.path()], None);
        let e = exec_plugin_timeout("hang", &req, b"{}", Duration::from_millis(300)).unwrap_err();
        assert!(
            e.is(ErrorCode::Delegate) && e.msg.contains("timeout") && e.msg.contains("killed"),
            "{e}"
        );
        let pid: u32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed and reaped before exec returned: no process, not even a zombie, is left.
        assert_eq!(proc_state(pid), None, "plugin {pid} is left behind");
    }

    #[test]
    fn a_plugin_exit_is_reaped_and_a_large_stdin_is_passed_whole() {
        let bin = tempfile::tempdir().unwrap();
        let pid_file = bin.path().join("pid");
        script(
            bin.path(),
            "cat-back",
            &format!(
                "echo $$ > {}\ncat > \"$(dirname \"$0\")/seen\"\n\
                 echo '{{\"cniVersion\":\"1.0.0\"}}'",
                pid_file.display()
            ),
        );
        // Larger than any pipe buffer, so it is fed in pieces while the plugin reads.
        let padding = "x".repeat(256 * 1024);
        let config =
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"cat-back","pad":"{padding}"}}"#);
        assert!(config.len() > 64 * 1024);
        let result = exec_plugin(
            "cat-back",
            &request(Command::Add, &[bin.path()], None),
            config.as_bytes(),
        )
        .unwrap();
        assert!(result.is_some());
        assert_eq!(
            fs::read(bin.path().join("seen")).unwrap(),
            config.as_bytes()
        );
        let pid: u32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(proc_state(pid), None, "plugin {pid} was not reaped");
    }

    #[test]
    fn path_traversal_is_refused_before_lookup() {
        let bin = tempfile::tempdir().unwrap();
        let req = request(Command::Add, &[bin.path()], None);
        for bad in [
            "",
            ".",
            "..",
            "../bridge",
            "a/b",
            "/usr/lib/cni/bridge",
            "a\0b",
            "x..y",
        ] {
            let e = exec_plugin(bad, &req, b"{}").unwrap_err();
            assert!(e.is(ErrorCode::InvalidConfig), "{bad:?}: {e}");
            assert!(e.msg.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn not_found_lists_the_dirs_and_skips_non_executables() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let req = request(Command::Add, &[a.path(), b.path()], None);
        let e = exec_plugin("nothere", &req, b"{}").unwrap_err();
        assert!(e.is(ErrorCode::InvalidConfig));
        assert_eq!(
            e.msg,
            format!(
                "failed to find plugin \"nothere\" in path [{}, {}]",
                a.path().display(),
                b.path().display()
            )
        );
        // a non-executable file in the first dir is skipped for an executable in the second
        fs::write(a.path().join("tool"), "#!/bin/sh\nexit 9\n").unwrap();
        fs::create_dir(a.path().join("dir-plugin")).unwrap();
        let found = script(b.path(), "tool", "exit 0");
        assert_eq!(find_plugin("tool", &req.path).unwrap(), found);
        let e = find_plugin("dir-plugin", &req.path).unwrap_err();
        assert!(e.details.contains("not a regular file"), "{e}");
        fs::remove_file(&found).unwrap();
        let e = find_plugin("tool", &req.path).unwrap_err();
        assert!(e.details.contains("is not executable"), "{e}");
        assert!(
            find_plugin("tool", &[])
                .unwrap_err()
                .msg
                .contains("no CNI_PATH")
        );
    }

    #[test]
    fn spawn_failure_names_the_binary() {
        let bin = tempfile::tempdir().unwrap();
        let path = bin.path().join("nointerp");
        fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o755)
            .open(&path)
            .unwrap()
            .write_all(b"#!/nonexistent/interpreter\n")
            .unwrap();
        let e = exec_plugin(
            "nointerp",
            &request(Command::Add, &[bin.path()], None),
            b"{}",
        )
        .unwrap_err();
        assert!(e.is(ErrorCode::Delegate));
        assert!(
            e.msg.contains(&path.display().to_string()) && e.msg.contains("interpreter"),
            "{e}"
        );
    }

    #[test]
    fn version_lists_supported_versions() {
        let bin = tempfile::tempdir().unwrap();
        script(
            bin.path(),
            "modern",
            r#"[ "$CNI_COMMAND" = VERSION ] || exit 4
grep -q '"cniVersion":"1.1.0"' || exit 5
echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}'"#,
        );
        script(bin.path(), "legacy", r#"echo '{"cniVersion":"0.2.0"}'"#);
        script(bin.path(), "mute", r#"echo '{"cniVersion":"0.3.1"}'"#);
        let dirs = [bin.path().to_path_buf()];
        assert_eq!(
            exec_version("modern", &dirs).unwrap(),
            ["0.4.0", "1.0.0", "1.1.0"]
        );
        assert_eq!(exec_version("legacy", &dirs).unwrap(), ["0.1.0", "0.2.0"]);
        let e = exec_version("mute", &dirs).unwrap_err();
        assert!(
            e.is(ErrorCode::Delegate) && e.msg.contains("supportedVersions"),
            "{e}"
        );
    }

    #[test]
    fn error_object_without_code_keeps_its_message() {
        assert_eq!(
            cni_error_object(br#"{"msg":"x"}"#).map(|e| e.code),
            Some(ErrorCode::Delegate as u32)
        );
        assert_eq!(cni_error_object(br#"{"code":0}"#), None);
        assert_eq!(cni_error_object(b"[]"), None);
    }

    /// The real reference `static` IPAM plugin: its ADD only computes a result.
    #[test]
    fn reference_static_plugin_add() {
        let dir = Path::new("/usr/lib/cni");
        if !dir.join("static").is_file() {
            eprintln!(
                "skipping: /usr/lib/cni/static is absent (install containernetworking-plugins)"
            );
            return;
        }
        let config = br#"{"cniVersion":"1.0.0","name":"st","type":"static",
            "ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"}],
                    "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.10.0.53"]}}}"#;
        let req = request(Command::Add, &[dir], Some("/proc/self/ns/net"));
        let result = exec_plugin("static", &req, config).unwrap().unwrap();
        assert_eq!(result.ips.len(), 1);
        assert_eq!(result.ips[0].address.to_string(), "10.10.0.5/24");
        assert_eq!(
            result.ips[0].gateway.map(|g| g.to_string()).as_deref(),
            Some("10.10.0.1")
        );
        assert_eq!(result.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(result.dns.nameservers, ["10.10.0.53"]);
        let versions = exec_version("static", &[dir.to_path_buf()]).unwrap();
        assert!(versions.iter().any(|v| v == "1.0.0"), "{versions:?}");
    }
}
