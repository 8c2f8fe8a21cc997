//! An in-process fake kube-apiserver for tests: HTTPS on 127.0.0.1 (random port) with a CA and a
//! server certificate generated per run, bearer-token authentication, canned answers from
//! `tests/data/` (real kube-apiserver bodies), and a record of every request.
//!
//! The client under test is the real one, built from a kubeconfig that [`FakeApiServer::kubeconfig`]
//! writes (server URL, `certificate-authority-data`, `token`), exactly as on a cluster.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    /// Whether the client presented a certificate the CA signed (x509 client authentication).
    pub client_cert: bool,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What a route answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A status code and a body file from `tests/data/`.
    File(u16, &'static str),
    /// 201 with the request body echoed back (what the API server does for a create).
    Echo201,
    /// A status code and a body built by the test (e.g. a real body with a field rewritten).
    Body(u16, Vec<u8>),
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    path: String,
    answer: Answer,
}

#[derive(Debug, Default)]
struct State {
    token: String,
    routes: Vec<Route>,
    recorded: Vec<Recorded>,
}

/// The running server; stops when dropped.
pub struct FakeApiServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn data(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A CA and a server certificate for 127.0.0.1/localhost signed by it.
fn certificates() -> (
    CertifiedIssuer<'static, KeyPair>,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "plexus-test-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");

    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let cert = params.signed_by(&server_key, &ca).expect("server cert");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    (ca, cert.der().clone(), key)
}

impl FakeApiServer {
    /// Starts the server; requests must carry `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> Self {
        let (ca, cert, key) = certificates();
        let ca_pem = ca.pem();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Client certificates are optional (token users present none), verified against the CA
        // when presented, as kube-apiserver's --client-ca-file does.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("CA root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .expect("server TLS config");
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            ..State::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    let service = service_fn(move |req| handle(st.clone(), client_cert, req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeApiServer {
            addr,
            ca_pem,
            ca,
            state,
            task,
        }
    }

    /// Answers `method path` with `answer`.
    pub fn route(&self, method: &str, path: &str, answer: Answer) {
        self.state.lock().unwrap().routes.push(Route {
            method: method.to_owned(),
            path: path.to_owned(),
            answer,
        });
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().recorded.clone()
    }

    /// A client certificate and key (PEM) for user `cn`, signed by the server's CA.
    pub fn client_cert(&self, cn: &str) -> (String, String) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca).expect("client cert");
        (cert.pem(), key.serialize_pem())
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (CA data + bearer token) into `dir`.
    pub fn kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        write_kubeconfig(dir, &self.url(), &self.ca_pem, token)
    }
}

/// A kubeconfig with one cluster (server + `certificate-authority-data`), one token user and a
/// current context, as `kubectl config view --raw` shows them.
pub fn write_kubeconfig(dir: &Path, server: &str, ca_pem: &str, token: &str) -> PathBuf {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: plexus
  user:
    token: {token}
contexts:
- name: fake
  context:
    cluster: fake
    user: plexus
current-context: fake
"
    );
    let path = dir.join("plexus.kubeconfig");
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// A kubeconfig whose user authenticates with a client certificate (`client-certificate-data`,
/// `client-key-data`) instead of a token.
pub fn write_cert_kubeconfig(
    dir: &Path,
    server: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> PathBuf {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: node
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: fake
  context:
    cluster: fake
    user: node
current-context: fake
",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    );
    let path = dir.join("cert.kubeconfig");
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

async fn handle(
    state: Arc<Mutex<State>>,
    client_cert: bool,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let rec = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        content_type: header("content-type"),
        authorization: header("authorization"),
        client_cert,
        body,
    };
    let (token, answer) = {
        let mut st = state.lock().unwrap();
        st.recorded.push(rec.clone());
        let answer = st
            .routes
            .iter()
            .find(|r| r.method == rec.method && r.path == rec.path)
            .map(|r| r.answer.clone());
        (st.token.clone(), answer)
    };
    let respond = |status: u16, body: Vec<u8>| {
        Response::builder()
            .status(StatusCode::from_u16(status).expect("status"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    let token_ok = rec.authorization.as_deref() == Some(format!("Bearer {token}").as_str());
    if !token_ok && !rec.client_cert {
        return Ok(respond(401, data("pod-get-401.json")));
    }
    Ok(match answer {
        Some(Answer::File(status, file)) => respond(status, data(file)),
        Some(Answer::Echo201) => respond(201, rec.body.clone()),
        Some(Answer::Body(status, body)) => respond(status, body),
        None => respond(
            404,
            br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#.to_vec(),
        ),
    })
}
