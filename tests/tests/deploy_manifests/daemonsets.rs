//! The two DaemonSets: the release image on every node with least privilege, and each wired to
//! what its binary's flags name (the node's CNI dirs for `plexus install`; kubelet's dir, sysfs,
//! the device-info dir and the ConfigMap for the device plugin).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::{daemonset, deploy_docs, release_image};

/// The pod template of a DaemonSet.
fn pod_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("a DaemonSet has a pod template")
}

/// `--flag=value` of a container's args.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("--{name}=");
    args.iter().find_map(|a| a.strip_prefix(prefix.as_str()))
}

/// A CPU or memory quantity in milli-cores or bytes (the suffixes these manifests use).
fn quantity(q: &str) -> u64 {
    let (num, scale) = if let Some(n) = q.strip_suffix('m') {
        (n, 1)
    } else if let Some(n) = q.strip_suffix("Ki") {
        (n, 1 << 10)
    } else if let Some(n) = q.strip_suffix("Mi") {
        (n, 1 << 20)
    } else if let Some(n) = q.strip_suffix("Gi") {
        (n, 1 << 30)
    } else {
        (q, 1000)
    };
    num.parse::<u64>()
        .unwrap_or_else(|_| panic!("quantity {q:?}"))
        * scale
}

#[test]
fn daemonsets_run_the_release_image_on_every_node_with_least_privilege() {
    let docs = deploy_docs();
    let service_accounts: Vec<String> = docs
        .iter()
        .filter(|d| d.kind() == "ServiceAccount")
        .map(|d| format!("{}/{}", d.namespace().unwrap_or(""), d.name()))
        .collect();
    for name in ["plexus", "plexus-device-plugin"] {
        let ds = daemonset(&docs, name);
        let spec = ds.spec.as_ref().expect("spec");
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
        for (k, v) in spec.selector.match_labels.clone().unwrap_or_default() {
            assert_eq!(
                labels.as_ref().and_then(|l| l.get(&k)),
                Some(&v),
                "{name}: the selector's {k} must select the template"
            );
        }
        let pod = pod_spec(&ds);
        let sa = pod.service_account_name.clone().unwrap_or_default();
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        assert!(
            service_accounts.contains(&format!("{ns}/{sa}")),
            "{name}: ServiceAccount {ns}/{sa} is not in deploy/ ({service_accounts:?})"
        );
        assert_eq!(pod.host_network, Some(true), "{name}: hostNetwork");
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical"),
            "{name}: priorityClassName"
        );
        let tolerates_all = pod.tolerations.iter().flatten().any(|t| {
            t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()
        });
        assert!(tolerates_all, "{name}: must tolerate every taint");
        assert!(pod.init_containers.is_none(), "{name}: no init containers");
        assert_eq!(pod.containers.len(), 1, "{name}: one container");
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some(release_image().as_str()), "{name}");
        assert_eq!(
            c.image_pull_policy.as_deref(),
            Some("IfNotPresent"),
            "{name}"
        );

        let resources = c.resources.clone().expect("resources");
        let (requests, limits) = (
            resources.requests.expect("requests"),
            resources.limits.expect("limits"),
        );
        for key in ["cpu", "memory"] {
            let request = quantity(&requests.get(key).expect("a request").0);
            let limit = quantity(&limits.get(key).expect("a limit").0);
            assert!(
                0 < request && request <= limit,
                "{name}: {key} request {request} must be positive and within the limit {limit}"
            );
        }

        let sc = c.security_context.clone().expect("securityContext");
        assert_ne!(sc.privileged, Some(true), "{name}: not privileged");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        let caps = sc.capabilities.expect("capabilities");
        assert_eq!(
            caps.drop,
            Some(vec!["ALL".to_owned()]),
            "{name}: drop every capability"
        );
        assert!(caps.add.is_none(), "{name}: add no capability");

        let volumes: Vec<String> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect();
        let mounts: Vec<String> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.clone())
            .collect();
        let (mut v_sorted, mut m_sorted) = (volumes.clone(), mounts.clone());
        v_sorted.sort();
        m_sorted.sort();
        assert_eq!(
            v_sorted, m_sorted,
            "{name}: every volume mounted once, every mount a volume"
        );
    }
}

/// The mount path and hostPath of each hostPath volume of a DaemonSet's container, with its
/// read-only flag.
fn host_mounts(ds: &DaemonSet) -> Vec<(String, String, bool)> {
    let pod = pod_spec(ds);
    let mut out = Vec::new();
    for m in pod.containers[0].volume_mounts.iter().flatten() {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .expect("mounted volume");
        if let Some(hp) = &volume.host_path {
            out.push((
                m.mount_path.clone(),
                hp.path.clone(),
                m.read_only == Some(true),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn the_node_daemonset_runs_plexus_install_on_the_nodes_cni_dirs() {
    let ds = daemonset(&deploy_docs(), "plexus");
    let pod = pod_spec(&ds);
    assert_eq!(
        pod.automount_service_account_token,
        Some(true),
        "the token is the plugin's credential"
    );
    let c = &pod.containers[0];
    let command = c.command.clone().expect("command");
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(command, ["/opt/plexus/bin/plexus"]);
    assert_eq!(args.first().map(String::as_str), Some("install"));
    // `plexus install` reaches the node's paths under --host-root (default /host): each CNI dir
    // is mounted at /host/<node path>, and the flags (defaults /opt/cni/bin and /etc/cni/net.d)
    // name the same node paths.
    assert_eq!(
        flag(&args, "host-root"),
        None,
        "the default host root, /host"
    );
    let bin_dir = flag(&args, "cni-bin-dir").unwrap_or("/opt/cni/bin");
    let conf_dir = flag(&args, "cni-conf-dir").unwrap_or("/etc/cni/net.d");
    let expected = vec![
        (format!("/host{conf_dir}"), conf_dir.to_owned(), false),
        (format!("/host{bin_dir}"), bin_dir.to_owned(), false),
    ];
    let mut expected = expected;
    expected.sort();
    assert_eq!(
        host_mounts(&ds),
        expected,
        "exactly the two CNI dirs, writable"
    );
    // The health check is the installer's own, in the same container (it reads the status record
    // the installer keeps in /tmp, an emptyDir under a read-only root filesystem).
    let probe = c.readiness_probe.clone().expect("readinessProbe");
    let exec = probe.exec.and_then(|e| e.command).expect("an exec probe");
    assert_eq!(exec, [command[0].as_str(), "install", "--health"]);
    assert!(
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/tmp"),
        "/tmp must be writable for the status record"
    );
    let strategy = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.clone())
        .expect("updateStrategy");
    let rolling = strategy.rolling_update.expect("rollingUpdate");
    assert_eq!(
        (rolling.max_surge, rolling.max_unavailable),
        (Some(IntOrString::Int(1)), Some(IntOrString::Int(0))),
        "the new installer starts before the old one removes 00-plexus.conflist"
    );
}

#[test]
fn the_device_plugin_daemonset_is_wired_to_kubelet_sysfs_and_its_config() {
    let docs = deploy_docs();
    let ds = daemonset(&docs, "plexus-device-plugin");
    let pod = pod_spec(&ds);
    assert_eq!(
        pod.automount_service_account_token,
        Some(false),
        "no API access"
    );
    let c = &pod.containers[0];
    assert_eq!(
        c.command.clone().expect("command"),
        ["/opt/plexus/bin/plexus-device-plugin"]
    );
    let args = c.args.clone().unwrap_or_default();
    let mounts = host_mounts(&ds);
    let host = |flag_name: &str, host_path: &str, read_only: bool| {
        let value = flag(&args, flag_name).unwrap_or_else(|| panic!("--{flag_name} is set"));
        assert!(
            mounts.contains(&(value.to_owned(), host_path.to_owned(), read_only)),
            "--{flag_name}={value} must be the node's {host_path} (read-only: {read_only}), mounts: {mounts:?}"
        );
    };
    host(
        "device-plugins-dir",
        "/var/lib/kubelet/device-plugins",
        false,
    );
    host("sysfs-root", "/sys", true);
    host("devinfo-dir", "/var/run/k8s.cni.cncf.io/devinfo/dp", false);
    assert_eq!(
        mounts.len(),
        3,
        "only kubelet's dir, sysfs and the device-info dir: {mounts:?}"
    );

    // --config names config.json in the ConfigMap volume, and that ConfigMap is in deploy/.
    let config = flag(&args, "config").expect("--config");
    let (dir, file) = config.rsplit_once('/').expect("a path");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {dir}"));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("volume");
    let cm = volume
        .config_map
        .clone()
        .expect("the config dir is a ConfigMap volume");
    let items = cm.items.unwrap_or_default();
    assert!(
        items
            .iter()
            .any(|i| i.key == "config.json" && i.path == file)
    );
    let cm_doc = docs
        .iter()
        .find(|d| d.kind() == "ConfigMap" && d.name() == cm.name)
        .unwrap_or_else(|| panic!("ConfigMap {} is not in deploy/", cm.name));
    assert_eq!(cm_doc.namespace(), ds.metadata.namespace.as_deref());

    // The probes reach the metrics endpoint the flags open.
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("metrics port");
    let address = flag(&args, "metrics-address").expect("--metrics-address");
    assert_eq!(
        address.rsplit_once(':').map(|(_, p)| p),
        Some(port.container_port.to_string().as_str())
    );
    for probe in [c.liveness_probe.clone(), c.readiness_probe.clone()] {
        let get = probe.and_then(|p| p.http_get).expect("an HTTP probe");
        assert_eq!(get.path.as_deref(), Some("/metrics"));
        assert_eq!(get.port, IntOrString::String("metrics".into()));
    }

    // Its ServiceAccount is bound to nothing.
    let sa = pod
        .service_account_name
        .clone()
        .expect("serviceAccountName");
    for d in docs.iter().filter(|d| d.kind().ends_with("RoleBinding")) {
        let subjects = d.value["subjects"].as_array().cloned().unwrap_or_default();
        assert!(
            subjects.iter().all(|s| s["name"] != json!(sa)),
            "{d} binds the device plugin's ServiceAccount"
        );
    }
}
