//! Verb dispatch shared by every Plexus plugin binary: version negotiation, one function per
//! verb, and turning the outcome into the reply and exit status.

use std::io::Read;
use std::process::ExitCode;

use serde_json::Value;

use super::error::{CniError, ErrorCode};
use super::netconf::NetConf;
use super::reply::{to_reply_bytes, write_stdout};
use super::request::{Command, Request};
use super::result::CniResult;
use super::version::{CniVersion, version_reply};

/// A CNI plugin: one function per verb. The meta-plugin calls these in-process; the standalone
/// binaries call them through [`run_main`].
pub trait Plugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    fn del(&self, req: &Request) -> Result<(), CniError>;
    fn check(&self, req: &Request) -> Result<(), CniError>;
    fn status(&self, req: &Request) -> Result<(), CniError>;
    fn gc(&self, req: &Request) -> Result<(), CniError>;
}

/// What a dispatched request produced: the stdout bytes (if any) and success.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub success: bool,
}

/// Run one parsed request against `plugin`, negotiating the version first.
pub fn dispatch(plugin: &dyn Plugin, req: &Request) -> Outcome {
    if req.command == Command::Version {
        let asked = serde_json::from_slice::<Value>(&req.config).ok();
        let asked = asked
            .as_ref()
            .and_then(|v| v.get("cniVersion"))
            .and_then(Value::as_str);
        return Outcome {
            stdout: to_reply_bytes(&version_reply(asked)),
            success: true,
        };
    }
    let header = NetConf::parse(&req.config);
    let reply_version = header
        .as_ref()
        .ok()
        .and_then(|h| h.cni_version.clone())
        .unwrap_or_else(|| CniVersion::LATEST.to_string());
    match run_verb(plugin, req, header) {
        Ok(Some(result)) => Outcome {
            stdout: to_reply_bytes(&result),
            success: true,
        },
        Ok(None) => Outcome {
            stdout: Vec::new(),
            success: true,
        },
        Err(e) => {
            tracing::error!(
                command = req.command.as_str(),
                container = %req.container_id,
                ifname = %req.ifname,
                code = e.code,
                "{e}"
            );
            Outcome {
                stdout: to_reply_bytes(&e.to_json(&reply_version)),
                success: false,
            }
        }
    }
}

fn run_verb(
    plugin: &dyn Plugin,
    req: &Request,
    header: Result<NetConf, CniError>,
) -> Result<Option<Value>, CniError> {
    let header = header?;
    let version = header.version()?;
    let too_old = |verb: &str, since: &str| {
        Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version {version} does not allow {verb} (needs {since} or later)"),
        ))
    };
    match req.command {
        Command::Add => plugin.add(req).map(|r| Some(r.to_json(version))),
        Command::Del => plugin.del(req).map(|()| None),
        Command::Check if !version.supports_check() => too_old("CHECK", "0.4.0"),
        Command::Check => plugin.check(req).map(|()| None),
        Command::Status if !version.supports_status_and_gc() => too_old("STATUS", "1.1.0"),
        Command::Status => plugin.status(req).map(|()| None),
        Command::Gc if !version.supports_status_and_gc() => too_old("GC", "1.1.0"),
        Command::Gc => plugin.gc(req).map(|()| None),
        Command::Version => Ok(Some(version_reply(header.cni_version.as_deref()))),
    }
}

/// The `main` of a standalone plugin binary: env + stdin in, reply out, exit status. Logs go
/// to stderr, filtered by `PLEXUS_LOG` (default: warnings).
pub fn run_main(plugin: &dyn Plugin) -> ExitCode {
    run_main_with(plugin, |_| init_logging())
}

/// [`run_main`] with the plugin's own logging set-up: `init_logging` gets the bytes read from
/// stdin (possibly partial when reading failed) before anything is logged, so a plugin can take
/// its log destination and level from its configuration.
pub fn run_main_with(plugin: &dyn Plugin, init_logging: impl FnOnce(&[u8])) -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    init_logging(&stdin);
    let outcome = match read {
        Err(e) => failure(CniError::io(format!("cannot read stdin: {e}"))),
        Ok(_) => match Request::parse(|k| std::env::var(k).ok(), stdin) {
            Ok(req) => dispatch(plugin, &req),
            Err(e) => failure(e),
        },
    };
    write_stdout(&outcome.stdout);
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn failure(e: CniError) -> Outcome {
    tracing::error!(code = e.code, "{e}");
    Outcome {
        stdout: to_reply_bytes(&e.to_json(CniVersion::LATEST.as_str())),
        success: false,
    }
}

/// Logs go to stderr (the runtime keeps it), filtered by `PLEXUS_LOG` (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLEXUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::args::CniArgs;

    struct Fixed;
    impl Plugin for Fixed {
        fn add(&self, _: &Request) -> Result<CniResult, CniError> {
            Ok(CniResult::default())
        }
        fn del(&self, _: &Request) -> Result<(), CniError> {
            Err(CniError::new(ErrorCode::Netlink, "boom"))
        }
        fn check(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn status(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn gc(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
    }

    fn req(command: Command, config: &str) -> Request {
        Request {
            command,
            container_id: "c".into(),
            netns: None,
            ifname: "eth0".into(),
            args: CniArgs::default(),
            path: vec![],
            config: config.as_bytes().to_vec(),
        }
    }

    fn json(o: &Outcome) -> Value {
        serde_json::from_slice(&o.stdout).unwrap()
    }

    #[test]
    fn add_answers_in_the_config_version() {
        let o = dispatch(
            &Fixed,
            &req(Command::Add, r#"{"cniVersion":"0.3.1","name":"n"}"#),
        );
        assert!(o.success);
        assert_eq!(json(&o)["cniVersion"], "0.3.1");
    }

    #[test]
    fn errors_carry_code_and_config_version() {
        let o = dispatch(
            &Fixed,
            &req(Command::Del, r#"{"cniVersion":"1.0.0","name":"n"}"#),
        );
        assert!(!o.success);
        let v = json(&o);
        assert_eq!(v["code"], 100);
        assert_eq!(v["cniVersion"], "1.0.0");
    }

    #[test]
    fn unsupported_version_and_old_check_are_code_1() {
        let o = dispatch(&Fixed, &req(Command::Add, r#"{"cniVersion":"2.0.0"}"#));
        assert_eq!(json(&o)["code"], 1);
        let o = dispatch(&Fixed, &req(Command::Check, r#"{"cniVersion":"0.3.1"}"#));
        assert_eq!(json(&o)["code"], 1);
        let o = dispatch(&Fixed, &req(Command::Status, r#"{"cniVersion":"1.0.0"}"#));
        assert_eq!(json(&o)["code"], 1);
        assert!(dispatch(&Fixed, &req(Command::Status, r#"{"cniVersion":"1.1.0"}"#)).success);
    }

    #[test]
    fn undecodable_config_is_code_6() {
        let o = dispatch(&Fixed, &req(Command::Add, "{not json"));
        assert_eq!(json(&o)["code"], 6);
    }

    #[test]
    fn version_verb_needs_no_valid_config() {
        let o = dispatch(&Fixed, &req(Command::Version, ""));
        assert!(o.success);
        assert_eq!(json(&o)["supportedVersions"][6], "1.1.0");
    }

    #[test]
    fn replies_are_four_space_indented() {
        let o = dispatch(&Fixed, &req(Command::Add, r#"{"cniVersion":"1.0.0"}"#));
        assert!(
            String::from_utf8(o.stdout)
                .unwrap()
                .contains("\n    \"cniVersion\"")
        );
    }
}
