//! Running a CNI plugin binary exactly as a container runtime does: a clean environment with only
//! the `CNI_*` variables and `PATH`, the config on stdin, inside the node's ("host") netns.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use serde_json::Value;

use crate::TestNetns;
use crate::bins::REFERENCE_DIR;

/// containerd's `PATH` for plugins, as captured in `shared/testdata/runtime`.
pub const RUNTIME_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One plugin invocation. Empty strings are passed as empty variables (like containerd's second DEL).
#[derive(Debug, Clone, Default)]
pub struct CniCall {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: String,
    pub stdin: Vec<u8>,
}

/// What the plugin did.
#[derive(Debug, Clone)]
pub struct CniOutput {
    pub status: ExitStatus,
    /// stdout parsed as JSON; `None` when stdout is empty or not JSON (see `raw_stdout`).
    pub stdout: Option<Value>,
    pub raw_stdout: String,
    pub stderr: String,
}

impl CniOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The JSON reply, panicking with the whole output when there is none.
    pub fn json(&self) -> &Value {
        self.stdout
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON on stdout: {self}"))
    }

    /// True when the call failed with a CNI error object (`code` number, `msg` string) on stdout.
    pub fn is_cni_error(&self) -> bool {
        !self.success()
            && self.stdout.as_ref().is_some_and(|v| {
                v.get("code").is_some_and(Value::is_u64)
                    && v.get("msg").is_some_and(Value::is_string)
            })
    }

    /// The `code` of an error reply.
    pub fn error_code(&self) -> Option<u64> {
        self.stdout.as_ref()?.get("code")?.as_u64()
    }
}

impl std::fmt::Display for CniOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stdout={:?} stderr={:?}",
            self.status, self.raw_stdout, self.stderr
        )
    }
}

impl CniCall {
    /// A call for `command` with `config` on stdin, `CNI_ARGS` empty and `CNI_PATH` the reference dir.
    pub fn new(
        command: &str,
        container_id: &str,
        netns: &str,
        ifname: &str,
        config: &Value,
    ) -> Self {
        CniCall {
            command: command.to_owned(),
            container_id: container_id.to_owned(),
            netns: netns.to_owned(),
            ifname: ifname.to_owned(),
            args: String::new(),
            path: REFERENCE_DIR.to_owned(),
            stdin: serde_json::to_vec(config).expect("serialize config"),
        }
    }

    pub fn with_args(mut self, args: &str) -> Self {
        self.args = args.to_owned();
        self
    }

    pub fn with_path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// The environment the binary sees: exactly these variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", self.command.clone()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.netns.clone()),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.clone()),
            ("CNI_PATH", self.path.clone()),
            ("PATH", RUNTIME_PATH.to_owned()),
        ]
    }

    /// Run `bin` in the namespace `host` (via `ip netns exec`, which also remounts `/sys` for that
    /// namespace, as on a real node).
    pub fn run(&self, bin: &Path, host: &TestNetns) -> CniOutput {
        let mut child = Command::new("ip")
            .arg("netns")
            .arg("exec")
            .arg(host.name())
            .arg(bin)
            .env_clear()
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "spawning ip netns exec {} {}: {e}",
                    host.name(),
                    bin.display()
                )
            });
        if let Some(mut stdin) = child.stdin.take() {
            // a plugin may exit without reading stdin (e.g. on a bad env); ignore EPIPE
            let _ = stdin.write_all(&self.stdin);
        }
        let out = child.wait_with_output().expect("waiting for plugin");
        let raw_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        CniOutput {
            status: out.status,
            stdout: serde_json::from_str(&raw_stdout).ok(),
            raw_stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
