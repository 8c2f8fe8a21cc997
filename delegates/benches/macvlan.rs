//! Macvlan ADD+DEL latency and peak RSS: Plexus (exec'd and in-process) vs the reference plugin.
//!
//! ```text
//! sudo cargo bench -p plexus-delegates --bench macvlan            # N = 200
//! sudo PLEXUS_BENCH_N=50 cargo bench -p plexus-delegates --bench macvlan
//! sudo cargo bench -p plexus-delegates --bench macvlan -- --n 50
//! ```
//!
//! Three implementations, interleaved round-robin (A B C A B C ...) so machine drift hits all alike:
//! 1. `plexus-macvlan` exec'd as a runtime does it: empty environment plus `CNI_*` and `PATH`,
//!    the config on stdin. The binary is the one Cargo builds for this bench with the same profile
//!    (`CARGO_BIN_EXE_plexus-macvlan`, i.e. `target/release/plexus-macvlan`): Cargo builds a
//!    package's binaries before its benches, so it is never stale and no nested cargo is needed.
//! 2. in-process: `cni::dispatch(&MacvlanPlugin::default(), &request)`, as the meta-plugin does.
//! 3. the reference `/usr/lib/cni/macvlan` exec'd the same way (it execs `/usr/lib/cni/static`).
//!
//! Topology: a node netns with a veth `uplink0` (the master) and one pod netns per implementation.
//! The bench's main thread `setns`es into the node netns before spawning anything, so exec'd
//! plugins inherit it without `ip netns exec`/`nsenter` overhead and the in-process call sees the
//! same namespace. Every netns is deleted on exit, including on error (a Drop guard).
//!
//! Timing: `Instant` around spawn→wait (exec'd) or around `dispatch` (in-process); 3 untimed
//! warm-up rounds first. Peak RSS: per-child `ru_maxrss` is not exposed by std or nix's safe API,
//! so a separate pass re-executes this bench binary as a helper (`PLEXUS_BENCH_RSS_HELPER=<plugin>`)
//! that runs exactly one plugin call and reports `getrusage(RUSAGE_CHILDREN).ru_maxrss`, which is
//! the largest RSS among its waited-for descendants (for the reference: max(macvlan, static), so
//! `static` is also measured alone and the sum is shown as the concurrent upper bound).
//!
//! Needs root and `/usr/lib/cni/macvlan`; otherwise prints `skipping: ...` and exits 0. Target
//! ratios are printed as PASS/MISS information only: the exit status never depends on them.

// A bench binary's purpose is to print its results table to stdout.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::error::Error;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::resource::{UsageWho, getrusage};
use plexus_delegates::cni::{Request, dispatch};
use plexus_delegates::macvlan::MacvlanPlugin;
use serde_json::Value;

type Res<T> = Result<T, Box<dyn Error>>;

const OURS: &str = env!("CARGO_BIN_EXE_plexus-macvlan");
const REF_DIR: &str = "/usr/lib/cni";
const REF_MACVLAN: &str = "/usr/lib/cni/macvlan";
const REF_STATIC: &str = "/usr/lib/cni/static";
const HELPER_ENV: &str = "PLEXUS_BENCH_RSS_HELPER";
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const WARMUP: usize = 3;
const RSS_RUNS: usize = 20;

fn main() -> ExitCode {
    if let Ok(plugin) = std::env::var(HELPER_ENV) {
        return match rss_helper(&plugin) {
            Ok(kib) => {
                println!("{kib}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rss helper: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !nix::unistd::geteuid().is_root() {
        println!("skipping: needs root");
        return ExitCode::SUCCESS;
    }
    if !Path::new(REF_MACVLAN).exists() || !Path::new(REF_STATIC).exists() {
        println!(
            "skipping: {REF_MACVLAN} or {REF_STATIC} is missing (containernetworking-plugins)"
        );
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn iterations() -> Res<usize> {
    let mut n = match std::env::var("PLEXUS_BENCH_N") {
        Ok(v) => v
            .parse()
            .map_err(|e| format!("PLEXUS_BENCH_N={v:?}: {e}"))?,
        Err(_) => 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--n" {
            let v = args.next().ok_or("--n needs a value")?;
            n = v.parse().map_err(|e| format!("--n {v:?}: {e}"))?;
        } else if let Some(v) = a.strip_prefix("--n=") {
            n = v.parse().map_err(|e| format!("--n={v:?}: {e}"))?;
        } // anything else (cargo's `--bench`) is ignored
    }
    if n == 0 {
        return Err("N must be at least 1".into());
    }
    Ok(n)
}

/// Named netns created with `ip netns add`, deleted on drop.
struct Netns {
    names: Vec<String>,
}

impl Netns {
    fn add(&mut self, name: String) -> Res<PathBuf> {
        sh("ip", &["netns", "add", &name])?;
        self.names.push(name.clone());
        Ok(Path::new("/run/netns").join(name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            if let Err(e) = sh("ip", &["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn sh(cmd: &str, args: &[&str]) -> Res<()> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Impl {
    Exec,
    InProc,
    Reference,
}

impl Impl {
    const ALL: [Impl; 3] = [Impl::Exec, Impl::InProc, Impl::Reference];
    fn label(self) -> &'static str {
        match self {
            Impl::Exec => "plexus-macvlan (exec'd)",
            Impl::InProc => "plexus in-process",
            Impl::Reference => "reference macvlan+static",
        }
    }
}

/// Everything one implementation needs for ADD and DEL.
struct Case {
    imp: Impl,
    env: Vec<(String, String)>, // without CNI_COMMAND
    config: Vec<u8>,
    address: String,
    add_req: Request,
    del_req: Request,
}

fn case(imp: Impl, i: usize, netns: &Path, cni_path: &str) -> Res<Case> {
    let address = format!("10.98.0.{}/24", 10 + i);
    let config = serde_json::to_vec(&serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "bench-macvlan",
        "type": "macvlan",
        "master": "uplink0",
        "mode": "bridge",
        "ipam": {"type": "static", "addresses": [{"address": address}]},
    }))?;
    let env: Vec<(String, String)> = [
        ("CNI_CONTAINERID", format!("bench-{i}")),
        ("CNI_NETNS", netns.display().to_string()),
        ("CNI_IFNAME", "net1".to_owned()),
        ("CNI_PATH", cni_path.to_owned()),
        (
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod{i}"),
        ),
        ("PATH", PATH_ENV.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let request = |verb: &str| -> Res<Request> {
        let map: BTreeMap<String, String> = env
            .iter()
            .cloned()
            .chain([("CNI_COMMAND".to_owned(), verb.to_owned())])
            .collect();
        Ok(Request::parse(|k| map.get(k).cloned(), config.clone())?)
    };
    Ok(Case {
        imp,
        add_req: request("ADD")?,
        del_req: request("DEL")?,
        env,
        config,
        address,
    })
}

/// Exec `bin` with exactly `env` + `CNI_COMMAND`, config on stdin; returns (elapsed, stdout).
fn exec(
    bin: &str,
    verb: &str,
    env: &[(String, String)],
    config: &[u8],
) -> Res<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CNI_COMMAND", verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {bin}: {e}"))?;
    child.stdin.take().ok_or("child stdin")?.write_all(config)?;
    let out = child.wait_with_output()?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{bin} {verb} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok((elapsed, out.stdout))
}

/// One verb on one implementation: (elapsed, stdout).
fn call(c: &Case, verb: &str) -> Res<(Duration, Vec<u8>)> {
    match c.imp {
        Impl::Exec => exec(OURS, verb, &c.env, &c.config),
        Impl::Reference => exec(REF_MACVLAN, verb, &c.env, &c.config),
        Impl::InProc => {
            let plugin = MacvlanPlugin::default();
            let req = if verb == "ADD" {
                &c.add_req
            } else {
                &c.del_req
            };
            let start = Instant::now();
            let out = dispatch(&plugin, req);
            let elapsed = start.elapsed();
            if !out.success {
                return Err(format!(
                    "in-process {verb} failed: {}",
                    String::from_utf8_lossy(&out.stdout)
                )
                .into());
            }
            Ok((elapsed, out.stdout))
        }
    }
}

fn verify_add(c: &Case, stdout: &[u8]) -> Res<()> {
    let v: Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("{}: ADD reply is not JSON: {e}", c.imp.label()))?;
    let has = v["ips"]
        .as_array()
        .is_some_and(|ips| ips.iter().any(|ip| ip["address"] == c.address.as_str()));
    if !has {
        return Err(format!("{}: ADD reply lacks {}: {v}", c.imp.label(), c.address).into());
    }
    Ok(())
}

fn run() -> Res<()> {
    let n = iterations()?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpus = std::thread::available_parallelism().map_or(0, |p| p.get());
    println!(
        "machine: nproc={cpus} kernel={} | N={n} ADD+DEL per implementation, round-robin, {WARMUP} warm-up rounds",
        kernel.trim()
    );

    let pid = std::process::id();
    let mut netns = Netns { names: Vec::new() };
    let node = netns.add(format!("plx-bench-node-{pid}"))?;
    let node_name = format!("plx-bench-node-{pid}");
    sh(
        "ip",
        &[
            "-n", &node_name, "link", "add", "uplink0", "type", "veth", "peer", "name", "wire0",
        ],
    )?;
    sh("ip", &["-n", &node_name, "link", "set", "uplink0", "up"])?;
    sh("ip", &["-n", &node_name, "link", "set", "wire0", "up"])?;
    let mut cases = Vec::new();
    for (i, imp) in Impl::ALL.into_iter().enumerate() {
        let pod = netns.add(format!("plx-bench-pod{i}-{pid}"))?;
        let cni_path = match imp {
            Impl::Reference => REF_DIR.to_owned(),
            _ => format!(
                "{}:{REF_DIR}",
                Path::new(OURS).parent().ok_or("bin dir")?.display()
            ),
        };
        cases.push(case(imp, i, &pod, &cni_path)?);
    }
    // The main thread enters the node netns; children and the in-process call inherit it.
    setns(File::open(&node)?, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns into {}: {e}", node.display()))?;

    let mut samples: BTreeMap<(Impl, &str), Vec<Duration>> = BTreeMap::new();
    for round in 0..WARMUP + n {
        for c in &cases {
            let (add, out) = call(c, "ADD")?;
            verify_add(c, &out)?;
            let (del, _) = call(c, "DEL")?;
            if round >= WARMUP {
                samples.entry((c.imp, "ADD")).or_default().push(add);
                samples.entry((c.imp, "DEL")).or_default().push(del);
            }
        }
    }

    println!(
        "{:<26} {:<4} {:>9} {:>9} {:>9} {:>9}",
        "implementation", "verb", "median", "p99", "min", "max"
    );
    let mut medians = BTreeMap::new();
    for imp in Impl::ALL {
        for verb in ["ADD", "DEL"] {
            let mut v = samples.remove(&(imp, verb)).unwrap_or_default();
            v.sort();
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let med = if v.len() % 2 == 1 {
                us(v[v.len() / 2])
            } else {
                (us(v[v.len() / 2 - 1]) + us(v[v.len() / 2])) / 2.0
            };
            let p99 = us(v[(v.len() * 99).div_ceil(100).saturating_sub(1)]);
            println!(
                "{:<26} {verb:<4} {med:>7.0}us {p99:>7.0}us {:>7.0}us {:>7.0}us",
                imp.label(),
                us(v[0]),
                us(v[v.len() - 1])
            );
            medians.insert((imp, verb), med);
        }
    }
    for (verb, targets) in [("ADD", Some((0.6, 0.4))), ("DEL", None)] {
        let reference = medians[&(Impl::Reference, verb)];
        for (imp, target) in [
            (Impl::Exec, targets.map(|t| t.0)),
            (Impl::InProc, targets.map(|t| t.1)),
        ] {
            let ratio = medians[&(imp, verb)] / reference;
            let verdict = match target {
                Some(t) if ratio <= t => {
                    format!("target <= {t}x: PASS ({:.0}% of budget)", ratio / t * 100.0)
                }
                Some(t) => format!(
                    "target <= {t}x: MISS (over by {:.0}%)",
                    (ratio / t - 1.0) * 100.0
                ),
                None => "no target".to_owned(),
            };
            println!(
                "ratio {verb} median {:<24} / reference = {ratio:.2}x   {verdict}",
                imp.label()
            );
        }
    }

    // Peak RSS pass (untimed): one helper process per plugin call.
    let rss = |bin: &str, c: &Case, verb: &str, config: &[u8]| -> Res<i64> {
        let mut worst = 0;
        for _ in 0..RSS_RUNS {
            let mut child = Command::new(std::env::current_exe()?)
                .env_clear()
                .envs(c.env.iter().map(|(k, v)| (k, v)))
                .env("CNI_COMMAND", verb)
                .env(HELPER_ENV, bin)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child
                .stdin
                .take()
                .ok_or("helper stdin")?
                .write_all(config)?;
            let out = child.wait_with_output()?;
            if !out.status.success() {
                return Err(format!(
                    "rss helper for {bin} {verb}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let kib: i64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
            worst = worst.max(kib);
            if verb == "ADD" {
                // leave nothing behind for the next ADD
                exec(bin, "DEL", &c.env, config)?;
            }
        }
        Ok(worst)
    };
    let ours_add = rss(OURS, &cases[0], "ADD", &cases[0].config)?;
    let ours_del = {
        exec(OURS, "ADD", &cases[0].env, &cases[0].config)?;
        rss(OURS, &cases[0], "DEL", &cases[0].config)?
    };
    let ref_add = rss(REF_MACVLAN, &cases[2], "ADD", &cases[2].config)?;
    let ref_del = {
        exec(REF_MACVLAN, "ADD", &cases[2].env, &cases[2].config)?;
        rss(REF_MACVLAN, &cases[2], "DEL", &cases[2].config)?
    };
    // static alone, called as macvlan calls it (same env and config)
    let static_cfg = serde_json::to_vec(&serde_json::json!({
        "cniVersion": "1.0.0", "name": "bench-macvlan",
        "ipam": {"type": "static", "addresses": [{"address": cases[2].address}]},
    }))?;
    let static_add = rss(REF_STATIC, &cases[2], "ADD", &static_cfg)?;
    println!(
        "peak RSS (max ru_maxrss of {RSS_RUNS} calls, via a re-exec'd helper's getrusage(RUSAGE_CHILDREN)):"
    );
    println!(
        "  ADD: plexus-macvlan {ours_add} KiB | reference macvlan {ref_add} KiB + static {static_add} KiB = {} KiB | ratio {:.2}x (vs macvlan alone {:.2}x)",
        ref_add + static_add,
        ours_add as f64 / (ref_add + static_add) as f64,
        ours_add as f64 / ref_add as f64
    );
    println!(
        "  DEL: plexus-macvlan {ours_del} KiB | reference macvlan {ref_del} KiB (max over macvlan+static tree) | ratio {:.2}x",
        ours_del as f64 / ref_del as f64
    );
    Ok(())
}

/// Helper mode: run one call of `plugin` with this process's env and stdin, report the children's
/// peak RSS in KiB.
fn rss_helper(plugin: &str) -> Res<i64> {
    let mut config = Vec::new();
    std::io::stdin().read_to_end(&mut config)?;
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CNI_") || k == "PATH")
        .filter(|(k, _)| k != "CNI_COMMAND")
        .collect();
    let verb = std::env::var("CNI_COMMAND")?;
    exec(plugin, &verb, &env, &config)?;
    Ok(getrusage(UsageWho::RUSAGE_CHILDREN)?.max_rss())
}
