//! The standalone `plexus-sriov` binary, run as a runtime runs it: a clean environment with the
//! `CNI_*` variables, the config on stdin, the reply on stdout. Its sysfs is a fake tree
//! (`PLEXUS_SYSFS_ROOT`) and its state a temp dir (`PLEXUS_SRIOV_STATE_DIR`). The full ADD/DEL
//! needs a PF the kernel can answer for: a netdevsim device, so that test runs in the VM.
//!
//! Built with the `test-fixtures` feature (on in workspace builds, where the fixture-using
//! crates unify it).
#![cfg(feature = "test-fixtures")]
#![allow(clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use plexus_delegates::netlink::{Netlink, NewLink, NewLinkKind, RtNetlink};
use plexus_delegates::netns::fixture::{TestNetns, require_root, skip};
use plexus_delegates::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_plexus-sriov");
const PF_PCI: &str = "0000:03:00.0";

struct Call<'a> {
    command: &'a str,
    netns: &'a str,
    sysfs: &'a Path,
    state: &'a Path,
    conf: &'a Value,
}

impl Call<'_> {
    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", "binctr1")
            .env("CNI_NETNS", self.netns)
            .env("CNI_IFNAME", "net1")
            .env(
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
            )
            .env("CNI_PATH", "/usr/lib/cni")
            .env("PLEXUS_SYSFS_ROOT", self.sysfs)
            .env("PLEXUS_SRIOV_STATE_DIR", self.state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self) -> Output {
        let mut child = self.command().spawn().expect("spawn plexus-sriov");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&serde_json::to_vec(self.conf).expect("json"))
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Run inside `ns` (the binary's host namespace).
    fn run_in(&self, ns: &TestNetns) -> Output {
        ns.netns().run_in(|| self.run()).expect("enter netns")
    }
}

fn reply(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON reply ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn tree() -> FakeSysfs {
    FakeSysfs::new()
        .add_pf("ens1f0", PF_PCI, PfSpec::default())
        .add_vfs(1, VfSpec::kernel("iavf"))
        .add_vfs(1, VfSpec::userspace("vfio-pci"))
}

#[test]
fn sriov_bin_errors_status_and_log_file() {
    let fake = tree();
    let state = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("sriov.log");
    let vf = fake.vf_pci(PF_PCI, 0).to_string();
    let conf = json!({"cniVersion":"0.4.0","name":"n","type":"sriov","deviceID":vf,
        "vlan":4095,"logLevel":"debug","logFile":log});
    let call = |command, conf| Call {
        command,
        netns: "/run/netns/not-used",
        sysfs: fake.root(),
        state: state.path(),
        conf,
    };
    let out = call("ADD", &conf).run();
    assert!(!out.status.success());
    let e = reply(&out);
    assert_eq!(e["code"], 7, "{e}");
    assert_eq!(e["cniVersion"], "0.4.0");
    let msg = e["msg"].as_str().expect("msg");
    assert!(msg.contains("vlan") && msg.contains("4095"), "{msg}");
    let logged = std::fs::read_to_string(&log).expect("logFile written");
    assert!(logged.contains("4095"), "{logged}");
    assert!(out.stderr.is_empty(), "logs go to logFile, not stderr");
    assert_eq!(std::fs::read_dir(state.path()).expect("dir").count(), 0);

    let version = json!({"cniVersion":"1.1.0"});
    let out = call("VERSION", &version).run();
    assert!(out.status.success());
    assert_eq!(reply(&out)["supportedVersions"][6], "1.1.0");

    let status = json!({"cniVersion":"1.1.0","name":"n","type":"sriov","deviceID":vf});
    let out = call("STATUS", &status).run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    fake.set_link("ens1f0", false);
    let out = call("STATUS", &status).run();
    assert_eq!(reply(&out)["code"], 50);

    // DEL of a VF with no record and a netns that is gone: nothing to do, success
    let out = call("DEL", &status).run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

static NSIM: AtomicU32 = AtomicU32::new(0);

/// The whole ADD/CHECK/DEL through the binary, with a netdevsim PF and a veth stand-in for the
/// VF netdev, in a test namespace that plays the host.
#[test]
fn sriov_bin_netdevsim_add_check_del() {
    const TEST: &str = "sriov_bin_netdevsim_add_check_del";
    if !require_root(TEST) {
        return;
    }
    let bus = Path::new("/sys/bus/netdevsim");
    if !bus.join("new_device").exists() {
        let _ = Command::new("modprobe").arg("netdevsim").status();
    }
    if !bus.join("new_device").exists() {
        skip(TEST, "kernel lacks netdevsim");
        return;
    }
    let host = TestNetns::new("plx-bh");
    let pod = TestNetns::new("plx-bp");
    let id = 20_000 + (std::process::id() % 1000) * 4 + NSIM.fetch_add(1, Ordering::Relaxed);
    host.netns()
        .run_in(|| std::fs::write(bus.join("new_device"), format!("{id} 1")))
        .expect("netns")
        .expect("new_device");
    struct Del(u32);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = std::fs::write("/sys/bus/netdevsim/del_device", self.0.to_string());
        }
    }
    let _del = Del(id);
    std::fs::write(bus.join(format!("devices/netdevsim{id}/sriov_numvfs")), "2")
        .expect("sriov_numvfs");
    let listing = host.run_ok("ip", &["-d", "-o", "link", "show"]);
    let pf = listing
        .lines()
        .find(|l| l.contains(&format!("parentdev netdevsim{id} ")))
        .and_then(|l| l.split(": ").nth(1))
        .unwrap_or_else(|| panic!("no netdevsim{id} port in {listing}"))
        .to_owned();
    let nl = RtNetlink::open(Some(host.netns())).expect("open");
    nl.set_link_up(&pf).expect("PF up");
    nl.create_link(&NewLink::new(
        "vfnet0",
        NewLinkKind::Veth {
            peer_name: "vfpeer0".into(),
        },
    ))
    .expect("stand-in");
    let before = nl.link("vfnet0").expect("ok").expect("vfnet0");
    let original = nl.vfs(&pf).expect("vfs");

    let fake = FakeSysfs::new()
        .add_pf(&pf, PF_PCI, PfSpec::default())
        .add_vfs(1, VfSpec::kernel("iavf"));
    let vf = fake.vf_pci(PF_PCI, 0).to_string();
    fake.set_vf_netdev(&vf, Some("vfnet0"));
    let state = tempfile::tempdir().expect("tempdir");
    let conf = json!({"cniVersion":"1.0.0","name":"bin","type":"sriov","deviceID":vf,
        "vlan":42,"mac":"02:42:00:00:00:42","spoofchk":"off","trust":"on","mtu":2000,
        "ipam":{"type":"static","addresses":[{"address":"10.42.0.2/24"}]}});
    let pod_path = pod.path().display().to_string();
    let call = |command, conf| Call {
        command,
        netns: &pod_path,
        sysfs: fake.root(),
        state: state.path(),
        conf,
    };
    let out = call("ADD", &conf).run_in(&host);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = reply(&out);
    assert_eq!(r["interfaces"][0]["name"], "net1");
    assert_eq!(r["interfaces"][0]["pciID"], vf);
    assert_eq!(r["interfaces"][0]["mac"], "02:42:00:00:00:42");
    assert_eq!(r["interfaces"][0]["mtu"], 2000);
    assert_eq!(r["ips"][0]["address"], "10.42.0.2/24");
    let vfs = nl.vfs(&pf).expect("vfs");
    assert_eq!(
        (vfs[0].vlan, vfs[0].trust, vfs[0].spoofchk),
        (42, true, false)
    );
    let out_pod = pod.run_ok("ip", &["-o", "addr", "show", "net1"]);
    assert!(out_pod.contains("10.42.0.2/24"), "{out_pod}");
    assert!(nl.link("vfnet0").expect("ok").is_none());

    let mut checked = conf.clone();
    checked["prevResult"] = r.clone();
    let out = call("CHECK", &checked).run_in(&host);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = call("DEL", &conf).run_in(&host);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(nl.vfs(&pf).expect("vfs"), original);
    let back = nl.link("vfnet0").expect("ok").expect("home");
    assert_eq!((back.mtu, back.mac), (before.mtu, before.mac));
    let files = || {
        let mut v: Vec<String> = std::fs::read_dir(state.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(files(), [format!("{vf}.released")], "only the tombstone");

    // containerd's second DEL: netdevsim's VFs start with spoofchk off, which is also what the
    // configuration asks for; the DEL must know the VF was put back and leave it so
    assert!(!original[0].spoofchk, "netdevsim's default");
    let out = call("DEL", &conf).run_in(&host);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(nl.vfs(&pf).expect("vfs"), original, "after a second DEL");
    assert_eq!(files(), [format!("{vf}.released")]);
}
