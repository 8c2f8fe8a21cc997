//! The real `plexus` binary, run as containerd runs it, in real network namespaces, kube mode:
//! the plexus config names a kubeconfig (CA data + bearer token) for the in-process fake
//! kube-apiserver, which serves the pod and two macvlan NADs whose master is a veth in the "node"
//! namespace, and records every request. eth0 goes through the reference bridge + host-local.
//! Needs root and the reference plugins in `/usr/lib/cni`; skips with the reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fake_apiserver;

mod pod_state;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fake_apiserver::{Answer, FakeApiServer, Recorded};
use plexus_delegates::netns::fixture::TestNetns;
use serde_json::{Value, json};

const REF_BIN: &str = "/usr/lib/cni";
const TOKEN: &str = "e2e-t0ken-plexus";
const NS: &str = "fixtures";
const POD: &str = "multi-pod";
/// The UID of `tests/data/pod-get.json`.
const POD_UID: &str = "449436d5-70fb-40f1-9004-df6094d98123";
const STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";

fn pod_path() -> String {
    format!("/api/v1/namespaces/{NS}/pods/{POD}")
}

fn nad_path(name: &str) -> String {
    format!("/apis/k8s.cni.cncf.io/v1/namespaces/{NS}/network-attachment-definitions/{name}")
}

fn events_path() -> String {
    format!("/api/v1/namespaces/{NS}/events")
}

struct Env {
    // Field order matters for drop: the server before the runtime that drives it.
    server: Option<FakeApiServer>,
    _rt: tokio::runtime::Runtime,
    tmp: tempfile::TempDir,
    node: TestNetns,
    pod: TestNetns,
    bridge: String,
    kubeconfig: PathBuf,
}

impl Env {
    /// `networks`: the pod's `k8s.v1.cni.cncf.io/networks` annotation as the API server has it.
    fn new(test: &str, networks: &str) -> Option<Env> {
        let (node, pod) = pod_state::uplinked_node(test, "pk")?;
        let tmp = tempfile::tempdir().unwrap();
        let bridge = format!("pkbr{}", std::process::id() % 100000);

        // plexus runs in the node netns (as on a node), and 127.0.0.1 there is the node netns's
        // own loopback, not the host's. So the fake API server's listener is bound from a thread
        // that entered the node netns (NetNs::run_in): a socket stays in the netns it was created
        // in, whatever thread later accepts on it, so the runtime's worker threads (host netns)
        // serve it fine. The kubeconfig then says https://127.0.0.1:<port>, as the server's
        // certificate (SAN 127.0.0.1) expects.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = node
            .netns()
            .run_in(|| rt.block_on(FakeApiServer::start(TOKEN)))
            .unwrap();
        let kubeconfig = server.kubeconfig(tmp.path(), TOKEN);
        let e = Env {
            server: Some(server),
            _rt: rt,
            tmp,
            node,
            pod,
            bridge,
            kubeconfig,
        };
        e.write_files();
        e.routes(networks);
        Some(e)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn server(&self) -> &FakeApiServer {
        self.server.as_ref().expect("server running")
    }

    fn write_files(&self) {
        std::fs::create_dir_all(self.p("net.d")).unwrap();
        let conflist = json!({
            "cniVersion": "1.0.0", "name": "cbr0",
            "plugins": [{
                "type": "bridge", "bridge": self.bridge, "isGateway": true,
                "ipam": {"type": "host-local", "dataDir": self.p("ipam"),
                         "ranges": [[{"subnet": "10.97.0.0/24"}]],
                         "routes": [{"dst": "0.0.0.0/0"}]}
            }]
        });
        std::fs::write(self.p("net.d/10-bridge.conflist"), conflist.to_string()).unwrap();
    }

    /// The pod (tests/data/pod-get.json with its networks annotation rewritten), two macvlan NADs
    /// on `up0` (tests/data/nad-get-macvlan.json with name and config rewritten), a 404 for
    /// `missing-nad`, the status patch and the Events.
    fn routes(&self, networks: &str) {
        let s = self.server();
        let mut pod: Value = serde_json::from_slice(&fake_apiserver::data("pod-get.json")).unwrap();
        pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = json!(networks);
        s.route(
            "GET",
            &pod_path(),
            Answer::Body(200, serde_json::to_vec(&pod).unwrap()),
        );
        for (name, subnet) in [("macvlan-a", "10.96.1.0/24"), ("macvlan-b", "10.96.2.0/24")] {
            let mut nad: Value =
                serde_json::from_slice(&fake_apiserver::data("nad-get-macvlan.json")).unwrap();
            let config = json!({
                "cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": "up0",
                "mode": "bridge",
                "ipam": {"type": "host-local", "dataDir": self.p("ipam"),
                         "ranges": [[{"subnet": subnet}]]}
            });
            nad["metadata"]["name"] = json!(name);
            nad["metadata"]["annotations"] = json!({});
            nad["spec"]["config"] = json!(config.to_string());
            s.route(
                "GET",
                &nad_path(name),
                Answer::Body(200, serde_json::to_vec(&nad).unwrap()),
            );
        }
        s.route(
            "GET",
            &nad_path("missing-nad"),
            Answer::File(404, "nad-get-404.json"),
        );
        s.route(
            "PATCH",
            &format!("{}/status", pod_path()),
            Answer::File(200, "pod-status-merge-patch-response.json"),
        );
        s.route("POST", &events_path(), Answer::Echo201);
    }

    /// The plexus config; `annotations` go to runtimeConfig["io.kubernetes.cri.pod-annotations"]
    /// as containerd passes them, `None` leaves them out (other runtimes).
    fn config(&self, annotations: Option<&str>) -> String {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "plexus", "type": "plexus",
            "kubeconfig": self.kubeconfig,
            "clusterNetwork": self.p("net.d/10-bridge.conflist"),
            "cniDir": self.p("cni"), "binDir": REF_BIN,
            "logLevel": "debug", "logFile": self.p("plexus.log"), "logToStderr": false,
            "capabilities": {"io.kubernetes.cri.pod-annotations": true},
        });
        if let Some(networks) = annotations {
            c["runtimeConfig"] = json!({"io.kubernetes.cri.pod-annotations": {
                "k8s.v1.cni.cncf.io/networks": networks,
                "kubernetes.io/config.source": "api"
            }});
        }
        c.to_string()
    }

    /// Runs plexus inside the node namespace, like containerd on that node.
    fn plexus(&self, verb: &str, cid: &str, netns: Option<&Path>, stdin: &str) -> Output {
        self.plexus_uid(verb, cid, netns, stdin, POD_UID)
    }

    /// [`Env::plexus`] with the `K8S_POD_UID` the runtime sends.
    fn plexus_uid(
        &self,
        verb: &str,
        cid: &str,
        netns: Option<&Path>,
        stdin: &str,
        uid: &str,
    ) -> Output {
        let bin = env!("CARGO_BIN_EXE_plexus");
        let stdin = stdin.to_owned();
        self.node
            .netns()
            .run_in(|| {
                let mut cmd = Command::new(bin);
                cmd.env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("CNI_COMMAND", verb)
                    .env("CNI_CONTAINERID", cid)
                    .env("CNI_IFNAME", "eth0")
                    .env("CNI_PATH", REF_BIN)
                    .env(
                        "CNI_ARGS",
                        format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={POD};K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID={uid}"),
                    )
                    .env("CNI_NETNS", netns.map(|p| p.display().to_string()).unwrap_or_default())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = cmd.spawn().unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
                child.wait_with_output().unwrap()
            })
            .unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.server().requests()
    }

    fn pod_links(&self) -> Vec<String> {
        pod_state::pod_links(&self.pod)
    }

    fn addr(&self, ifname: &str) -> String {
        pod_state::addr(&self.pod, ifname)
    }

    /// Leases left by host-local (files named like IPs).
    fn leases(&self) -> Vec<String> {
        pod_state::leases(&self.p("ipam"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.p("plexus.log")).unwrap_or_default()
    }

    /// Nothing of `cid` left: links, leases, journal.
    fn assert_clean(&self, cid: &str) {
        assert_eq!(
            self.pod_links(),
            vec!["lo"],
            "links left\nlog:\n{}",
            self.log()
        );
        assert!(self.leases().is_empty(), "leases left: {:?}", self.leases());
        assert!(!self.p("cni").join(cid).exists(), "journal left behind");
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shape(reqs: &[Recorded]) -> Vec<(String, String)> {
    reqs.iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

fn expected(with_pod_get: bool) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if with_pod_get {
        v.push(("GET".to_owned(), pod_path()));
    }
    v.push(("GET".to_owned(), nad_path("macvlan-a")));
    v.push(("GET".to_owned(), nad_path("macvlan-b")));
    v.push(("PATCH".to_owned(), format!("{}/status", pod_path())));
    v.push(("POST".to_owned(), events_path()));
    v
}

/// The ADD's attachments and the bodies of its status patch and AddedInterface Event.
fn check_add(env: &Env, out: &Output, reqs: &[Recorded]) {
    assert!(out.status.success(), "{}\nlog:\n{}", text(out), env.log());
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        reply["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.97.0."),
        "{reply}"
    );
    let links = env.pod_links();
    for l in ["eth0", "net1", "net2"] {
        assert!(links.iter().any(|x| x == l), "{l} missing: {links:?}");
    }
    assert!(
        env.addr("net1").contains("inet 10.96.1."),
        "{}",
        env.addr("net1")
    );
    assert!(
        env.addr("net2").contains("inet 10.96.2."),
        "{}",
        env.addr("net2")
    );
    assert_eq!(env.leases().len(), 3, "{:?}", env.leases());

    for r in reqs {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{r:?}"
        );
    }
    // PATCH pods/<name>/status: a merge patch whose body is only the network-status annotation.
    let patch = &reqs[reqs.len() - 2];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let body = patch.json();
    let status = body["metadata"]["annotations"][STATUS_ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        body,
        json!({"metadata": {"annotations": {STATUS_ANNOTATION: status}}}),
        "the patch carries more than the network-status annotation"
    );
    let parsed = plexus_crds::parse_network_status(status).unwrap();
    assert_eq!(
        parsed
            .iter()
            .map(|s| (s.name.as_str(), s.interface.as_deref().unwrap(), s.default))
            .collect::<Vec<_>>(),
        vec![
            ("cbr0", "eth0", true),
            ("fixtures/macvlan-a", "net1", false),
            ("fixtures/macvlan-b", "net2", false)
        ],
        "{status}"
    );
    assert_eq!(plexus_crds::write_network_status(&parsed).unwrap(), status);

    // POST events: one Normal AddedInterface Event listing every interface.
    let ev = reqs[reqs.len() - 1].json();
    assert_eq!(ev["reason"], "AddedInterface", "{ev}");
    assert_eq!(ev["type"], "Normal", "{ev}");
    assert_eq!(ev["involvedObject"]["name"], POD, "{ev}");
    assert_eq!(ev["involvedObject"]["namespace"], NS, "{ev}");
    let msg = ev["message"].as_str().unwrap();
    for part in [
        "eth0 [10.97.0.",
        "net1 [10.96.1.",
        "from fixtures/macvlan-a",
        "net2 [10.96.2.",
        "from fixtures/macvlan-b",
    ] {
        assert!(msg.contains(part), "{part} not in {msg}");
    }
    // The token is never logged.
    assert!(!env.log().contains(TOKEN), "token in the log");
}

#[test]
fn add_with_runtime_annotations_is_n_plus_2_requests_and_del_is_none() {
    let test = "add_with_runtime_annotations_is_n_plus_2_requests_and_del_is_none";
    // The API server's copy of the annotation differs: it must not be read (no pod GET).
    let Some(env) = Env::new(test, "not-used-by-this-add") else {
        return;
    };
    let cid = "1a07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd20ed";
    let config = env.config(Some("macvlan-a,fixtures/macvlan-b"));
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    let reqs = env.requests();
    assert_eq!(
        shape(&reqs),
        expected(false),
        "{}\nlog:\n{}",
        text(&out),
        env.log()
    );
    check_add(&env, &out, &reqs);
    for r in &reqs[..2] {
        assert!(r.body.is_empty(), "{r:?}");
    }

    // DEL: from the journal only, zero requests, nothing left.
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    assert!(out.stdout.is_empty());
    assert_eq!(
        shape(&env.requests()[reqs.len()..]),
        vec![],
        "DEL made requests"
    );
    env.assert_clean(cid);
    // containerd's second DEL (no netns): still no request.
    let out = env.plexus("DEL", cid, None, &config);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.requests().len(), reqs.len(), "second DEL made requests");
}

#[test]
fn add_without_runtime_annotations_gets_the_pod_then_del_with_the_api_server_down() {
    let test = "add_without_runtime_annotations_gets_the_pod_then_del_with_the_api_server_down";
    let Some(mut env) = Env::new(test, "macvlan-a,fixtures/macvlan-b") else {
        return;
    };
    let cid = "2b07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd20ed";
    let config = env.config(None);
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    let reqs = env.requests();
    // N+3: the pod first (its UID matches K8S_POD_UID, or the ADD would fail), then the same.
    assert_eq!(
        shape(&reqs),
        expected(true),
        "{}\nlog:\n{}",
        text(&out),
        env.log()
    );
    check_add(&env, &out, &reqs);

    // The API server goes away (and with it the pod and the NADs): DEL still succeeds.
    let server = env.server.take().unwrap();
    let addr = server.addr;
    drop(server);
    // Wait until the aborted listener task has closed the socket.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while env
        .node
        .netns()
        .run_in(|| std::net::TcpStream::connect(addr).is_ok())
        .unwrap()
    {
        assert!(std::time::Instant::now() < deadline, "server still up");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = env.plexus("DEL", cid, Some(env.pod.path()), &config);
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), env.log());
    env.assert_clean(cid);
}

#[test]
fn add_naming_a_missing_nad_fails_clearly_and_attaches_nothing() {
    let test = "add_naming_a_missing_nad_fails_clearly_and_attaches_nothing";
    let Some(env) = Env::new(test, "unused") else {
        return;
    };
    let cid = "3c07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd20ed";
    let config = env.config(Some("macvlan-a,missing-nad"));
    let out = env.plexus("ADD", cid, Some(env.pod.path()), &config);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reqs = env.requests();
    eprintln!(
        "error reply: {err}\nrequests: {:?}\nlog:\n{}",
        shape(&reqs),
        env.log()
    );
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("fixtures/missing-nad"), "{err}");
    assert!(msg.contains("not found"), "{err}");
    env.assert_clean(cid);
    // Each NAD fetched once, no network-status; the planning failure is the user's to fix, so
    // the pod gets one Warning Event saying why.
    assert_eq!(
        shape(&reqs),
        vec![
            ("GET".to_owned(), nad_path("macvlan-a")),
            ("GET".to_owned(), nad_path("missing-nad")),
            ("POST".to_owned(), events_path()),
        ]
    );
    let event: Value = serde_json::from_slice(&reqs[2].body).unwrap();
    assert_eq!(event["type"], "Warning", "{event}");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains("fixtures/missing-nad"),
        "{event}"
    );
}

#[test]
fn add_for_a_recreated_pod_fails_on_the_uid_check() {
    let test = "add_for_a_recreated_pod_fails_on_the_uid_check";
    let Some(env) = Env::new(test, "macvlan-a,fixtures/macvlan-b") else {
        return;
    };
    let cid = "4d07cd189fb4cb49ff1707f49c14595bd69ea06b8070be92186b281cbfd20ed";
    let old_uid = "0a0a0a0a-0000-4000-8000-000000000000";
    let out = env.plexus_uid("ADD", cid, Some(env.pod.path()), &env.config(None), old_uid);
    assert!(!out.status.success(), "{}", text(&out));
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains("fixtures/multi-pod") && msg.contains(POD_UID) && msg.contains(old_uid),
        "{err}"
    );
    assert_eq!(shape(&env.requests()), vec![("GET".to_owned(), pod_path())]);
    env.assert_clean(cid);
}
