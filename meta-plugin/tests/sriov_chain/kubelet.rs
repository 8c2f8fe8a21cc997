//! kubelet's PodResources API for one pod, served on a real unix socket: which devices of which
//! resource the device plugin allocated to the pod's container.

use std::path::{Path, PathBuf};

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
    pod: PodResources,
}

impl FakeKubelet {
    /// kubelet after the device plugin allocated `devices` of `resource` to the `app`
    /// container of `namespace/name`.
    pub fn new(namespace: &str, name: &str, resource: &str, devices: &[&str]) -> Self {
        let pod = PodResources {
            name: name.into(),
            namespace: namespace.into(),
            containers: vec![ContainerResources {
                name: "app".into(),
                devices: vec![ContainerDevices {
                    resource_name: resource.into(),
                    device_ids: devices.iter().map(|d| (*d).to_owned()).collect(),
                    topology: Some(TopologyInfo {
                        nodes: vec![NumaNode { id: 0 }],
                    }),
                }],
                ..Default::default()
            }],
        };
        FakeKubelet { pod }
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
}

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: vec![self.pod.clone()],
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
        let r = req.into_inner();
        if r.pod_name == self.pod.name && r.pod_namespace == self.pod.namespace {
            Ok(Response::new(GetPodResourcesResponse {
                pod_resources: Some(self.pod.clone()),
            }))
        } else {
            // kubelet's own wording and status code
            Err(Status::unknown(format!(
                "pod {} in namespace {} not found",
                r.pod_name, r.pod_namespace
            )))
        }
    }
}
