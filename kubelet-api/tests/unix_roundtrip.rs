//! Both APIs work end to end over a real unix socket: a PodResources server answers List and
//! Get, and the client sees exactly what it served.

use plexus_kubelet_api::podresources::pod_resources_lister_client::PodResourcesListerClient;
use plexus_kubelet_api::podresources::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use plexus_kubelet_api::podresources::*;
use plexus_kubelet_api::unix;
use tonic::{Request, Response, Status};

struct OnePod;

fn pod() -> PodResources {
    PodResources {
        name: "web".into(),
        namespace: "default".into(),
        containers: vec![ContainerResources {
            name: "app".into(),
            devices: vec![ContainerDevices {
                resource_name: "intel.com/sriov".into(),
                device_ids: vec!["0000:03:02.1".into()],
                topology: Some(TopologyInfo {
                    nodes: vec![NumaNode { id: 1 }],
                }),
            }],
            ..Default::default()
        }],
    }
}

#[tonic::async_trait]
impl PodResourcesLister for OnePod {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: vec![pod()],
        }))
    }
    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not served by this test"))
    }
    async fn get(
        &self,
        req: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        let r = req.into_inner();
        if r.pod_name != "web" || r.pod_namespace != "default" {
            return Err(Status::not_found(format!(
                "pod {}/{}",
                r.pod_namespace, r.pod_name
            )));
        }
        Ok(Response::new(GetPodResourcesResponse {
            pod_resources: Some(pod()),
        }))
    }
}

#[tokio::test]
async fn list_and_get_round_trip_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("kubelet.sock");
    let listener = unix::listen(&sock).unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(OnePod))
            .serve_with_incoming(unix::incoming(listener)),
    );
    let mut client = PodResourcesListerClient::new(unix::connect(&sock).await.unwrap());
    let list = client
        .list(ListPodResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.pod_resources, vec![pod()]);
    let got = client
        .get(GetPodResourcesRequest {
            pod_name: "web".into(),
            pod_namespace: "default".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.pod_resources, Some(pod()));
    let missing = client
        .get(GetPodResourcesRequest {
            pod_name: "gone".into(),
            pod_namespace: "default".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    server.abort();
}

#[tokio::test]
async fn connecting_to_a_missing_socket_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("absent.sock");
    let err = unix::connect(&sock).await.unwrap_err();
    assert!(err.to_string().contains("absent.sock"), "{err}");
}

#[test]
fn listen_replaces_a_stale_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("p.sock");
    std::fs::write(&sock, b"stale").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    unix::listen(&sock).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_socket()
    );
}
