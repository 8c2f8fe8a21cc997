use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;

fn attachment(ifname: &str) -> Attachment {
    let conf = json!({"cniVersion": "1.0.0", "name": "m", "type": "macvlan"});
    Attachment::for_test("default/m", ifname, ifname == "eth0", conf)
}

fn invocation() -> Invocation {
    Invocation::for_test()
}

#[test]
fn write_update_read_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    assert!(!j.exists("c1"));
    let c = j.lock("c1").unwrap();
    let mut r0 = Record::pending(0, attachment("eth0"), invocation());
    let p0 = c.write(&r0).unwrap();
    assert_eq!(p0, tmp.path().join("c1/0-eth0.json"));
    let r1 = Record::pending(1, attachment("net1"), invocation());
    let p1 = c.write(&r1).unwrap();
    // update with the result
    r0.state = State::Added;
    r0.result =
        Some(json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}}));
    c.write(&r0).unwrap();
    let all = c.read_all().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].index, 0);
    let got = all[0].record.as_ref().unwrap();
    assert_eq!(got, &r0);
    assert_eq!(got.cni_result().unwrap().unwrap().ips.len(), 1);
    assert_eq!(all[1].record.as_ref().unwrap().state, State::Pending);
    // the on-disk form names the state
    let text = std::fs::read_to_string(&p1).unwrap();
    assert!(text.contains("\"state\": \"pending\""), "{text}");
    // no temp files are left behind
    assert!(
        std::fs::read_dir(c.dir())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with('.'))
    );
    drop(c);
    assert!(j.exists("c1"));
    assert_eq!(j.containers().unwrap(), vec!["c1"]);

    let c = j.lock("c1").unwrap();
    c.remove(&p0).unwrap();
    c.remove(&p0).unwrap(); // already gone: fine
    assert!(!c.remove_if_empty().unwrap());
    c.remove(&p1).unwrap();
    assert!(c.remove_if_empty().unwrap());
    assert!(!tmp.path().join("c1").exists());
    assert!(j.containers().unwrap().is_empty());
}

#[test]
fn corrupt_record_is_named_and_others_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    let c = j.lock("c2").unwrap();
    c.write(&Record::pending(0, attachment("eth0"), invocation()))
        .unwrap();
    c.write(&Record::pending(2, attachment("net2"), invocation()))
        .unwrap();
    let bad = c.dir().join("1-net1.json");
    std::fs::write(&bad, b"{\"version\":1, truncated").unwrap();
    std::fs::write(c.dir().join("garbage.json"), b"{}").unwrap();
    // a leftover temp file of a crashed write is ignored
    std::fs::write(c.dir().join(".tmp-3-net3.json"), b"{").unwrap();
    let all = c.read_all().unwrap();
    assert_eq!(all.len(), 4);
    assert!(all[0].record.is_ok());
    let e = all[1].record.as_ref().unwrap_err().to_string();
    assert!(e.contains("1-net1.json") && e.contains("corrupt"), "{e}");
    assert!(all[2].record.is_ok());
    let e = all[3].record.as_ref().unwrap_err().to_string();
    assert!(e.contains("garbage.json"), "{e}");
}

#[test]
fn lock_excludes_a_second_holder_until_released() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    let held = j.lock("c3").unwrap();
    let got = Arc::new(AtomicBool::new(false));
    let t = {
        let j = j.clone();
        let got = got.clone();
        std::thread::spawn(move || {
            let c = j.lock("c3").unwrap();
            got.store(true, Ordering::SeqCst);
            // the first holder removed the directory: the second holder has a fresh one
            assert!(c.dir().join("lock").exists());
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    assert!(!got.load(Ordering::SeqCst), "second lock taken while held");
    // the holder removes the (empty) directory; the waiter must not keep a stale lock
    assert!(held.remove_if_empty().unwrap());
    drop(held);
    t.join().unwrap();
    assert!(got.load(Ordering::SeqCst));
}

#[test]
fn completion_mark_survives_records_and_goes_with_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    let c = j.lock("c1").unwrap();
    assert!(!c.is_committed());
    let p0 = c
        .write(&Record::pending(0, attachment("eth0"), invocation()))
        .unwrap();
    c.mark_committed().unwrap();
    assert!(c.is_committed());
    // the mark is not a record
    assert_eq!(c.read_all().unwrap().len(), 1);
    assert!(!c.remove_if_empty().unwrap());
    c.uncommit().unwrap();
    assert!(!c.is_committed());
    c.uncommit().unwrap();
    c.mark_committed().unwrap();
    c.remove(&p0).unwrap();
    // a committed container whose last record went is removed, mark included
    assert!(c.remove_if_empty().unwrap());
    assert!(!tmp.path().join("c1").exists());
}

#[test]
fn orphan_moves_a_record_out_of_the_journal_without_overwriting_one() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    let c = j.lock("c1").unwrap();
    let mut r = Record::pending(2, attachment("net2"), invocation());
    r.device_info_file = Some("/run/devinfo/cni/x".into());
    let p = c.write(&r).unwrap();
    let o = c.orphan(&p).unwrap();
    assert_eq!(o, tmp.path().join("orphans/c1/2-net2.json"));
    assert!(!p.exists());
    assert!(c.read_all().unwrap().is_empty());
    let orphans = c.read_orphans().unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].index, 2);
    assert_eq!(orphans[0].record.as_ref().unwrap(), &r);
    // The same attachment orphaned again (a later ADD of the same container id): a new name.
    let p = c.write(&r).unwrap();
    let o2 = c.orphan(&p).unwrap();
    assert_eq!(o2, tmp.path().join("orphans/c1/2-net2-1.json"));
    assert_eq!(c.read_orphans().unwrap().len(), 2);
    // The orphan area is not a container; the container with orphans is listed as such.
    assert!(c.remove_if_empty().unwrap());
    drop(c);
    assert!(j.containers().unwrap().is_empty());
    assert!(j.has_orphans("c1") && !j.exists("c1"));
    assert_eq!(j.orphaned_containers().unwrap(), vec!["c1"]);

    let c = j.lock("c1").unwrap();
    c.remove_orphan(&o).unwrap();
    assert!(j.has_orphans("c1"));
    c.remove_orphan(&o2).unwrap();
    c.remove_orphan(&o2).unwrap(); // already gone: fine
    assert!(!j.has_orphans("c1"));
    assert!(j.orphaned_containers().unwrap().is_empty());
    assert!(c.read_orphans().unwrap().is_empty());
    assert!(c.remove_if_empty().unwrap());
}

#[test]
fn records_without_a_device_info_file_still_read() {
    // Records written before `device_info_file` existed.
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    let c = j.lock("c1").unwrap();
    let r = Record::pending(0, attachment("eth0"), invocation());
    let p = c.write(&r).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(!text.contains("device_info_file"), "{text}");
    assert_eq!(c.read_all().unwrap()[0].record.as_ref().unwrap(), &r);
}

#[test]
fn a_plan_is_journaled_pending_then_each_record_updated() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    let c = j.lock("c1").unwrap();
    let records: Vec<Record> = ["eth0", "net1", "net2"]
        .iter()
        .enumerate()
        .map(|(i, ifname)| Record::pending(i, attachment(ifname), invocation()))
        .collect();
    let paths = c.write_pending(&records).unwrap();
    assert_eq!(
        paths,
        ["0-eth0.json", "1-net1.json", "2-net2.json"].map(|n| tmp.path().join("c1").join(n))
    );
    let all = c.read_all().unwrap();
    assert_eq!(all.len(), 3);
    for (entry, record) in all.iter().zip(&records) {
        assert_eq!(entry.record.as_ref().unwrap(), record);
    }

    let mut added = records[1].clone();
    added.state = State::Added;
    added.result =
        Some(json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}], "dns": {}}));
    assert_eq!(c.update(&added).unwrap(), paths[1]);
    let all = c.read_all().unwrap();
    assert_eq!(all.len(), 3, "the added record is the same record");
    assert_eq!(all[1].record.as_ref().unwrap(), &added);
    assert_eq!(all[1].path, paths[1]);
    assert_eq!(all[0].record.as_ref().unwrap().state, State::Pending);
    // The durable pending record is never overwritten: the added one is a file beside it.
    let pending: Record = serde_json::from_slice(&std::fs::read(&paths[1]).unwrap()).unwrap();
    assert_eq!(pending, records[1]);
    let added_file = c.dir().join("added-1-net1.json");
    assert!(added_file.is_file());

    // An added record a power loss left unreadable: the pending one is used.
    std::fs::write(&added_file, b"").unwrap();
    assert_eq!(
        c.read_all().unwrap()[1].record.as_ref().unwrap(),
        &records[1]
    );
    // Orphaned, both files move; removed, both go.
    c.update(&added).unwrap();
    let orphan = c.orphan(&paths[1]).unwrap();
    assert!(!paths[1].exists() && !added_file.exists());
    let orphans = c.read_orphans().unwrap();
    assert_eq!(orphans[0].record.as_ref().unwrap(), &added);
    assert_eq!(orphans[0].path, orphan);
    c.remove_orphan(&orphan).unwrap();
    assert!(c.read_orphans().unwrap().is_empty());
    c.update(&records[2]).unwrap();
    c.remove(&paths[2]).unwrap();
    assert!(!paths[2].exists() && !c.dir().join("added-2-net2.json").exists());
    // no temp files are left behind
    let names: Vec<String> = std::fs::read_dir(c.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn a_plan_that_cannot_be_journaled_leaves_no_record() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    let c = j.lock("c1").unwrap();
    // A directory where the second record goes: its rename fails after the first is written.
    std::fs::create_dir(c.dir().join("1-net1.json")).unwrap();
    let records = vec![
        Record::pending(0, attachment("eth0"), invocation()),
        Record::pending(1, attachment("net1"), invocation()),
        Record::pending(2, attachment("net2"), invocation()),
    ];
    let e = c.write_pending(&records).unwrap_err().to_string();
    assert!(e.contains("1-net1.json") && e.contains("rename"), "{e}");
    assert!(!c.dir().join("0-eth0.json").exists());
    assert!(!c.dir().join("2-net2.json").exists());
    std::fs::remove_dir(c.dir().join("1-net1.json")).unwrap();
    assert!(c.read_all().unwrap().is_empty());
    assert!(c.remove_if_empty().unwrap());
}

#[test]
fn a_container_id_naming_a_cni_dir_entry_that_is_not_a_container_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let j = Journal::new(tmp.path());
    for id in ["orphans", "status", "events.log"] {
        let e = j.lock(id).unwrap_err();
        assert!(matches!(e, JournalError::ReservedId { .. }), "{id}: {e}");
        let cni: CniError = e.into();
        assert_eq!(cni.code, ErrorCode::InvalidEnv as u32, "{id}");
        assert!(cni.msg.contains(id), "{}", cni.msg);
        assert!(!tmp.path().join(id).exists(), "{id} was created");
    }
    // Only the exact names: ids that merely contain them are containers like any other.
    drop(j.lock("status-1").unwrap());
}
