//! kubelet's PodResources API for a fixed set of pods, served on a real unix socket: which
//! devices of which resource the device plugin allocated to each pod's containers. Records the
//! methods called; answers `Get` like kubelet 1.27+ or, without it, like an older kubelet.
//! Shared by podresources and sriov_chain_netdevsim.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use plexus_kubelet_api::podresources::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use plexus_kubelet_api::podresources::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerDevices,
    ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, NumaNode, PodResources, TopologyInfo,
};
use plexus_kubelet_api::unix;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct FakeKubelet {
    pods: Vec<PodResources>,
    offers_get: bool,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl FakeKubelet {
    /// kubelet knowing `pods`; `Get` only when `offers_get`.
    pub fn new(offers_get: bool, pods: Vec<PodResources>) -> Self {
        FakeKubelet {
            pods,
            offers_get,
            calls: Arc::default(),
        }
    }

    /// Serves on `<dir>/kubelet.sock` from the current tokio runtime; returns the socket path.
    pub fn serve(&self, dir: &Path) -> PathBuf {
        let sock = dir.join("kubelet.sock");
        let listener = unix::listen(&sock).expect("listen on the kubelet socket");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PodResourcesListerServer::new(self.clone()))
                .serve_with_incoming(unix::incoming(listener)),
        );
        sock
    }

    /// The methods called so far (`Get`, `List`), in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, method: &'static str) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(method);
    }
}

/// A pod whose `app` container got `ids` of `resource` (on NUMA node 0).
pub fn pod_with_devices(namespace: &str, name: &str, resource: &str, ids: &[&str]) -> PodResources {
    PodResources {
        name: name.into(),
        namespace: namespace.into(),
        containers: vec![ContainerResources {
            name: "app".into(),
            devices: vec![ContainerDevices {
                resource_name: resource.into(),
                device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                topology: Some(TopologyInfo {
                    nodes: vec![NumaNode { id: 0 }],
                }),
            }],
            ..Default::default()
        }],
    }
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        self.record("List");
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: self.pods.clone(),
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not served by the fake kubelet"))
    }

    async fn get(
        &self,
        req: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        self.record("Get");
        if !self.offers_get {
            // what a kubelet older than 1.27 answers
            return Err(Status::unimplemented("unknown method Get"));
        }
        let r = req.into_inner();
        match self
            .pods
            .iter()
            .find(|p| p.name == r.pod_name && p.namespace == r.pod_namespace)
        {
            Some(p) => Ok(Response::new(GetPodResourcesResponse {
                pod_resources: Some(p.clone()),
            })),
            // kubelet's own wording and status code
            None => Err(Status::unknown(format!(
                "pod {} in namespace {} not found",
                r.pod_name, r.pod_namespace
            ))),
        }
    }
}
