//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Per pool (label `resource="<prefix>/<name>"`): devices listed to kubelet, healthy devices,
//! devices handed out by Allocate and registrations with kubelet since start. Daemon-wide: devices
//! the last sysfs pass could not read, how long the last full scan took, polls and full scans.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::inventory::Shared;

/// The daemon's counters; gauges are computed from the current inventory when scraped.
#[derive(Debug)]
pub struct Metrics {
    inventory: watch::Receiver<Shared>,
    allocated: BTreeMap<String, AtomicU64>,
    registrations: BTreeMap<String, AtomicU64>,
    scan_micros: AtomicU64,
    polls: AtomicU64,
    full_scans: AtomicU64,
}

impl Metrics {
    /// Counters for `resources` (full names), gauges from `inventory`.
    pub fn new(resources: &[String], inventory: watch::Receiver<Shared>) -> Self {
        let zeroes = || {
            resources
                .iter()
                .map(|r| (r.clone(), AtomicU64::new(0)))
                .collect()
        };
        Metrics {
            inventory,
            allocated: zeroes(),
            registrations: zeroes(),
            scan_micros: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            full_scans: AtomicU64::new(0),
        }
    }

    /// `n` devices of `resource` were handed out by Allocate.
    pub fn add_allocated(&self, resource: &str, n: u64) {
        if let Some(c) = self.allocated.get(resource) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// `resource` registered with kubelet.
    pub fn add_registration(&self, resource: &str) {
        if let Some(c) = self.registrations.get(resource) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Devices of `resource` handed out so far.
    pub fn allocated(&self, resource: &str) -> u64 {
        self.allocated
            .get(resource)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// One poll finished; `full_scan` is how long its full scan took, if it made one.
    pub fn poll(&self, full_scan: Option<Duration>) {
        if let Some(d) = full_scan {
            let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            self.scan_micros.store(micros, Ordering::Relaxed);
            self.full_scans.fetch_add(1, Ordering::Relaxed);
        }
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    /// Polls finished so far (the startup scan not counted).
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Full scans made by polls so far.
    pub fn full_scans(&self) -> u64 {
        self.full_scans.load(Ordering::Relaxed)
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let inv = self.inventory.borrow().clone();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, values: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (resource, v) in values {
                let _ = writeln!(out, "{name}{{resource=\"{}\"}} {v}", escape(&resource));
            }
        };
        let per_pool = |f: &dyn Fn(&str) -> u64| -> Vec<(String, u64)> {
            self.allocated.keys().map(|r| (r.clone(), f(r))).collect()
        };
        family(
            "plexus_sriov_devices",
            "gauge",
            "SR-IOV VFs listed to kubelet, per resource pool.",
            per_pool(&|r| inv.pool(r).len() as u64),
        );
        family(
            "plexus_sriov_healthy_devices",
            "gauge",
            "SR-IOV VFs listed to kubelet as Healthy, per resource pool.",
            per_pool(&|r| inv.pool(r).iter().filter(|d| d.is_healthy()).count() as u64),
        );
        family(
            "plexus_sriov_allocated_devices_total",
            "counter",
            "Devices handed out by Allocate since the daemon started, per resource pool.",
            per_pool(&|r| self.allocated(r)),
        );
        family(
            "plexus_sriov_registrations_total",
            "counter",
            "Successful registrations with kubelet since the daemon started, per resource pool.",
            per_pool(&|r| {
                self.registrations
                    .get(r)
                    .map_or(0, |c| c.load(Ordering::Relaxed))
            }),
        );
        let _ = writeln!(
            out,
            "# HELP plexus_sriov_broken_devices SR-IOV devices the last sysfs pass could not read.\n\
             # TYPE plexus_sriov_broken_devices gauge\n\
             plexus_sriov_broken_devices {}",
            inv.broken.len()
        );
        let secs = self.scan_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP plexus_sriov_scan_duration_seconds Duration of the last full sysfs scan.\n\
             # TYPE plexus_sriov_scan_duration_seconds gauge\n\
             plexus_sriov_scan_duration_seconds {secs}"
        );
        let _ = writeln!(
            out,
            "# HELP plexus_sriov_polls_total sysfs polls since the daemon started.\n\
             # TYPE plexus_sriov_polls_total counter\n\
             plexus_sriov_polls_total {}\n\
             # HELP plexus_sriov_full_scans_total Polls that re-read every device (a change was seen, or the full-scan interval passed).\n\
             # TYPE plexus_sriov_full_scans_total counter\n\
             plexus_sriov_full_scans_total {}",
            self.polls(),
            self.full_scans()
        );
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Bind the metrics listener (a startup error if the address is taken).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve `GET /metrics` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = crate::stopped(&mut shutdown) => return,
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = Arc::clone(&metrics);
                async move { Ok::<_, Infallible>(respond(&metrics, &req)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics: connection ended with an error");
            }
        });
    }
}

fn respond<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET is served\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Inventory, PoolDevice, Unhealthy};

    fn device(pci: &str, unhealthy: Option<Unhealthy>) -> PoolDevice {
        PoolDevice {
            pci: pci.parse().unwrap(),
            pf_pci: "0000:03:00.0".parse().unwrap(),
            pf_name: Some("ens1f0".into()),
            index: 0,
            driver: Some("iavf".into()),
            numa_node: None,
            iommu_group: None,
            need_vhost_net: false,
            unhealthy,
        }
    }

    #[test]
    fn renders_per_pool_families_with_help_and_type() {
        let mut inv = Inventory::default();
        inv.pools.insert(
            "intel.com/a".into(),
            vec![
                device("0000:03:02.0", None),
                device("0000:03:02.1", Some(Unhealthy::NoDriver)),
            ],
        );
        inv.pools.insert("intel.com/b".into(), vec![]);
        let (_tx, rx) = watch::channel(Arc::new(inv));
        let m = Metrics::new(&["intel.com/a".into(), "intel.com/b".into()], rx);
        m.add_allocated("intel.com/a", 2);
        m.add_registration("intel.com/b");
        let text = m.render();
        for line in [
            "# TYPE plexus_sriov_devices gauge",
            "plexus_sriov_devices{resource=\"intel.com/a\"} 2",
            "plexus_sriov_devices{resource=\"intel.com/b\"} 0",
            "plexus_sriov_healthy_devices{resource=\"intel.com/a\"} 1",
            "# TYPE plexus_sriov_allocated_devices_total counter",
            "plexus_sriov_allocated_devices_total{resource=\"intel.com/a\"} 2",
            "plexus_sriov_registrations_total{resource=\"intel.com/b\"} 1",
            "plexus_sriov_broken_devices 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.contains("# HELP plexus_sriov_devices "));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
