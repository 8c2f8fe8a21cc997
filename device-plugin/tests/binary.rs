//! The real `plexus-device-plugin` binary: flags, startup errors, SIGTERM.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_plexus-device-plugin");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_removes_the_sockets() {
    stop_with(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_removes_the_sockets() {
    stop_with(Signal::SIGINT).await;
}

async fn stop_with(signal: Signal) {
    let fake = host();
    let tmp = tempfile::tempdir().unwrap();
    let plugin_dir = tmp.path().join("device-plugins");
    std::fs::create_dir(&plugin_dir).unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let mut kubelet = FakeKubelet::start(&plugin_dir);
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(fake.root())
        .arg("--device-plugins-dir")
        .arg(&plugin_dir)
        .arg("--devinfo-dir")
        .arg(tmp.path().join("devinfo"))
        .args([
            "--metrics-address",
            "127.0.0.1:0",
            "--poll-interval-ms",
            "100",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let regs = kubelet.registrations(2).await;
    assert_eq!(regs[1].resource_name, NET);
    assert!(plugin_dir.join(NET_SOCKET).exists());
    assert!(plugin_dir.join(DPDK_SOCKET).exists());
    assert_eq!(kubelet.watch(NET_SOCKET).await.next().await.len(), 6);

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, signal).unwrap();
    let status = within("the daemon to exit", child.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!plugin_dir.join(NET_SOCKET).exists());
    assert!(!plugin_dir.join(DPDK_SOCKET).exists());
    assert!(kubelet.socket().exists());
}

#[test]
fn a_bad_selector_range_fails_startup_naming_it() {
    let fake = host();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"resourceList":[{"resourceName":"sriov_net","selectors":[{"vendors":["8086"]},
            {"pfNames":["ens1f0#0,7-3"]}]}]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(fake.root())
        .arg("--device-plugins-dir")
        .arg(tmp.path())
        .args(["--metrics-address", "off"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("selectors[1].pfNames"), "{stderr}");
    assert!(stderr.contains("ens1f0#0,7-3"), "{stderr}");
    assert!(stderr.contains("\"7-3\" ends before it starts"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    // nothing but the config was created
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn an_unsupported_selector_and_bad_flags_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"resourceList":[{"resourceName":"a","selectors":{"ddpProfiles":["gtp"]}}]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("selectors[0].ddpProfiles"), "{stderr}");
    assert!(stderr.contains("not supported"), "{stderr}");

    let out = Command::new(BIN)
        .args(["--metrics-address", "nowhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere"), "{stderr}");
    // a plain call for help works and does not start anything
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--sysfs-root",
        "--device-plugins-dir",
        "--devinfo-dir",
        "--metrics-address",
    ] {
        assert!(help.contains(flag), "{help}");
    }
}
