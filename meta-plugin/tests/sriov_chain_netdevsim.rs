//! The whole SR-IOV chain with the real in-process sriov delegate: the built `plexus` binary,
//! run as containerd runs it (local mode, env + stdin), attaches eth0 through the reference
//! bridge and net1 through a NAD of type `sriov` naming a device-plugin resource; a fake kubelet
//! reports the pod's VF, the fake sysfs tree of [`sriov_chain`] maps it to VF 0 of a real
//! netdevsim PF (so the PF-side VF settings reach a driver) and to a veth standing in for its
//! netdev. DEL puts everything back; a failed ADD (IPAM exhausted after the VF was configured
//! and moved) rolls everything back.
//!
//! Needs root, the reference plugins in /usr/lib/cni and netdevsim: the host kernel lacks it,
//! so these tests skip there (with the reason printed) and run in the VM (scripts/test.sh runs
//! tests named `netdevsim` there, with PLEXUS_REQUIRE_KERNEL=1 turning a skip into a failure).

#![allow(clippy::unwrap_used)]

mod fake_kubelet;
mod local_env;
mod pod_state;
mod sriov_chain;

use local_env::text;
use plexus_delegates::netlink::{MacAddr, VlanProto};
use serde_json::{Value, json};
use sriov_chain::{ADMIN_MAC, NAD, POD_MAC, POD_QOS, POD_VLAN, STANDIN, STANDIN_MAC, SriovBed};

#[test]
fn sriov_chain_netdevsim_add_configures_the_vf_and_del_restores_it() {
    let Some(bed) = SriovBed::new(
        "sriov_chain_netdevsim_add_configures_the_vf_and_del_restores_it",
        json!([[{"subnet": "10.56.217.0/24"}]]),
    ) else {
        return;
    };
    let env = &bed.env;
    // the VF starts with an administrator's settings, which DEL must put back
    for needle in [ADMIN_MAC, "vlan 7,", "spoof checking on", "trust off"] {
        assert!(
            bed.original_line.contains(needle),
            "{needle:?} missing before ADD: {}",
            bed.original_line
        );
    }
    let cid = "7d4e0a3b1f2c4b8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
    let out = bed.plexus("ADD", cid);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();

    // net1 is the stand-in, moved into the pod under its final name, with the NAD's MAC and a
    // host-local address
    assert!(
        bed.node_link(STANDIN).is_none(),
        "{STANDIN} still in the node"
    );
    assert_eq!(env.pod_links(), ["lo", "eth0", "net1"]);
    let link = env.pod.run_ok("ip", &["-o", "link", "show", "net1"]);
    assert!(link.contains(POD_MAC) && link.contains(",UP"), "{link}");
    let addr = env.addr("net1");
    assert!(addr.contains("inet 10.56.217."), "{addr}");
    let ip = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap()
        .to_owned();
    assert!(env.addr("eth0").contains("inet 10.99.0."));

    // the driver has the NAD's VF settings (iproute2's view and netlink's)
    let line = bed.vf_line();
    for needle in [
        format!("link/ether {POD_MAC}"),
        format!("vlan {POD_VLAN},"),
        format!("qos {POD_QOS}"),
        "spoof checking off".into(),
        "trust on".into(),
    ] {
        assert!(line.contains(&needle), "{needle:?} missing: {line}");
    }
    let vf0 = bed.vfs()[0].clone();
    assert_eq!(
        (
            vf0.mac,
            vf0.vlan,
            vf0.qos,
            vf0.vlan_proto,
            vf0.spoofchk,
            vf0.trust
        ),
        (
            POD_MAC.parse::<MacAddr>().unwrap(),
            POD_VLAN,
            POD_QOS,
            VlanProto::Dot1Q,
            false,
            true
        )
    );
    assert_eq!(bed.vfs()[1], bed.original_vfs[1], "VF 1 untouched");

    // the delegate's durable record: who holds the VF and what it was before
    let rec = bed.record().expect("the VF record");
    assert_eq!(rec.pci.to_string(), bed.vf);
    assert_eq!(
        (rec.owner.container_id.as_str(), rec.owner.ifname.as_str()),
        (cid, "net1")
    );
    assert_eq!(rec.owner.netns, env.pod.path());
    assert_eq!((rec.pf_name.as_str(), rec.vf_index), (bed.pf.as_str(), 0));
    assert_eq!(rec.original.vf, bed.original_vfs[0]);
    let netdev = rec.original.netdev.as_ref().expect("a kernel-driver VF");
    assert_eq!(
        (netdev.name.as_str(), netdev.mac),
        (STANDIN, Some(STANDIN_MAC.parse().unwrap()))
    );
    assert!(bed.state_files().contains(&format!("{}.lock", bed.vf)));

    // the runtime gets the cluster network's result (as from Multus); network-status names
    // the VF, with the device plugin's device-info
    assert_eq!(
        result["ips"][0]["address"]
            .as_str()
            .map(|a| a.starts_with("10.99.0.")),
        Some(true),
        "{result}"
    );
    let status = std::fs::read_to_string(env.status_path()).unwrap();
    let parsed = plexus_crds::parse_network_status(&status).unwrap();
    let summary: Vec<_> = parsed
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.interface.as_deref(),
                s.device_info.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("cbr0", Some("eth0"), false),
            ("default/sriov-vf", Some("net1"), true)
        ],
        "{status}"
    );
    let entries: Value = serde_json::from_str(&status).unwrap();
    let vf_entry = &entries[1];
    assert_eq!(vf_entry["ips"], json!([ip]), "{status}");
    assert_eq!(vf_entry["mac"], POD_MAC, "{status}");
    assert_eq!(vf_entry["device-info"], bed.dp_content, "{status}");
    assert_eq!(bed.cni_devinfo_files().len(), 1, "the meta-plugin's copy");
    assert_eq!(env.leases().len(), 2, "{:?}", env.leases());

    // DEL: the VF's settings and netdev back as they were, nothing of the pod left
    let out = bed.plexus("DEL", cid);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    bed.assert_nothing_left(cid, &[], "after DEL");
    assert!(bed.vf_line().contains(ADMIN_MAC));
    // the device plugin's file is its own
    assert_eq!(
        std::fs::read_dir(env.p("devinfo/dp")).unwrap().count(),
        1,
        "the dp file stays"
    );

    // a repeated DEL (the runtime retries) changes nothing
    let out = bed.plexus("DEL", cid);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    bed.assert_nothing_left(cid, &[], "after a second DEL");
}

#[test]
fn sriov_chain_netdevsim_ipam_exhausted_after_the_vf_is_configured_rolls_everything_back() {
    // one address in the range, already leased to another pod: host-local fails only after
    // the delegate applied the VF settings (a VLAN the driver accepts) and moved the netdev
    let Some(bed) = SriovBed::new(
        "sriov_chain_netdevsim_ipam_exhausted_after_the_vf_is_configured_rolls_everything_back",
        json!([[{"subnet": "10.56.9.0/24", "rangeStart": "10.56.9.10", "rangeEnd": "10.56.9.10"}]]),
    ) else {
        return;
    };
    let env = &bed.env;
    let taken = env.p(&format!("ipam/{NAD}/10.56.9.10"));
    std::fs::create_dir_all(taken.parent().unwrap()).unwrap();
    std::fs::write(&taken, "another-pods-sandbox\r\nnet1").unwrap();
    let blocker = format!("{NAD}/10.56.9.10");

    let cid = "8e5f1b4c2a3d4c9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e";
    let out = bed.plexus("ADD", cid);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = err["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("no IP addresses available"), "{err}");
    assert!(!msg.contains("rollback incomplete"), "{err}");
    // the delegate got as far as the VF: it logs this after saving the record and before
    // applying the settings, moving the netdev and running IPAM, in that order
    assert!(env.log().contains("attaching VF"), "log:\n{}", env.log());

    bed.assert_nothing_left(cid, &[blocker.as_str()], "after the failed ADD");

    // the runtime's DEL of the failed sandbox changes nothing
    let out = bed.plexus("DEL", cid);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    bed.assert_nothing_left(cid, &[blocker.as_str()], "after DEL of the failed sandbox");
}
