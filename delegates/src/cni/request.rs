//! One CNI invocation, parsed once from the environment and stdin.

use std::path::PathBuf;

use super::args::CniArgs;
use super::error::CniError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(raw: &str) -> Result<Command, CniError> {
        Ok(match raw {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            other => {
                return Err(CniError::invalid_env(format!(
                    "CNI_COMMAND: unknown verb {other:?}"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }
}

/// A parsed request. The meta-plugin builds these directly for in-process delegates.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    /// Empty for STATUS, GC and VERSION.
    pub container_id: String,
    /// `None` when the runtime sent no or an empty `CNI_NETNS` (allowed for DEL).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: CniArgs,
    pub path: Vec<PathBuf>,
    /// The network configuration exactly as received.
    pub config: Vec<u8>,
}

impl Request {
    /// Parse from an environment lookup (std::env::var in the binaries, a map in tests).
    pub fn parse(
        env: impl Fn(&str) -> Option<String>,
        stdin: Vec<u8>,
    ) -> Result<Request, CniError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let command = Command::parse(
            &get("CNI_COMMAND").ok_or_else(|| CniError::invalid_env("CNI_COMMAND is not set"))?,
        )?;
        let require = |k: &str| {
            get(k).ok_or_else(|| {
                CniError::invalid_env(format!("{k} is required for {}", command.as_str()))
            })
        };
        let (needs_container, needs_netns) = match command {
            Command::Add | Command::Check => (true, true),
            Command::Del => (true, false),
            Command::Status | Command::Gc | Command::Version => (false, false),
        };
        let container_id = if needs_container {
            require("CNI_CONTAINERID")?
        } else {
            String::new()
        };
        if needs_container {
            validate_container_id(&container_id)?;
        }
        let netns = if needs_netns {
            Some(require("CNI_NETNS")?)
        } else {
            get("CNI_NETNS")
        };
        let ifname = if needs_container {
            require("CNI_IFNAME")?
        } else {
            String::new()
        };
        if needs_container {
            validate_ifname(&ifname)
                .map_err(|m| CniError::invalid_env(format!("CNI_IFNAME: {m}")))?;
        }
        let path = match command {
            Command::Version => Vec::new(),
            _ => std::env::split_paths(&require("CNI_PATH")?).collect(),
        };
        let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
        Ok(Request {
            command,
            container_id,
            netns: netns.map(PathBuf::from),
            ifname,
            args,
            path,
            config: stdin,
        })
    }

    /// `K8S_POD_NAMESPACE/K8S_POD_NAME` for log lines, when the runtime sent them.
    pub fn pod_ref(&self) -> Option<String> {
        match (
            self.args.get("K8S_POD_NAMESPACE"),
            self.args.get("K8S_POD_NAME"),
        ) {
            (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
            (None, Some(name)) => Some(name.to_string()),
            _ => None,
        }
    }
}

/// The reference skel's container id rule: starts alphanumeric, then `[A-Za-z0-9_.-]`.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(CniError::invalid_env(format!(
            "CNI_CONTAINERID: invalid container id {id:?}"
        )))
    }
}

/// Linux interface name rules: 1..=15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > 15 {
        return Err(format!("interface name {name:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is not allowed"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return Err(format!("interface name {name:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "15b07cd189fb"),
        ("CNI_NETNS", "/var/run/netns/cni-1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
        ),
    ];

    #[test]
    fn parses_a_containerd_add() {
        let r = Request::parse(env(ADD), b"{}".to_vec()).unwrap();
        assert_eq!(r.command, Command::Add);
        assert_eq!(
            r.netns.as_deref(),
            Some(std::path::Path::new("/var/run/netns/cni-1"))
        );
        assert_eq!(r.path.len(), 2);
        assert_eq!(r.pod_ref().as_deref(), Some("ns/p"));
    }

    #[test]
    fn add_without_netns_is_invalid_env_naming_it() {
        let pairs: Vec<_> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        let e = Request::parse(env(&pairs), vec![]).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_NETNS"), "{e}");
    }

    #[test]
    fn second_containerd_del_has_empty_netns() {
        let mut pairs: Vec<_> = ADD.to_vec();
        pairs[0] = ("CNI_COMMAND", "DEL");
        pairs[2] = ("CNI_NETNS", "");
        let r = Request::parse(env(&pairs), vec![]).unwrap();
        assert_eq!(r.netns, None);
    }

    #[test]
    fn version_needs_nothing_and_status_needs_only_path() {
        assert!(Request::parse(env(&[("CNI_COMMAND", "VERSION")]), vec![]).is_ok());
        let e = Request::parse(env(&[("CNI_COMMAND", "STATUS")]), vec![]).unwrap_err();
        assert!(e.msg.contains("CNI_PATH"));
        assert!(Request::parse(env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")]), vec![]).is_ok());
    }

    #[test]
    fn bad_verb_ifname_and_container_id_are_rejected() {
        assert!(Request::parse(env(&[("CNI_COMMAND", "ATTACH")]), vec![]).is_err());
        let mut pairs = ADD.to_vec();
        pairs[3] = ("CNI_IFNAME", "averyveryverylongname");
        let e = Request::parse(env(&pairs), vec![]).unwrap_err();
        assert!(e.msg.contains("CNI_IFNAME"), "{e}");
        let mut pairs = ADD.to_vec();
        pairs[1] = ("CNI_CONTAINERID", "-bad id");
        assert!(Request::parse(env(&pairs), vec![]).is_err());
    }

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("net1").is_ok());
        assert!(validate_ifname("123456789012345").is_ok());
        for bad in ["", "1234567890123456", ".", "..", "a/b", "a b", "a:b"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
