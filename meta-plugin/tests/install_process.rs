//! The real `plexus install` process on a fake node: its watch loop, its readiness probe
//! (`plexus install --health`), and what SIGTERM does, exactly as the DaemonSet runs them.

#![allow(clippy::unwrap_used)]

mod install_support;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use install_support::*;

const PLEXUS: &str = env!("CARGO_BIN_EXE_plexus");

/// The installer on `node`, configured by flags (and a clean environment, as in a container
/// whose only settings are the ones given).
fn installer(node: &FakeNode, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(PLEXUS);
    cmd.env_clear()
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .envs(env.iter().copied())
        .arg("install")
        .arg("--host-root")
        .arg(&node.root)
        .arg("--source-dir")
        .arg(&node.source)
        .arg("--service-account-dir")
        .arg(&node.sa.dir)
        .arg("--status-file")
        .arg(node.status_file())
        .args(["--poll-interval-ms", "20", "--log-level", "debug"])
        .args(extra);
    cmd
}

fn start(node: &FakeNode, extra: &[&str], env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(node.tmp.path().join("install.log")).unwrap();
    installer(node, extra, env)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn log(node: &FakeNode) -> String {
    std::fs::read_to_string(node.tmp.path().join("install.log")).unwrap()
}

/// `plexus install --health`, as the readiness probe runs it.
fn health(node: &FakeNode) -> Output {
    Command::new(PLEXUS)
        .env_clear()
        .args(["install", "--health", "--status-file"])
        .arg(node.status_file())
        .output()
        .unwrap()
}

fn healthy(node: &FakeNode) -> bool {
    health(node).status.success()
}

fn health_reason(node: &FakeNode) -> String {
    let out = health(node);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn finish(mut child: Child) -> (ExitStatus, String) {
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    (status, stdout)
}

fn clusters(node: &FakeNode) -> Option<String> {
    let bytes = std::fs::read(node.conflist()).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["plugins"][0]["clusterNetwork"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn watch_loop_health_and_sigterm_cleanup() {
    let node = FakeNode::new();
    // Nothing has run yet: the probe fails.
    let reason = health_reason(&node);
    assert!(reason.contains("has not recorded a status"), "{reason}");

    let child = start(&node, &[], &[]);
    // Binaries and credentials come first; without a default network the node is not ready.
    wait_for("the kubeconfig", || node.kubeconfig().exists());
    assert_eq!(
        std::fs::read(node.bin_dir().join("plexus")).unwrap(),
        std::fs::read(node.source.join("plexus")).unwrap()
    );
    wait_for("not ready for want of a default network", || {
        !healthy(&node) && health_reason(&node).contains("no default network config")
    });
    assert!(!node.conflist().exists());

    // The cluster's CNI arrives.
    node.write_conf("10-flannel.conflist", FLANNEL);
    wait_for("ready", || healthy(&node));
    let out = health(&node);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("delegates eth0 to /etc/cni/net.d/10-flannel.conflist"),
        "{out:?}"
    );
    assert_eq!(
        clusters(&node).as_deref(),
        Some("/etc/cni/net.d/10-flannel.conflist")
    );

    // Another CNI config becomes first.
    node.write_conf("05-calico.conflist", &calico(1440));
    wait_for("the conflist to follow 05-calico", || {
        clusters(&node).as_deref() == Some("/etc/cni/net.d/05-calico.conflist")
    });
    wait_for("ready on calico", || healthy(&node));

    // Someone deletes our file: readiness drops until the loop puts it back.
    std::fs::remove_file(node.conflist()).unwrap();
    wait_for("the conflist to be rewritten", || node.conflist().exists());
    wait_for("ready again", || healthy(&node));

    // The default networks go away: the conflist goes, readiness fails.
    node.remove_conf("05-calico.conflist");
    node.remove_conf("10-flannel.conflist");
    wait_for("the conflist to be removed", || !node.conflist().exists());
    wait_for("not ready", || {
        !healthy(&node) && health_reason(&node).contains("no default network config")
    });
    node.write_conf("10-flannel.conflist", FLANNEL);
    wait_for("ready after the default network returned", || {
        healthy(&node)
    });

    signal(&child, "TERM");
    let (status, stdout) = finish(child);
    assert!(status.success(), "{status:?}\n{}", log(&node));
    assert_eq!(stdout, "", "the installer writes nothing to stdout");
    assert!(!node.conflist().exists(), "SIGTERM left 00-plexus.conflist");
    // The binaries and credentials stay: pods already running need them for DEL.
    assert!(node.bin_dir().join("plexus").exists());
    assert!(node.kubeconfig().exists());
    let reason = health_reason(&node);
    assert!(reason.contains("shutting down"), "{reason}");

    let log = log(&node);
    for step in [
        "installed binary",
        "wrote the service account token",
        "wrote the kubeconfig",
        "wrote 00-plexus.conflist",
        "default network moved to another file",
        "removed 00-plexus.conflist",
        "SIGTERM received",
        "plexus install stopped",
    ] {
        assert!(log.contains(step), "log lacks {step:?}:\n{log}");
    }
}

#[test]
fn leave_config_on_exit_set_by_environment_keeps_the_conflist() {
    let node = FakeNode::new();
    node.write_conf("10-containerd-net.conflist", BRIDGE);
    let child = start(&node, &[], &[("PLEXUS_LEAVE_CONFIG_ON_EXIT", "true")]);
    wait_for("ready", || healthy(&node));
    let written = std::fs::read(node.conflist()).unwrap();

    signal(&child, "TERM");
    let (status, _) = finish(child);
    assert!(status.success(), "{status:?}\n{}", log(&node));
    assert_eq!(std::fs::read(node.conflist()).unwrap(), written);
    assert!(log(&node).contains("left in place"), "{}", log(&node));
    // the probe no longer passes once the installer is gone
    assert!(!healthy(&node));
}

#[test]
fn sigint_cleans_up_too() {
    let node = FakeNode::new();
    node.write_conf("10-flannel.conflist", FLANNEL);
    let child = start(&node, &[], &[]);
    wait_for("ready", || healthy(&node));
    signal(&child, "INT");
    let (status, _) = finish(child);
    assert!(status.success(), "{status:?}");
    assert!(!node.conflist().exists());
}

fn run_to_end(cmd: &mut Command) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn fatal_problems_exit_nonzero_with_the_reason() {
    // no meta-plugin binary in the image nor on the node
    let node = FakeNode::new();
    std::fs::remove_file(node.source.join("plexus")).unwrap();
    let out = run_to_end(&mut installer(&node, &[], &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("binary \"plexus\" is neither in the source dir"),
        "{err}"
    );
    assert!(!node.conflist().exists());

    // not in a pod: no API server address
    let node = FakeNode::new();
    let out = run_to_end(
        installer(&node, &[], &[])
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KUBERNETES_SERVICE_HOST is not set"), "{err}");

    // a flag the plugin would reject
    let out = run_to_end(&mut installer(&node, &["--plugin-log-level", "loud"], &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("logLevel") && err.contains("loud"), "{err}");
    assert_eq!(
        err.matches("must be one of").count(),
        1,
        "the cause once: {err}"
    );
    assert!(
        !Path::new(&node.bin_dir().join("plexus")).exists(),
        "nothing is installed on bad flags"
    );
}

#[test]
fn the_cni_path_is_unchanged_without_arguments() {
    // The runtime never passes arguments: VERSION still answers on stdout as a CNI plugin.
    let out = Command::new(PLEXUS)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["supportedVersions"].as_array().unwrap().len() > 1, "{v}");
}
