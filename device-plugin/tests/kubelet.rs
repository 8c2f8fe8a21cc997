//! The daemon against a fake kubelet over real unix sockets, on fake sysfs trees.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use plexus_delegates::sriov::sysfs::fake_tree::{FakeSysfs, PfSpec, VfSpec};
use plexus_device_plugin::{Daemon, Settings, config};
use plexus_kubelet_api::deviceplugin::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest, Empty,
    PreStartContainerRequest, PreferredAllocationRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Env {
    _tmp: tempfile::TempDir,
    fake: FakeSysfs,
    plugin_dir: PathBuf,
    devinfo_dir: PathBuf,
    kubelet: FakeKubelet,
}

impl Env {
    fn new(fake: FakeSysfs) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let plugin_dir = tmp.path().join("device-plugins");
        std::fs::create_dir(&plugin_dir).unwrap();
        let devinfo_dir = tmp.path().join("devinfo/dp");
        let kubelet = FakeKubelet::start(&plugin_dir);
        Env {
            _tmp: tmp,
            fake,
            plugin_dir,
            devinfo_dir,
            kubelet,
        }
    }

    fn settings(&self, config_json: &str) -> Settings {
        Settings {
            config: config::parse(Path::new("config.json"), config_json.as_bytes()).unwrap(),
            sysfs_root: self.fake.root().to_path_buf(),
            plugin_dir: self.plugin_dir.clone(),
            devinfo_dir: self.devinfo_dir.clone(),
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            poll_interval: Duration::from_millis(100),
            full_scan_interval: Duration::from_secs(10),
            socket_check_interval: Duration::from_millis(100),
        }
    }

    async fn start(&mut self) -> Daemon {
        let daemon = Daemon::start(self.settings(CONFIG)).await.unwrap();
        let regs = self.kubelet.registrations(2).await;
        assert_eq!(regs[0].resource_name, DPDK);
        assert_eq!(regs[1].resource_name, NET);
        daemon
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_each_pool_and_streams_its_devices_with_numa() {
    let mut env = Env::new(host());
    let daemon = Daemon::start(env.settings(CONFIG)).await.unwrap();
    let regs = env.kubelet.registrations(2).await;
    for r in &regs {
        assert_eq!(r.version, "v1beta1");
        let opts = r.options.unwrap();
        assert!(opts.get_preferred_allocation_available);
        assert!(!opts.pre_start_required);
    }
    assert_eq!(regs[0].resource_name, DPDK);
    assert_eq!(regs[0].endpoint, DPDK_SOCKET);
    assert_eq!(regs[1].resource_name, NET);
    assert_eq!(regs[1].endpoint, NET_SOCKET);
    assert!(env.plugin_dir.join(NET_SOCKET).exists());

    let mut client = env.kubelet.plugin(NET_SOCKET).await;
    let opts = client
        .get_device_plugin_options(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(opts.get_preferred_allocation_available);

    let devices = env.kubelet.watch(NET_SOCKET).await.next().await;
    let fake = &env.fake;
    let mut expected = vec![
        vf(fake, PF1, 0),
        vf(fake, PF1, 1),
        vf(fake, PF2, 0),
        vf(fake, PF2, 1),
        vf(fake, PF3, 0),
        vf(fake, PF3, 1),
    ];
    expected.sort();
    assert_eq!(ids(&devices), expected);
    assert_eq!(with_health(&devices, "Healthy").len(), 6);
    for d in &devices {
        let node = d.topology.as_ref().unwrap().nodes[0].id;
        let want = if d.id.starts_with("0000:af") { 1 } else { 0 };
        assert_eq!(node, want, "{}", d.id);
    }
    let dpdk = env.kubelet.watch(DPDK_SOCKET).await.next().await;
    assert_eq!(ids(&dpdk), [vf(fake, PF3, 2), vf(fake, PF3, 3)]);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pf_link_and_vf_driver_changes_reach_list_and_watch() {
    let mut env = Env::new(host());
    let daemon = env.start().await;
    let fake = &env.fake;
    let mut net = env.kubelet.watch(NET_SOCKET).await;
    let mut dpdk = env.kubelet.watch(DPDK_SOCKET).await;
    assert_eq!(with_health(&net.next().await, "Healthy").len(), 6);
    assert_eq!(dpdk.next().await.len(), 2);

    // the PF's link goes down: both its VFs turn unhealthy, nothing else
    fake.set_link("ens1f0", false);
    let d = net
        .until("ens1f0's VFs unhealthy", |d| {
            !with_health(d, "Unhealthy").is_empty()
        })
        .await;
    assert_eq!(
        with_health(&d, "Unhealthy"),
        [vf(fake, PF1, 0), vf(fake, PF1, 1)]
    );
    fake.set_link("ens1f0", true);
    net.until("all healthy again", |d| {
        with_health(d, "Healthy").len() == 6
    })
    .await;

    // a VF's driver is unbound: it stays listed, unhealthy
    let target = vf(fake, PF2, 1);
    fake.rebind_vf(&target, None);
    let d = net
        .until("the unbound VF unhealthy", |d| {
            with_health(d, "Unhealthy") == [target.clone()]
        })
        .await;
    assert_eq!(d.len(), 6);
    // bound to vfio-pci, it leaves the netdevice pool ...
    fake.rebind_vf(&target, Some("vfio-pci"));
    let d = net
        .until("the VF gone from sriov_net", |d| d.len() == 5)
        .await;
    assert!(!ids(&d).contains(&target));
    // ... but not into sriov_dpdk, whose pfNames selector only takes ens2f0's VFs
    fake.rebind_vf(&target, Some("iavf"));
    net.until("the VF back, healthy", |d| {
        d.len() == 6 && with_health(d, "Healthy").len() == 6
    })
    .await;

    // an ens2f0 VF moves from iavf to vfio-pci: from one pool to the other
    let moved = vf(fake, PF3, 1);
    fake.rebind_vf(&moved, Some("vfio-pci"));
    let d = dpdk
        .until("the VF in sriov_dpdk", |d| ids(d).contains(&moved))
        .await;
    assert_eq!(d.len(), 3);
    net.until("the VF gone from sriov_net", |d| !ids(d).contains(&moved))
        .await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sriov_numvfs_changes_add_and_remove_devices() {
    let mut env = Env::new(host());
    let daemon = env.start().await;
    let fake = &env.fake;
    let mut net = env.kubelet.watch(NET_SOCKET).await;
    assert_eq!(net.next().await.len(), 6);
    fake.set_num_vfs(PF1, 5, VfSpec::kernel("iavf"));
    let d = net.until("3 more VFs", |d| d.len() == 9).await;
    assert!(ids(&d).contains(&vf(fake, PF1, 4)));
    assert_eq!(with_health(&d, "Healthy").len(), 9);
    fake.set_num_vfs(PF1, 0, VfSpec::kernel("iavf"));
    let d = net.until("ens1f0's VFs gone", |d| d.len() == 4).await;
    let mut rest = vec![
        vf(fake, PF2, 0),
        vf(fake, PF2, 1),
        vf(fake, PF3, 0),
        vf(fake, PF3, 1),
    ];
    rest.sort();
    assert_eq!(ids(&d), rest);
    // a PF that had no VFs at all gets some again
    fake.set_num_vfs(PF1, 1, VfSpec::kernel("iavf"));
    let d = net.until("ens1f0's new VF", |d| d.len() == 5).await;
    assert!(ids(&d).contains(&vf(fake, PF1, 0)));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_allocation_spreads_over_pfs_on_one_numa_node() {
    let mut env = Env::new(host());
    let daemon = env.start().await;
    let fake = &env.fake;
    let mut client = env.kubelet.plugin(NET_SOCKET).await;
    let available = ids(&env.kubelet.watch(NET_SOCKET).await.next().await);
    let ask = |must: Vec<String>, size: i32| PreferredAllocationRequest {
        container_requests: vec![ContainerPreferredAllocationRequest {
            available_device_ids: available.clone(),
            must_include_device_ids: must,
            allocation_size: size,
        }],
    };
    let got = client
        .get_preferred_allocation(ask(vec![], 2))
        .await
        .unwrap()
        .into_inner()
        .container_responses[0]
        .device_ids
        .clone();
    // NUMA 0 has two PFs: one VF of each
    assert_eq!(got, [vf(fake, PF1, 0), vf(fake, PF2, 0)]);
    let got = client
        .get_preferred_allocation(ask(vec![vf(fake, PF3, 1)], 2))
        .await
        .unwrap()
        .into_inner()
        .container_responses[0]
        .device_ids
        .clone();
    // must_include on NUMA 1: the rest stays there
    assert_eq!(got, [vf(fake, PF3, 1), vf(fake, PF3, 0)]);
    daemon.shutdown().await;
}

/// GET `path` from the metrics server.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    within("the metrics response", s.read_to_string(&mut out))
        .await
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocate_answers_env_device_nodes_and_device_info_files_and_counts_them() {
    let mut env = Env::new(host());
    let daemon = env.start().await;
    let fake = &env.fake;
    let a = vf(fake, PF1, 1);
    let b = vf(fake, PF3, 0);
    let mut net = env.kubelet.plugin(NET_SOCKET).await;
    let r = net
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![a.clone(), b.clone()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let c = &r.container_responses[0];
    assert_eq!(c.envs["PCIDEVICE_INTEL_COM_SRIOV_NET"], format!("{a},{b}"));
    let info: serde_json::Value =
        serde_json::from_str(&c.envs["PCIDEVICE_INTEL_COM_SRIOV_NET_INFO"]).unwrap();
    assert_eq!(info[&a], serde_json::json!({"generic": {"deviceID": a}}));
    assert_eq!(info[&b]["generic"]["deviceID"], b.as_str());
    assert!(
        c.devices.is_empty(),
        "kernel-driver VFs need no device node"
    );
    for pci in [&a, &b] {
        let file = env
            .devinfo_dir
            .join(format!("intel.com-sriov_net-{pci}-device.json"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": pci}})
        );
    }

    // a vfio-pci VF: its IOMMU group's node and the vfio container node
    let v = vf(fake, PF3, 3);
    let group = std::fs::read_link(fake.path(&format!("bus/pci/devices/{v}/iommu_group")))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut dpdk = env.kubelet.plugin(DPDK_SOCKET).await;
    let r = dpdk
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![v.clone()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let c = &r.container_responses[0];
    let nodes: Vec<(&str, &str)> = c
        .devices
        .iter()
        .map(|d| (d.host_path.as_str(), d.container_path.as_str()))
        .collect();
    let group_dev = format!("/dev/vfio/{group}");
    assert_eq!(
        nodes,
        [
            ("/dev/vfio/vfio", "/dev/vfio/vfio"),
            (group_dev.as_str(), group_dev.as_str())
        ]
    );
    let info: serde_json::Value =
        serde_json::from_str(&c.envs["PCIDEVICE_INTEL_COM_SRIOV_DPDK_INFO"]).unwrap();
    assert_eq!(
        info[&v]["vfio"],
        serde_json::json!({"mount": "/dev/vfio/vfio", "dev-mount": group_dev})
    );

    // a device of another pool is refused, naming it; nothing is written for it
    let e = dpdk
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![a.clone()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains(&a), "{}", e.message());
    assert!(
        !env.devinfo_dir
            .join(format!("intel.com-sriov_dpdk-{a}-device.json"))
            .exists()
    );
    let e = net
        .pre_start_container(PreStartContainerRequest {
            devices_ids: vec!["0000:ff:1f.7".into()],
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("0000:ff:1f.7"), "{}", e.message());

    // /metrics: devices, healthy devices, allocations per pool
    let text = http_get(daemon.metrics_addr().unwrap(), "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/plain; version=0.0.4"), "{text}");
    for line in [
        "# HELP plexus_sriov_devices SR-IOV VFs listed to kubelet, per resource pool.",
        "# TYPE plexus_sriov_devices gauge",
        "plexus_sriov_devices{resource=\"intel.com/sriov_net\"} 6",
        "plexus_sriov_devices{resource=\"intel.com/sriov_dpdk\"} 2",
        "plexus_sriov_healthy_devices{resource=\"intel.com/sriov_net\"} 6",
        "# TYPE plexus_sriov_allocated_devices_total counter",
        "plexus_sriov_allocated_devices_total{resource=\"intel.com/sriov_net\"} 2",
        "plexus_sriov_allocated_devices_total{resource=\"intel.com/sriov_dpdk\"} 1",
        "plexus_sriov_registrations_total{resource=\"intel.com/sriov_net\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // health shows in the gauges after the next poll
    fake.set_link("ens2f0", false);
    let mut watch = env.kubelet.watch(NET_SOCKET).await;
    watch
        .until("ens2f0 down", |d| with_health(d, "Unhealthy").len() == 2)
        .await;
    let text = http_get(daemon.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        text.lines()
            .any(|l| l == "plexus_sriov_healthy_devices{resource=\"intel.com/sriov_net\"} 4"),
        "{text}"
    );
    assert!(
        http_get(daemon.metrics_addr().unwrap(), "/other")
            .await
            .starts_with("HTTP/1.1 404")
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocate_fails_naming_the_file_when_device_info_cannot_be_written() {
    let mut env = Env::new(host());
    // the device-info dir's parent is a regular file
    let blocker = env.plugin_dir.parent().unwrap().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    env.devinfo_dir = blocker.join("dp");
    let daemon = env.start().await;
    let a = vf(&env.fake, PF1, 0);
    let e = env
        .kubelet
        .plugin(NET_SOCKET)
        .await
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![a.clone()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal);
    assert!(e.message().contains("device-info"), "{}", e.message());
    assert!(e.message().contains("not-a-dir"), "{}", e.message());
    assert_eq!(daemon.metrics().allocated(NET), 0);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registers_after_kubelet_restarts() {
    let mut env = Env::new(host());
    let daemon = env.start().await;
    let mut old = env.kubelet.watch(NET_SOCKET).await;
    assert_eq!(old.next().await.len(), 6);

    // kubelet restarts: kubelet.sock re-created, our sockets deleted
    env.kubelet.restart().await;
    let regs = env.kubelet.registrations(2).await;
    assert_eq!(regs[0].resource_name, DPDK);
    assert_eq!(regs[1].resource_name, NET);
    assert_eq!(regs[1].endpoint, NET_SOCKET);
    assert!(env.plugin_dir.join(NET_SOCKET).exists());
    // the old stream ends with the old server; the new socket serves
    assert!(old.ended().await);
    let devices = env.kubelet.watch(NET_SOCKET).await.next().await;
    assert_eq!(with_health(&devices, "Healthy").len(), 6);

    // kubelet.sock re-created, our sockets left alone: register again on the same socket
    env.kubelet.restart_keeping_plugin_sockets().await;
    let regs = env.kubelet.registrations(2).await;
    assert_eq!(regs[1].resource_name, NET);
    assert_eq!(daemon.metrics().allocated(NET), 0);
    daemon.shutdown().await;
    assert!(!env.plugin_dir.join(NET_SOCKET).exists());
    assert!(!env.plugin_dir.join(DPDK_SOCKET).exists());
    assert!(
        env.kubelet.socket().exists(),
        "kubelet's socket is not ours to remove"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_kubelet_and_registers_when_it_appears() {
    let mut env = Env::new(host());
    env.kubelet.stop().await;
    let daemon = Daemon::start(env.settings(CONFIG)).await.unwrap();
    // serving already, not registered
    within("the plugin socket", async {
        while !env.plugin_dir.join(NET_SOCKET).exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(env.kubelet.pending_registrations().is_empty());
    env.kubelet.restart_keeping_plugin_sockets().await;
    let regs = env.kubelet.registrations(2).await;
    assert_eq!(regs[1].resource_name, NET);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_stays_across_daemon_restarts_while_vfs_sit_in_pods() {
    let mut env = Env::new(host());
    let fake = &env.fake;
    // two VFs are in pods: their netdevs are gone from the host
    let in_pod = [vf(fake, PF1, 0), vf(fake, PF3, 1)];
    for v in &in_pod {
        fake.set_vf_netdev(v, None);
    }
    let daemon = env.start().await;
    let before = env.kubelet.watch(NET_SOCKET).await.next().await;
    assert_eq!(with_health(&before, "Healthy").len(), 6);
    daemon.shutdown().await;
    assert!(!env.plugin_dir.join(NET_SOCKET).exists());

    let daemon = env.start().await;
    let after = env.kubelet.watch(NET_SOCKET).await.next().await;
    assert_eq!(after, before);
    // one comes back from its pod (destroyed netns) renamed: still the same device. A later
    // change (its PF's link going down) shows the poll after the rename kept it.
    // Nothing is sent for it: the next message is the link change.
    let mut w = env.kubelet.watch(NET_SOCKET).await;
    assert_eq!(w.next().await, before);
    env.fake.set_vf_netdev(&in_pod[0], Some("dev7"));
    let polls = daemon.metrics().polls();
    within("two more sysfs polls", async {
        while daemon.metrics().polls() < polls + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    env.fake.set_link("ens1f0", false);
    let d = w.next().await;
    assert_eq!(with_health(&d, "Unhealthy").len(), 2);
    assert_eq!(ids(&d), ids(&before));
    assert!(with_health(&d, "Unhealthy").contains(&in_pod[0]));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pf_is_found_by_the_periodic_full_scan() {
    let mut env = Env::new(host());
    let mut settings = env.settings(CONFIG);
    settings.full_scan_interval = Duration::from_millis(300);
    let daemon = Daemon::start(settings).await.unwrap();
    env.kubelet.registrations(2).await;
    let mut net = env.kubelet.watch(NET_SOCKET).await;
    assert_eq!(net.next().await.len(), 6);
    // past the first poll (which always scans fully), polls read fingerprints of known PFs only
    within("two polls", async {
        while daemon.metrics().polls() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let fake = env.fake;
    let fake = fake
        .add_pf("ens3f0", "0000:d8:00.0", PfSpec::default().numa(1))
        .add_vfs(3, VfSpec::kernel("iavf"));
    let d = net.until("the new PF's VFs", |d| d.len() == 9).await;
    assert!(ids(&d).contains(&fake.vf_pci("0000:d8:00.0", 2).to_string()));
    assert!(daemon.metrics().full_scans() >= 2);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_name_what_is_wrong() {
    let env = Env::new(host());
    let mut s = env.settings(CONFIG);
    s.plugin_dir = env.plugin_dir.join("missing");
    let e = Daemon::start(s).await.unwrap_err().to_string();
    assert!(
        e.contains("device-plugins dir") && e.contains("missing"),
        "{e}"
    );
    let mut s = env.settings(CONFIG);
    s.sysfs_root = "/nonexistent/sys".into();
    let e = Daemon::start(s).await.unwrap_err().to_string();
    assert!(e.contains("/nonexistent/sys"), "{e}");
    let e = config::parse(
        Path::new("/etc/pcidp/config.json"),
        br#"{"resourceList":[{"resourceName":"x","selectors":{"rootDevices":["0000:3b:00.0#2-x"]}}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("rootDevices") && e.contains("0000:3b:00.0#2-x"),
        "{e}"
    );
    // nothing was left behind
    assert_eq!(std::fs::read_dir(&env.plugin_dir).unwrap().count(), 1);
}
