//! Discovery time, daemon memory and health-change latency for 8 PFs × 128 VFs on a fake tree.
//!
//! ```text
//! cargo bench -p plexus-device-plugin --bench discovery
//! cargo bench -p plexus-device-plugin --bench discovery -- --repeats 60
//! ```
//!
//! 1. Builds a fake sysfs tree (plexus-delegates' `fake_tree`, the real layout) with 8 PFs on two
//!    NUMA nodes, 128 VFs each (112 on iavf, 16 on vfio-pci), in a temp dir.
//! 2. In-process: `Sysfs::discover` alone, `inventory::discover` (the full scan: discovery +
//!    selectors + health) and the per-poll `fingerprint`, warm page cache, median/p99.
//! 3. The real daemon (`CARGO_BIN_EXE_plexus-device-plugin`, built with the bench profile) against
//!    the tree and a fake kubelet on unix sockets in the temp dir: time to the registrations and the
//!    first ListAndWatch list; then, at each poll interval, the time from a PF link flip in the tree
//!    (at a pseudo-random point of the poll cycle) to the ListAndWatch update that shows it
//!    (median/p99), the daemon's CPU use during the flips and idle (utime+stime from
//!    /proc/<pid>/stat), and its memory from /proc/<pid>/status (VmRSS, VmHWM).
//!
//! The update latency is bounded by the poll interval plus one fingerprint and one full scan
//! (sysfs raises no inotify events on a real host, so the daemon polls): the expected median is
//! about half an interval plus a scan, and the printed ratios compare against those bounds.
//!
//! There is no reference device plugin binary on this machine (the sriov-network-device-plugin is
//! a Go program that is not installed here), so the figures are absolute, with no comparison.

// A bench binary's purpose is to print its results to stdout; failures here are setup bugs.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{FakeKubelet, with_health};
use nix::unistd::{SysconfVar, sysconf};
use plexus_delegates::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use plexus_device_plugin::fingerprint::fingerprint;
use plexus_device_plugin::{config, inventory};

const BIN: &str = env!("CARGO_BIN_EXE_plexus-device-plugin");
const PFS: u32 = 8;
const VFS: u32 = 128;
const VFIO_PER_PF: u32 = 16;
const NET_SOCKET: &str = "plexus-example.com_net.sock";
const CONFIG: &str = r#"{"resourceList": [
  {"resourceName": "net", "resourcePrefix": "example.com",
   "selectors": {"vendors": ["8086"], "drivers": ["iavf"]}},
  {"resourceName": "dpdk", "resourcePrefix": "example.com",
   "selectors": {"drivers": ["vfio-pci"], "pfNames": ["ens1f0#112-127", "ens2f0#112-127",
     "ens3f0#112-127", "ens4f0#112-127", "ens5f0#112-127", "ens6f0#112-127",
     "ens7f0#112-127", "ens8f0#112-127"]}}
]}"#;

fn pf_bdf(i: u32) -> String {
    format!("0000:{:02x}:00.0", 0x10 * (i + 1))
}

fn build_tree() -> FakeSysfs {
    let mut fake = FakeSysfs::new();
    for i in 0..PFS {
        let numa = if i < PFS / 2 { 0 } else { 1 };
        fake = fake
            .add_pf(
                &format!("ens{}f0", i + 1),
                &pf_bdf(i),
                PfSpec::default().numa(numa).total_vfs(VFS),
            )
            .add_vfs(VFS - VFIO_PER_PF, VfSpec::kernel("iavf"))
            .add_vfs(VFIO_PER_PF, VfSpec::userspace("vfio-pci"));
    }
    fake
}

struct Stats {
    median: Duration,
    p99: Duration,
    min: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// (VmRSS, VmHWM) in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // fields after the parenthesised command name; utime and stime are fields 14 and 15
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = sysconf(SysconfVar::CLK_TCK).unwrap().unwrap_or(100) as f64;
    ticks as f64 / hz
}

fn main() {
    let mut repeats = 40usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--repeats") {
        repeats = args[i + 1].parse().expect("--repeats N");
    }
    println!(
        "plexus-device-plugin discovery benchmark: {PFS} PFs x {VFS} VFs on a fake sysfs tree"
    );
    println!(
        "No reference device plugin binary is available on this machine (sriov-network-device-plugin \
         is not installed); figures are absolute, without a comparison."
    );

    let t = Instant::now();
    let fake = build_tree();
    println!("fake tree built in {}", ms(t.elapsed()));
    let sysfs = fake.sysfs();
    let cfg = config::parse(Path::new("bench-config.json"), CONFIG.as_bytes()).unwrap();

    // in-process discovery
    let mut raw = Vec::new();
    let mut full = Vec::new();
    let mut prints = Vec::new();
    let mut devices = 0;
    for i in 0..repeats + 3 {
        let t = Instant::now();
        let d = sysfs.discover().unwrap();
        let r = t.elapsed();
        assert_eq!(d.vfs.len() as u32, PFS * VFS);
        let t = Instant::now();
        let inv = inventory::discover(&sysfs, &cfg, None).unwrap();
        let f = t.elapsed();
        devices = inv.pools.values().map(Vec::len).sum::<usize>();
        let t = Instant::now();
        std::hint::black_box(fingerprint(&sysfs, &inv.pfs));
        let p = t.elapsed();
        if i >= 3 {
            raw.push(r);
            full.push(f);
            prints.push(p);
        }
    }
    assert_eq!(devices as u32, PFS * VFS);
    let (raw, full, prints) = (stats(raw), stats(full), stats(prints));
    println!(
        "\nin-process discovery of {} VFs ({repeats} runs, warm cache):",
        PFS * VFS
    );
    println!(
        "  sysfs model only        median {}  p99 {}  min {}  max {}",
        ms(raw.median),
        ms(raw.p99),
        ms(raw.min),
        ms(raw.max)
    );
    println!(
        "  + selectors and health  median {}  p99 {}  min {}  max {}  ({:.1} us per VF)",
        ms(full.median),
        ms(full.p99),
        ms(full.min),
        ms(full.max),
        full.median.as_secs_f64() * 1e6 / f64::from(PFS * VFS)
    );
    println!(
        "  fingerprint (each poll)  median {}  p99 {}  min {}  max {}  (full scan / fingerprint = {:.1}x)",
        ms(prints.median),
        ms(prints.p99),
        ms(prints.min),
        ms(prints.max),
        full.median.as_secs_f64() / prints.median.as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for poll_ms in [500u64, 100] {
        rt.block_on(daemon_run(&fake, poll_ms, repeats, full.median));
    }
}

async fn daemon_run(fake: &FakeSysfs, poll_ms: u64, repeats: usize, discovery: Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let plugin_dir = tmp.path().join("device-plugins");
    std::fs::create_dir(&plugin_dir).unwrap();
    let config = tmp.path().join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let mut kubelet = FakeKubelet::start(&plugin_dir);

    let started = Instant::now();
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--sysfs-root")
        .arg(fake.root())
        .arg("--device-plugins-dir")
        .arg(&plugin_dir)
        .arg("--devinfo-dir")
        .arg(tmp.path().join("devinfo"))
        .args(["--metrics-address", "off", "--log-level", "warn"])
        .args(["--poll-interval-ms", &poll_ms.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    kubelet.registrations(2).await;
    let registered = started.elapsed();
    let mut watch = kubelet.watch(NET_SOCKET).await;
    let first = watch.next().await;
    let listed = started.elapsed();
    let (rss_start, _) = memory(pid);

    // health flips: ens1f0's link down, then up, ... each time until ListAndWatch shows it
    let per_pf = (VFS - VFIO_PER_PF) as usize;
    let cpu_before = cpu_seconds(pid);
    let window = Instant::now();
    let mut latencies = Vec::new();
    // flips land at pseudo-random points of the poll cycle (a fixed-seed LCG), not right after
    // the update that ended the previous flip
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..repeats {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let jitter = Duration::from_millis((seed >> 33) % poll_ms);
        tokio::time::sleep(jitter).await;
        let down = i % 2 == 0;
        let t = Instant::now();
        fake.set_link("ens1f0", !down);
        let want = if down { per_pf } else { 0 };
        watch
            .until("the health change", |d| {
                with_health(d, "Unhealthy").len() == want
            })
            .await;
        latencies.push(t.elapsed());
    }
    let elapsed = window.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    // idle: nothing changes, so polls only read fingerprints (a full scan every 10 s)
    let idle_cpu_before = cpu_seconds(pid);
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = cpu_seconds(pid) - idle_cpu_before;
    let idle_elapsed = idle.elapsed().as_secs_f64();
    let (rss, hwm) = memory(pid);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().await.unwrap();
    assert!(status.success());
    if fake.root().join("class/net/ens1f0/operstate").exists() {
        fake.set_link("ens1f0", true);
    }

    let s = stats(latencies);
    let interval = Duration::from_millis(poll_ms);
    println!("\nreal daemon, --poll-interval-ms {poll_ms}:");
    println!(
        "  startup: registered {} after spawn, first ListAndWatch ({} devices) at {}",
        ms(registered),
        first.len(),
        ms(listed)
    );
    println!(
        "  PF link flip -> ListAndWatch update ({repeats} flips of {per_pf} VFs): median {}  p99 {}  min {}  max {}",
        ms(s.median),
        ms(s.p99),
        ms(s.min),
        ms(s.max)
    );
    println!(
        "  ratios: median/(interval/2 + scan) {:.2}, p99/(interval + scan) {:.2}",
        s.median.as_secs_f64() / (interval / 2 + discovery).as_secs_f64(),
        s.p99.as_secs_f64() / (interval + discovery).as_secs_f64()
    );
    println!(
        "  CPU during the flips (a full scan after each): {:.1}% of one core ({cpu:.2} s over {elapsed:.1} s)",
        100.0 * cpu / elapsed
    );
    println!(
        "  CPU idle (fingerprint polls only): {:.1}% of one core ({idle_cpu:.2} s over {idle_elapsed:.1} s)",
        100.0 * idle_cpu / idle_elapsed
    );
    println!(
        "  memory: VmRSS {} KiB after the first list, {} KiB at the end; VmHWM {} KiB",
        rss_start, rss, hwm
    );
}
