//! Crash safety and DEL robustness of the real `plexus` binary, run as containerd runs it (env +
//! stdin) in real network namespaces, local mode (the test bed is [`local_env`]): eth0 through
//! the exec'd reference bridge + host-local, net1/net2 through in-process macvlan NADs.
//!
//! - A real SIGKILL at every step boundary of an ADD (the test-only `PLEXUS_TEST_SIGKILL_AT`
//!   injector), and a SIGKILL from outside while an exec'd delegate runs: the DEL that follows
//!   leaves nothing (links in the pod and the node, host-local leases, journal, status file), and
//!   a second DEL is fine.
//! - An ADD after an interrupted ADD undoes the leftovers first; an ADD after a completed one is
//!   refused and changes nothing.
//! - `retryDeleteOnError`: what a DEL whose delegate fails keeps for the runtime's retry (`true`)
//!   or moves to the orphan area (`false`, and `true` with "no such file or directory"), and GC
//!   deleting orphans once the delegate works again.
//!
//! Needs root and the reference plugins in `/usr/lib/cni`; skips with the reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local_env;
mod pod_state;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use local_env::{Env, REF_BIN, text};
use plexus_delegates::netns::fixture::TestNetns;
use serde_json::{Value, json};

const SIGKILL: i32 = 9;
/// The crash injector's variable (see `plexus::cmd::crash_point`).
const KILL_AT: &str = plexus::cmd::crash_point::ENV;
/// How long a test waits for a process it expects to reach a point: a liveness bound, so a
/// broken test fails instead of hanging; never a performance threshold.
const LIVENESS: Duration = Duration::from_secs(60);

/// The pod's attachments with `macvlan-a,macvlan-b`, in plan order.
const ALL_LINKS: [&str; 3] = ["eth0", "net1", "net2"];

/// Every step boundary of an ADD of three attachments, with the pod links it leaves.
fn steps() -> Vec<(String, Vec<&'static str>)> {
    let mut out = vec![("locked".to_owned(), vec![])];
    for i in 0..ALL_LINKS.len() {
        out.push((format!("pending:{i}"), ALL_LINKS[..i].to_vec()));
        out.push((format!("delegate-added:{i}"), ALL_LINKS[..=i].to_vec()));
        out.push((format!("recorded:{i}"), ALL_LINKS[..=i].to_vec()));
    }
    out.push(("default-routes".to_owned(), ALL_LINKS.to_vec()));
    out.push(("network-status".to_owned(), ALL_LINKS.to_vec()));
    out
}

/// A container id per test and step (runtimes use 64 hex digits; any unique name works).
fn cid(tag: &str) -> String {
    format!("crash-{tag}").replace(':', "-")
}

/// The pod's links but `lo`, by name: the built-in attachments are made while the cluster
/// network's plugin runs, so the kernel's index order is not the plan's.
fn links_but_lo(env: &Env) -> Vec<String> {
    let mut links: Vec<String> = env.pod_links().into_iter().filter(|l| l != "lo").collect();
    links.sort();
    links
}

/// DEL as containerd does on teardown (with the netns, then again without), asserting both
/// succeed and nothing is left after each.
fn del_twice_leaves_nothing(env: &Env, cid: &str, config: &str, when: &str) {
    let out = env.plexus("DEL", cid, Some(env.pod.path()), config);
    assert!(
        out.status.success(),
        "{when}: DEL: {}\nlog:\n{}",
        text(&out),
        env.log()
    );
    env.assert_nothing_left(cid, &format!("{when}, after DEL"));
    let out = env.plexus("DEL", cid, None, config);
    assert!(out.status.success(), "{when}: second DEL: {}", text(&out));
    env.assert_nothing_left(cid, &format!("{when}, after the second DEL"));
}

#[test]
fn sigkill_at_every_add_step_then_del_leaves_nothing() {
    let Some(env) = Env::new("sigkill_at_every_add_step_then_del_leaves_nothing") else {
        return;
    };
    // One by one (as Multus): each step leaves exactly the links made before it.
    let mut config = env.config_json("macvlan-a,macvlan-b");
    config["overlapClusterNetwork"] = json!(false);
    sigkill_at_every_step(
        &env,
        &config.to_string(),
        "one by one",
        |links, expected| {
            assert_eq!(links, expected);
        },
    );
    // Overlapped (the default): net1 and net2 are made while eth0's plugin runs, so a step
    // leaves at least the links made before it on its own thread, and any of the others.
    let config = env.config("macvlan-a,macvlan-b");
    sigkill_at_every_step(&env, &config, "overlapped", |links, expected| {
        let at_least: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|l| *l == "eth0" || expected.len() == ALL_LINKS.len())
            .collect();
        assert!(
            at_least.iter().all(|l| links.contains(&l.to_string()))
                && links.iter().all(|l| ALL_LINKS.contains(&l.as_str())),
            "{links:?} (expected at least {at_least:?})"
        );
    });
}

/// SIGKILL at each step boundary of an ADD, `check` the links the crash left, then DEL twice.
fn sigkill_at_every_step(env: &Env, config: &str, mode: &str, check: impl Fn(&[String], &[&str])) {
    for (step, links) in steps() {
        let cid = cid(&format!("{mode}-{step}").replace(' ', "-"));
        let out = env.plexus_env(
            "ADD",
            &cid,
            Some(env.pod.path()),
            config,
            &[(KILL_AT, &step)],
        );
        assert_eq!(
            out.status.signal(),
            Some(SIGKILL),
            "{mode}, {step}: plexus was not killed at the step: {}\nlog:\n{}",
            text(&out),
            env.log()
        );
        assert!(
            out.stdout.is_empty(),
            "{mode}, {step}: a killed ADD replied"
        );
        // What the crash left: the links attached so far, a journal (at least its lock).
        let left = links_but_lo(env);
        eprintln!("{mode}, {step}: the kill left {left:?}");
        check(&left, &links);
        assert!(env.journal_dir(&cid).exists(), "{mode}, {step}: no journal");
        if step == "network-status" {
            assert!(env.status_path().exists(), "{mode}, {step}: no status file");
        }
        del_twice_leaves_nothing(env, &cid, config, &format!("{mode}, {step}"));
    }
}

/// A delegate exec'd from binDir: the reference macvlan, except that its ADD, once the link and
/// the lease exist, writes its pid to `blocked` and sleeps (the same process) until killed.
fn blocking_delegate(env: &Env) -> String {
    let blocked = env.p("blocked");
    format!(
        "#!/bin/sh\n\
         # test delegate: the reference macvlan; ADD blocks after attaching\n\
         if [ \"$CNI_COMMAND\" = ADD ]; then\n\
         \tout=$({REF_BIN}/macvlan) || {{ printf '%s' \"$out\"; exit 1; }}\n\
         \techo $$ > {blocked}.tmp && mv {blocked}.tmp {blocked}\n\
         \texec sleep 600\n\
         fi\n\
         exec {REF_BIN}/macvlan\n",
        blocked = blocked.display()
    )
}

/// Waits (up to [`LIVENESS`]) for `path` to hold a pid.
fn wait_for_pid_file(path: &Path) -> u32 {
    let started = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            started.elapsed() < LIVENESS,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` still runs (a zombie counts as gone).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn external_sigkill_while_an_exec_delegate_runs_then_del_leaves_nothing() {
    let Some(env) =
        Env::new("external_sigkill_while_an_exec_delegate_runs_then_del_leaves_nothing")
    else {
        return;
    };
    env.write_script("blockplug", &blocking_delegate(&env));
    env.write_nad("blocking", "blockplug", "up0", "10.98.5.0/24");
    let mut config = env.config_json("macvlan-a,blocking");
    config["binDir"] = json!(env.p("bin"));
    let config = config.to_string();
    let cid = cid("external");

    let mut plexus = env.spawn_plexus("ADD", &cid, Some(env.pod.path()), &config, &[]);
    let delegate = wait_for_pid_file(&env.p("blocked"));
    // plexus is inside the delegate's ADD (net2 exists, its record is pending): kill it.
    plexus.kill().unwrap();
    let status = plexus.wait().unwrap();
    assert_eq!(status.signal(), Some(SIGKILL), "{status:?}");
    // The orphaned delegate is ours to end (by its pid); the link and lease it made stay.
    let kill = std::process::Command::new("kill")
        .args(["-KILL", &delegate.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    while running(delegate) {
        assert!(started.elapsed() < LIVENESS, "delegate {delegate} survived");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(links_but_lo(&env), ALL_LINKS, "what the kill left");
    assert_eq!(env.leases().len(), 3, "{:?}", env.leases());
    let rec: Value = serde_json::from_str(
        &std::fs::read_to_string(env.journal_dir(&cid).join("2-net2.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["state"], "pending", "{rec}");

    del_twice_leaves_nothing(&env, &cid, &config, "external kill");
}

#[test]
fn add_after_an_interrupted_add_undoes_its_leftovers_first() {
    let Some(env) = Env::new("add_after_an_interrupted_add_undoes_its_leftovers_first") else {
        return;
    };
    let config = env.config("macvlan-a,macvlan-b");
    for step in ["pending:0", "delegate-added:1", "network-status"] {
        let cid = cid(&format!("readd-{step}"));
        let out = env.plexus_env(
            "ADD",
            &cid,
            Some(env.pod.path()),
            &config,
            &[(KILL_AT, step)],
        );
        assert_eq!(out.status.signal(), Some(SIGKILL), "{step}: {}", text(&out));
        // The runtime retries the sandbox: the same ADD again, no DEL in between.
        let out = env.plexus("ADD", &cid, Some(env.pod.path()), &config);
        assert!(
            out.status.success(),
            "{step}: {}\nlog:\n{}",
            text(&out),
            env.log()
        );
        assert_eq!(links_but_lo(&env), ALL_LINKS, "{step}");
        // One lease per attachment: the interrupted ADD's were released, not leaked.
        assert_eq!(env.leases().len(), 3, "{step}: {:?}", env.leases());
        assert_eq!(
            env.journal_files(&cid),
            local_env::COMPLETED_JOURNAL,
            "{step}"
        );
        assert!(
            env.log()
                .contains("an earlier ADD of this container was interrupted"),
            "{step}: {}",
            env.log()
        );
        let out = env.plexus("CHECK", &cid, Some(env.pod.path()), &config);
        assert!(out.status.success(), "{step}: CHECK: {}", text(&out));
        del_twice_leaves_nothing(&env, &cid, &config, step);
    }
}

/// Everything an ADD leaves, to compare before and after.
#[derive(Debug, PartialEq)]
struct Snapshot {
    addrs: Vec<String>,
    leases: Vec<String>,
    /// Journal file names and contents.
    journal: Vec<(String, String)>,
    status: String,
}

fn snapshot(env: &Env, cid: &str) -> Snapshot {
    let addrs = ALL_LINKS.iter().map(|l| env.addr(l)).collect();
    let mut leases = env.leases();
    leases.sort();
    let journal = env
        .journal_files(cid)
        .into_iter()
        .map(|f| {
            let body = std::fs::read_to_string(env.journal_dir(cid).join(&f)).unwrap();
            (f, body)
        })
        .collect();
    let status = std::fs::read_to_string(env.status_path()).unwrap();
    Snapshot {
        addrs,
        leases,
        journal,
        status,
    }
}

#[test]
fn add_after_a_completed_add_is_refused_and_changes_nothing() {
    let Some(env) = Env::new("add_after_a_completed_add_is_refused_and_changes_nothing") else {
        return;
    };
    let config = env.config("macvlan-a,macvlan-b");
    let cid = cid("twice");
    let out = env.plexus("ADD", &cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let before = snapshot(&env, &cid);

    let out = env.plexus("ADD", &cid, Some(env.pod.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 104, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("already attached")
            && msg.contains("eth0 (cbr0)")
            && msg.contains("net2 (default/macvlan-b)")
            && msg.contains("must DEL"),
        "{err}"
    );
    assert_eq!(
        snapshot(&env, &cid),
        before,
        "the refused ADD changed something"
    );
    del_twice_leaves_nothing(&env, &cid, &config, "after the refused ADD");
}

/// A delegate exec'd from binDir: the reference macvlan, whose DEL does what the file
/// `del-mode` says: `ok` (run it), `fail` (a CNI error), `enoent` (an error saying "no such
/// file or directory"). Appends each verb to `calls`.
fn flaky_delegate(env: &Env) -> String {
    format!(
        "#!/bin/sh\n\
         # test delegate: the reference macvlan with a DEL that fails on demand\n\
         echo \"$CNI_COMMAND\" >> {calls}\n\
         if [ \"$CNI_COMMAND\" = DEL ]; then\n\
         \tcase \"$(cat {mode})\" in\n\
         \tfail) printf '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"flaky DEL refused\"}}'; exit 1;;\n\
         \tenoent) printf '{{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"open /var/run/flaky: no such file or directory\"}}'; exit 1;;\n\
         \tesac\n\
         fi\n\
         exec {REF_BIN}/macvlan\n",
        calls = env.p("calls").display(),
        mode = env.p("del-mode").display(),
    )
}

/// ADD eth0 + macvlan-a + the flaky NAD (net2) into `sandbox` with `retryDeleteOnError` set as
/// given; then the first DEL, with the flaky DEL failing as `mode` says.
fn add_then_failing_del(
    env: &Env,
    cid: &str,
    sandbox: &TestNetns,
    retry: Option<bool>,
    mode: &str,
) -> (String, Value) {
    env.write_script("flakyplug", &flaky_delegate(env));
    env.write_nad("flaky", "flakyplug", "up0", "10.98.4.0/24");
    let mut config = env.config_json("macvlan-a,flaky");
    config["binDir"] = json!(env.p("bin"));
    if let Some(retry) = retry {
        config["retryDeleteOnError"] = json!(retry);
    }
    let config = config.to_string();
    std::fs::write(env.p("del-mode"), "ok").unwrap();
    let out = env.plexus("ADD", cid, Some(sandbox.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    std::fs::write(env.p("del-mode"), mode).unwrap();
    let out = env.plexus("DEL", cid, Some(sandbox.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        err["msg"].as_str().unwrap().contains("default/flaky"),
        "{err}"
    );
    // Every other attachment was deleted anyway.
    let links: Vec<String> = pod_state::pod_links(sandbox)
        .into_iter()
        .filter(|l| l != "lo")
        .collect();
    assert_eq!(links, vec!["net2"]);
    assert_eq!(env.leases().len(), 1, "{:?}", env.leases());
    (config, err)
}

fn flaky_dels(env: &Env) -> usize {
    std::fs::read_to_string(env.p("calls"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == "DEL")
        .count()
}

/// The runtime's GC (CNI 1.1.0) with no attachment in use.
fn gc_nothing_valid(env: &Env, config: &str) {
    let mut gc: Value = serde_json::from_str(config).unwrap();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = env.plexus("GC", "", None, &gc.to_string());
    assert!(
        out.status.success(),
        "GC: {}\nlog:\n{}",
        text(&out),
        env.log()
    );
}

/// Asserts that the DEL error names the orphan file and that it holds net2's record.
fn assert_orphaned(env: &Env, cid: &str, err: &Value, when: &str) {
    let orphan = env.orphan_dir(cid).join("2-net2.json");
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains(&orphan.display().to_string()) && msg.contains("GC"),
        "{when}: the error does not say where the record is: {err}"
    );
    assert!(
        !env.journal_dir(cid).exists(),
        "{when}: {:?}",
        env.journal_files(cid)
    );
    assert_eq!(
        env.orphan_files(cid),
        vec!["2-net2.json", "added-2-net2.json"],
        "{when}"
    );
    // Both files moved; the added one holds the result.
    let added = env.orphan_dir(cid).join("added-2-net2.json");
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&added).unwrap()).unwrap();
    assert_eq!(
        rec["attachment"]["network"], "default/flaky",
        "{when}: {rec}"
    );
    assert_eq!(rec["attachment"]["ifname"], "net2", "{when}: {rec}");
    assert_eq!(rec["invocation"]["container_id"], cid, "{when}: {rec}");
    assert_eq!(rec["state"], "added", "{when}: {rec}");
    // Nothing is journaled any more, so the sandbox's status file went with the DEL.
    assert!(!env.status_path().exists(), "{when}");
    assert!(
        env.log().contains(&orphan.display().to_string()),
        "{when}: the log does not name the orphan file"
    );
}

#[test]
fn retry_delete_on_error_keeps_the_failed_record_for_the_runtimes_retry() {
    let Some(env) =
        Env::new("retry_delete_on_error_keeps_the_failed_record_for_the_runtimes_retry")
    else {
        return;
    };
    let cid = cid("retry-true");
    let (config, err) = add_then_failing_del(&env, &cid, &env.pod, Some(true), "fail");
    // Only the failed attachment's record is left (the others are not retried), in the journal.
    assert_eq!(
        env.journal_files(&cid),
        vec!["2-net2.json", "added-2-net2.json", "lock"]
    );
    assert!(!env.orphan_dir(&cid).exists());
    let kept = env.journal_dir(&cid).join("2-net2.json");
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains(&format!("{} is kept in the journal", kept.display())),
        "{err}"
    );
    assert_eq!(flaky_dels(&env), 1);
    // The runtime retries; the delegate works again.
    std::fs::write(env.p("del-mode"), "ok").unwrap();
    del_twice_leaves_nothing(&env, &cid, &config, "retried DEL");
    assert_eq!(
        flaky_dels(&env),
        2,
        "the retry did not run the delegate DEL"
    );
}

#[test]
fn retry_delete_on_error_orphans_a_record_whose_del_says_no_such_file() {
    let Some(env) = Env::new("retry_delete_on_error_orphans_a_record_whose_del_says_no_such_file")
    else {
        return;
    };
    let cid = cid("retry-enoent");
    let sandbox = TestNetns::new("pxs");
    let (config, err) = add_then_failing_del(&env, &cid, &sandbox, Some(true), "enoent");
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("no such file or directory"),
        "{err}"
    );
    // The runtime takes that error as done and never retries (why Multus drops its cache):
    // the record leaves the journal, but as an orphan, not dropped.
    assert_orphaned(&env, &cid, &err, "enoent");
    assert_eq!(flaky_dels(&env), 1);
    // The sandbox goes away, the delegate works again: GC deletes the orphan.
    drop(sandbox);
    std::fs::write(env.p("del-mode"), "ok").unwrap();
    gc_nothing_valid(&env, &config);
    assert_eq!(flaky_dels(&env), 2, "GC did not run the orphan's DEL");
    env.assert_nothing_left(&cid, "after GC");
}

#[test]
fn without_retry_delete_on_error_a_failed_del_is_orphaned_and_gc_deletes_it() {
    let Some(env) =
        Env::new("without_retry_delete_on_error_a_failed_del_is_orphaned_and_gc_deletes_it")
    else {
        return;
    };
    for (tag, retry) in [("unset", None), ("false", Some(false))] {
        let cid = cid(&format!("retry-{tag}"));
        let sandbox = TestNetns::new("pxs");
        let dels = flaky_dels(&env);
        let (config, err) = add_then_failing_del(&env, &cid, &sandbox, retry, "fail");
        // Multus's default: the DEL fails, the record leaves the journal (moved, not dropped).
        assert_orphaned(&env, &cid, &err, tag);
        assert_eq!(flaky_dels(&env), dels + 1, "{tag}");

        // The runtime's retry: the orphan is tried first and fails again, which does not fail
        // the DEL (nothing is journaled); the orphan stays.
        let out = env.plexus("DEL", &cid, Some(sandbox.path()), &config);
        assert!(out.status.success(), "{tag}: {}", text(&out));
        assert_eq!(
            flaky_dels(&env),
            dels + 2,
            "{tag}: the orphan was not retried"
        );
        assert_eq!(
            env.orphan_files(&cid),
            vec!["2-net2.json", "added-2-net2.json"],
            "{tag}"
        );
        assert!(
            env.log().contains("the orphan file stays for GC"),
            "{tag}: {}",
            env.log()
        );
        // CHECK of the gone sandbox knows nothing of it; orphans are not attachments.
        let out = env.plexus("CHECK", &cid, Some(sandbox.path()), &config);
        let check: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(check["code"], 3, "{tag}: {check}");

        // The sandbox goes away, the delegate works again: GC deletes the orphan.
        drop(sandbox);
        std::fs::write(env.p("del-mode"), "ok").unwrap();
        gc_nothing_valid(&env, &config);
        assert_eq!(
            flaky_dels(&env),
            dels + 3,
            "{tag}: GC did not run the orphan's DEL"
        );
        assert!(
            env.log().contains("orphaned attachment deleted"),
            "{tag}: {}",
            env.log()
        );
        env.assert_nothing_left(&cid, tag);
        // A GC with nothing left to do is fine.
        gc_nothing_valid(&env, &config);
        assert_eq!(flaky_dels(&env), dels + 3, "{tag}");
    }
}
