//! DEL of journaled and orphaned records under each `retryDeleteOnError` policy, with exec'd
//! script delegates in a temp bin dir (no namespace needed: the records name none): where a
//! failed record goes, that a later DEL or GC retries orphans, that a record goes only once its
//! delegate DEL succeeded (and its device-info file only once it could be removed).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::del::{OnDelFailure, del_container};
use crate::exec::Invocation;
use crate::journal::{Journal, Record, State};
use crate::plan::{Attachment, Delegate};

const CID: &str = "c0ffee";

/// A temp dir with `bin/okplug` (DEL always succeeds) and `bin/flakyplug` (DEL answers as the
/// file `mode` says: `ok`, `fail`, or `enoent`, an error saying "no such file or directory");
/// both append their verb to `calls`.
struct Bed {
    tmp: tempfile::TempDir,
    journal: Journal,
}

impl Bed {
    fn new() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let calls = tmp.path().join("calls");
        let mode = tmp.path().join("mode");
        let script = |name: &str, body: &str| {
            let path = bin.join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "okplug",
            &format!(
                "#!/bin/sh\necho \"okplug $CNI_COMMAND\" >> {}\n",
                calls.display()
            ),
        );
        script(
            "flakyplug",
            &format!(
                "#!/bin/sh\n\
                 echo \"flakyplug $CNI_COMMAND\" >> {calls}\n\
                 case \"$(cat {mode})\" in\n\
                 fail) printf '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"DEL refused\"}}'; exit 1;;\n\
                 enoent) printf '{{\"cniVersion\":\"1.0.0\",\"code\":5,\"msg\":\"open /run/x: no such file or directory\"}}'; exit 1;;\n\
                 esac\n",
                calls = calls.display(),
                mode = mode.display()
            ),
        );
        std::fs::write(&mode, "ok").unwrap();
        let journal = Journal::new(tmp.path().join("cni"));
        Bed { tmp, journal }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn set_mode(&self, mode: &str) {
        std::fs::write(self.p("mode"), mode).unwrap();
    }

    fn flaky_dels(&self) -> usize {
        std::fs::read_to_string(self.p("calls"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "flakyplug DEL")
            .count()
    }

    /// An added record of `plugin` on `ifname`, with a device-info file that exists.
    fn record(&self, index: usize, ifname: &str, plugin: &str) -> Record {
        let Value::Object(conf) =
            json!({"cniVersion": "1.0.0", "name": format!("net-{ifname}"), "type": plugin})
        else {
            unreachable!()
        };
        let att = Attachment {
            network: format!("default/net-{ifname}"),
            ifname: ifname.into(),
            is_cluster: index == 0,
            delegate: Delegate::Conf(conf),
            runtime_config: Map::new(),
            cni_args: Vec::new(),
            args_cni: None,
            default_route: Vec::new(),
            resource_name: None,
        };
        let inv = Invocation {
            container_id: CID.into(),
            netns: None,
            runtime_ifname: "eth0".into(),
            cni_args: vec![("IgnoreUnknown".into(), "1".into())],
            cni_path: vec![self.p("bin")],
            runtime_config: Map::new(),
        };
        let mut r = Record::pending(index, att, inv);
        r.state = State::Added;
        r.result = Some(json!({"cniVersion": "1.0.0", "dns": {}}));
        let devinfo = self.p(&format!("devinfo/cni/net-{CID}_{ifname}"));
        std::fs::create_dir_all(devinfo.parent().unwrap()).unwrap();
        std::fs::write(&devinfo, br#"{"type":"pci","version":"1.1.0"}"#).unwrap();
        r.device_info_file = Some(devinfo);
        r
    }

    /// Journals eth0 (okplug) and net1 (flakyplug); returns net1's record file and record.
    fn journal_two(&self) -> (PathBuf, Record) {
        let cj = self.journal.lock(CID).unwrap();
        cj.write(&self.record(0, "eth0", "okplug")).unwrap();
        let r = self.record(1, "net1", "flakyplug");
        (cj.write(&r).unwrap(), r)
    }

    fn del(&self, on_failure: OnDelFailure) -> super::DelReport {
        del_container(&self.journal, CID, None, |_| true, on_failure, false).unwrap()
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn without_retry_a_failed_record_is_orphaned_then_retried_until_its_del_succeeds() {
    let bed = Bed::new();
    let (_, net1) = bed.journal_two();
    bed.set_mode("fail");

    let report = bed.del(OnDelFailure::Orphan);
    let orphan = bed.journal.orphan_dir(CID).join("1-net1.json");
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert!(
        e.contains("default/net-net1") && e.contains("DEL refused"),
        "{e}"
    );
    assert!(e.contains(&orphan.display().to_string()), "{e}");
    assert!(report.orphan_errors.is_empty());
    // Nothing journaled (the runtime's retry will succeed); the record is the orphan, unchanged.
    assert!(!bed.journal.exists(CID));
    assert!(!bed.journal.container_dir(CID).exists());
    let moved: Record = serde_json::from_slice(&std::fs::read(&orphan).unwrap()).unwrap();
    assert_eq!(moved, net1);
    // Both device-info files went with the DEL (as in Multus, whatever the delegate answered).
    assert!(files(&bed.p("devinfo/cni")).is_empty());

    // The runtime's retry: the orphan is tried first and fails again; that is no DEL failure.
    let report = bed.del(OnDelFailure::Orphan);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.orphan_errors.len(), 1);
    assert!(
        report.orphan_errors[0].contains(&orphan.display().to_string()),
        "{:?}",
        report.orphan_errors
    );
    assert!(orphan.exists());
    assert_eq!(bed.flaky_dels(), 2);
    assert_eq!(bed.journal.orphaned_containers().unwrap(), vec![CID]);

    // GC once the delegate works: the orphan's DEL runs, then the orphan and its file go.
    bed.set_mode("ok");
    let report = bed.del(OnDelFailure::Keep);
    assert!(report.errors.is_empty() && report.orphan_errors.is_empty());
    assert_eq!(bed.flaky_dels(), 3);
    assert!(!bed.journal.orphan_dir(CID).exists());
    assert!(bed.journal.orphaned_containers().unwrap().is_empty());
    assert!(!bed.journal.container_dir(CID).exists());
}

#[test]
fn with_retry_a_failed_record_stays_in_the_journal_unless_no_such_file() {
    let bed = Bed::new();
    let (path, _) = bed.journal_two();
    bed.set_mode("fail");
    let report = bed.del(OnDelFailure::KeepForRetry);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].contains(&format!("{} is kept in the journal", path.display())),
        "{:?}",
        report.errors
    );
    assert_eq!(
        files(&bed.journal.container_dir(CID)),
        vec!["1-net1.json", "lock"]
    );
    assert!(!bed.journal.has_orphans(CID));

    // The retry meets "no such file or directory": Multus would drop the record; it is
    // orphaned instead, and the journal goes.
    bed.set_mode("enoent");
    let report = bed.del(OnDelFailure::KeepForRetry);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].contains("no such file or directory"),
        "{:?}",
        report.errors
    );
    assert!(!bed.journal.exists(CID));
    assert_eq!(files(&bed.journal.orphan_dir(CID)), vec!["1-net1.json"]);
}

#[test]
fn gc_leaves_the_orphans_of_attachments_still_in_use() {
    let bed = Bed::new();
    bed.journal_two();
    bed.set_mode("fail");
    bed.del(OnDelFailure::Orphan);
    bed.set_mode("ok");
    let report = del_container(
        &bed.journal,
        CID,
        None,
        |_| false,
        OnDelFailure::Keep,
        false,
    )
    .unwrap();
    assert!(report.errors.is_empty() && report.orphan_errors.is_empty());
    assert_eq!(bed.flaky_dels(), 1, "an attachment in use was deleted");
    assert_eq!(files(&bed.journal.orphan_dir(CID)), vec!["1-net1.json"]);
}

#[test]
fn a_corrupt_record_is_orphaned_without_retry_and_kept_with_it() {
    for (policy, orphaned) in [
        (OnDelFailure::Orphan, true),
        (OnDelFailure::KeepForRetry, false),
        (OnDelFailure::Keep, false),
    ] {
        let bed = Bed::new();
        let cj = bed.journal.lock(CID).unwrap();
        cj.write(&bed.record(0, "eth0", "okplug")).unwrap();
        std::fs::write(cj.dir().join("1-net1.json"), b"{\"version\": 1").unwrap();
        drop(cj);
        let report = bed.del(policy);
        assert_eq!(report.errors.len(), 1, "{policy:?}");
        assert!(
            report.errors[0].contains("1-net1.json") && report.errors[0].contains("corrupt"),
            "{policy:?}: {:?}",
            report.errors
        );
        assert_eq!(bed.journal.exists(CID), !orphaned, "{policy:?}");
        assert_eq!(bed.journal.has_orphans(CID), orphaned, "{policy:?}");
    }
}

#[test]
fn a_device_info_file_that_cannot_be_removed_keeps_the_record() {
    let bed = Bed::new();
    let cj = bed.journal.lock(CID).unwrap();
    let mut r = bed.record(0, "eth0", "okplug");
    // A directory where the file should be: remove_file fails (not "not found").
    let blocked = bed.p("devinfo/cni/blocked");
    std::fs::create_dir_all(blocked.join("inside")).unwrap();
    r.device_info_file = Some(blocked.clone());
    let path = cj.write(&r).unwrap();
    drop(cj);
    let report = bed.del(OnDelFailure::KeepForRetry);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].contains(&blocked.display().to_string()),
        "{:?}",
        report.errors
    );
    assert!(
        path.exists(),
        "the record went with its device-info file left"
    );
    // Once the file can go, the next DEL removes both.
    std::fs::remove_dir_all(&blocked).unwrap();
    let report = bed.del(OnDelFailure::KeepForRetry);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(!bed.journal.exists(CID));
}
