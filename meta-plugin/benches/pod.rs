//! Pod ADD+DEL latency: the `plexus` binary in local mode vs the floor, in the same run.
//!
//! ```text
//! sudo cargo bench -p plexus --bench pod                  # N = 200 pods per side
//! sudo PLEXUS_BENCH_N=50 cargo bench -p plexus --bench pod
//! sudo cargo bench -p plexus --bench pod -- --n 50
//! sudo cargo bench -p plexus --bench pod -- --state-dir /dev/shm   # state on tmpfs
//! sudo cargo bench -p plexus --bench pod -- --one-by-one    # overlapClusterNetwork: false
//! ```
//!
//! Every pod gets eth0 from the cluster network (the reference `bridge` + `host-local`) and
//! net1/net2 from two macvlan NADs (`host-local` IPAM) on a veth uplink of a simulated node.
//! Two sides, interleaved pod by pod (A B, B A, ...) so machine drift and the kernel's
//! background netns cleanup hit both alike, each pod a fresh network namespace:
//! 1. Plexus: `target/release/plexus` (`CARGO_BIN_EXE_plexus`, built by Cargo before this bench
//!    with the same profile), executed exactly as containerd does (empty environment + `CNI_*`,
//!    the config on stdin, pod annotations in `runtimeConfig`), NADs from a `nadDir` of YAML.
//!    Its log (`logLevel: verbose`) gives, per pod, each delegate's time and end ("attached"/
//!    "detached" lines) and the handler's totals ("ADD done"/"DEL done"), so the process part
//!    and the ADD handler's critical path (up to the cluster network's plugin, that plugin,
//!    after it) are split off.
//! 2. The floor: `/usr/lib/cni/bridge`, then `macvlan` twice, executed directly as libcni
//!    would; DELs in reverse with `prevResult`. No exec-based meta-plugin can do less.
//!
//! Every ADD and DEL is checked (untimed): links, addresses, network-status, journal, leases.
//! Needs root and the reference plugins; otherwise prints `skipping: ...` and exits 0. The
//! issue's target (Plexus ADD <= 0.6x the floor) is printed as information only: the exit status
//! never depends on it.

// A bench binary's purpose is to print its results table to stdout.
#![allow(clippy::print_stdout)]

mod pod_support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use pod_support::floor::FloorSide;
use pod_support::networks::Networks;
use pod_support::plexus_side::{PlexusSide, REF_DIR};
use pod_support::sandbox::Sandbox;
use pod_support::stats::Metrics;
use pod_support::{record, report, topology};

const PLEXUS: &str = env!("CARGO_BIN_EXE_plexus");
const WARMUP: usize = 3;
const DEFAULT_N: usize = 200;
const REF_PLUGINS: [&str; 3] = ["bridge", "macvlan", "host-local"];

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        println!(
            "skipping: the pod benchmark creates network namespaces and links: run it as root"
        );
        return ExitCode::SUCCESS;
    }
    if let Some(missing) = REF_PLUGINS
        .iter()
        .map(|p| Path::new(REF_DIR).join(p))
        .find(|p| !p.exists())
    {
        println!(
            "skipping: {} is missing (the reference plugins, containernetworking-plugins)",
            missing.display()
        );
        return ExitCode::SUCCESS;
    }
    match options().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pod bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the command line and the environment choose.
struct Options {
    /// Pods per side (`--n N` / `--n=N`, else `PLEXUS_BENCH_N`, else 200).
    n: usize,
    /// Where both sides keep their state (IPAM, journal, status, log): a temporary directory
    /// is made inside it (`--state-dir DIR`, else `PLEXUS_BENCH_STATE_DIR`, else the system's
    /// temp dir). Its filesystem decides what an fsync costs.
    state_parent: PathBuf,
    /// `--one-by-one`: Plexus with `overlapClusterNetwork: false` (attachments strictly one
    /// after another, DEL strictly in reverse, as Multus does).
    one_by_one: bool,
}

fn options() -> Result<Options> {
    let mut n = match std::env::var("PLEXUS_BENCH_N") {
        Ok(v) => v.parse().with_context(|| format!("PLEXUS_BENCH_N={v:?}"))?,
        Err(_) => DEFAULT_N,
    };
    let mut state_parent = std::env::var_os("PLEXUS_BENCH_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let mut one_by_one = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let mut value = || -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().with_context(|| format!("{key} needs a value")),
            }
        };
        match key.as_str() {
            "--n" => {
                let v = value()?;
                n = v.parse().with_context(|| format!("--n {v:?}"))?;
            }
            "--state-dir" => state_parent = PathBuf::from(value()?),
            "--one-by-one" => one_by_one = true,
            _ => {} // anything else (cargo's `--bench`) is ignored
        }
    }
    if n == 0 {
        bail!("N must be at least 1");
    }
    Ok(Options {
        n,
        state_parent,
        one_by_one,
    })
}

/// The 1/5/15-minute load averages: other work on the machine widens every figure.
fn load_average() -> Result<String> {
    let l = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    Ok(l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

#[derive(Clone, Copy)]
enum Side {
    Plexus,
    Floor,
}

fn run(opts: Options) -> Result<()> {
    let n = opts.n;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpus = std::thread::available_parallelism().map_or(0, |p| p.get());
    println!(
        "machine: nproc={cpus} kernel={} load average at start: {} | plexus: {PLEXUS}",
        kernel.trim(),
        load_average()?
    );
    println!(
        "N={n} pods per side (ADD then DEL, each pod a fresh netns), sides interleaved A B / B A, {WARMUP} warm-up pods per side"
    );
    println!(
        "pod: eth0 = bridge + host-local (exec'd by both sides), net1/net2 = macvlan NADs + host-local (plexus: built in; floor: exec'd)"
    );

    let work = tempfile::Builder::new()
        .prefix("plexus-podbench")
        .tempdir_in(&opts.state_parent)
        .with_context(|| format!("a temp dir in {}", opts.state_parent.display()))?;
    let fs_type = topology::sh(
        "findmnt",
        &[
            "-n",
            "-o",
            "FSTYPE",
            "--target",
            &work.path().display().to_string(),
        ],
    )?;
    println!(
        "state (IPAM, journal, status, log of both sides): {} on {}",
        work.path().display(),
        fs_type.lines().next().unwrap_or("an unknown filesystem")
    );
    let node = topology::enter_node(format!("plx-podbench-node-{}", std::process::id()))?;
    let plexus = PlexusSide::new(
        Path::new(PLEXUS),
        &work.path().join("plexus"),
        Networks {
            bridge: "cni-plexus".to_owned(),
            octet: 97,
            ipam_dir: work.path().join("plexus/ipam"),
        },
        !opts.one_by_one,
    )?;
    println!(
        "plexus: overlapClusterNetwork {}",
        if opts.one_by_one {
            "false (--one-by-one: one after another, DEL strictly in reverse)"
        } else {
            "true (the default)"
        }
    );
    let floor = FloorSide::new(Networks {
        bridge: "cni-floor".to_owned(),
        octet: 96,
        ipam_dir: work.path().join("floor/ipam"),
    });

    let mut m = Metrics::default();
    for round in 0..WARMUP + n {
        let order = if round % 2 == 0 {
            [Side::Plexus, Side::Floor]
        } else {
            [Side::Floor, Side::Plexus]
        };
        for side in order {
            match side {
                Side::Plexus => {
                    let sb = Sandbox::create('p', round)?;
                    let c = plexus
                        .cycle(&sb)
                        .with_context(|| format!("plexus, pod {round}"))?;
                    if round >= WARMUP {
                        record::plexus(&mut m, &c);
                    }
                }
                Side::Floor => {
                    let sb = Sandbox::create('f', round)?;
                    let c = floor
                        .cycle(&sb)
                        .with_context(|| format!("floor, pod {round}"))?;
                    if round >= WARMUP {
                        record::floor(&mut m, &c);
                    }
                }
            }
        }
    }
    plexus.check_clean()?;
    floor.check_clean()?;
    println!("load average at the end: {}", load_average()?);
    report::print(&m)?;
    drop(node);
    Ok(())
}
