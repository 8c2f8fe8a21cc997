//! The kubelet `DevicePlugin` gRPC service of one pool (`/v1beta1.DevicePlugin/*`).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use plexus_delegates::sriov::selectors::ResourceConfig;
use plexus_delegates::sriov::sysfs::Sysfs;
use plexus_kubelet_api::deviceplugin::device_plugin_server::DevicePlugin;
use plexus_kubelet_api::deviceplugin::{
    AllocateRequest, AllocateResponse, ContainerAllocateRequest,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, Empty, HEALTHY,
    ListAndWatchResponse, PreStartContainerRequest, PreStartContainerResponse,
    PreferredAllocationRequest, PreferredAllocationResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::allocate::{AllocDevice, AllocateError, container_response, read_device};
use crate::devinfo;
use crate::inventory::{Inventory, Shared};
use crate::metrics::Metrics;
use crate::policy::{Placement, preferred};

/// What kubelet is told in Register and GetDevicePluginOptions: nothing needs doing before a
/// container starts (the device-info file is written by Allocate), and preferred allocations
/// are offered.
pub const OPTIONS: DevicePluginOptions = DevicePluginOptions {
    pre_start_required: false,
    get_preferred_allocation_available: true,
};

/// A pool's identity as kubelet and the pods see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub prefix: String,
    pub name: String,
    /// `<prefix>/<name>`
    pub full_name: String,
    pub exclude_topology: bool,
}

impl From<&ResourceConfig> for Resource {
    fn from(r: &ResourceConfig) -> Self {
        Resource {
            prefix: r.prefix.clone(),
            name: r.name.clone(),
            full_name: r.full_name(),
            exclude_topology: r.exclude_topology,
        }
    }
}

/// One pool's service. `stop` ends every ListAndWatch stream (the endpoint sets it when it
/// re-creates its socket or shuts down), so the server can finish.
#[derive(Debug, Clone)]
pub struct PoolService {
    pub resource: Arc<Resource>,
    pub inventory: watch::Receiver<Shared>,
    pub sysfs: Sysfs,
    pub devinfo_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    pub stop: watch::Receiver<bool>,
}

impl PoolService {
    /// The pool as ListAndWatch reports it.
    pub fn api_devices(&self, inventory: &Inventory) -> Vec<Device> {
        inventory
            .pool(&self.resource.full_name)
            .iter()
            .map(|d| d.to_api(!self.resource.exclude_topology))
            .collect()
    }

    fn snapshot(&self) -> Shared {
        self.inventory.borrow().clone()
    }

    fn not_in_pool(&self, id: &str) -> Status {
        Status::invalid_argument(
            AllocateError::NotInPool {
                resource: self.resource.full_name.clone(),
                id: id.to_string(),
            }
            .to_string(),
        )
    }

    /// The devices of one container request, read again from sysfs (blocking).
    fn read_devices(
        &self,
        inventory: &Inventory,
        ids: &[String],
    ) -> Result<Vec<AllocDevice>, Status> {
        let mut devices = Vec::with_capacity(ids.len());
        for id in ids {
            let d = inventory
                .device(&self.resource.full_name, id)
                .ok_or_else(|| self.not_in_pool(id))?;
            if let Some(why) = &d.unhealthy {
                tracing::warn!(resource = %self.resource.full_name, device = %id, reason = %why,
                    "allocating a device that is unhealthy");
            }
            devices.push(
                read_device(&self.sysfs, d)
                    .map_err(|e| Status::failed_precondition(e.to_string()))?,
            );
        }
        Ok(devices)
    }

    /// Every container's answer first, then the device-info files; when a file cannot be written
    /// the ones written by this call are removed again (blocking).
    fn allocate_blocking(
        &self,
        inventory: &Inventory,
        requests: &[ContainerAllocateRequest],
    ) -> Result<(AllocateResponse, u64), Status> {
        let mut out = AllocateResponse::default();
        let mut all = Vec::new();
        for c in requests {
            let devices = self.read_devices(inventory, &c.devices_ids)?;
            let r = container_response(&self.resource.prefix, &self.resource.name, &devices)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            out.container_responses.push(r);
            all.extend(devices.into_iter().map(|d| d.pci));
        }
        let mut written = Vec::new();
        for pci in &all {
            match devinfo::write(&self.devinfo_dir, &self.resource.full_name, pci) {
                Ok(p) => written.push(p),
                Err(e) => {
                    for p in written {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(Status::internal(e.to_string()));
                }
            }
        }
        Ok((out, all.len() as u64))
    }
}

type DeviceStream = Pin<Box<dyn Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for PoolService {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(OPTIONS))
    }

    type ListAndWatchStream = DeviceStream;

    /// The pool now, then again whenever it changes (devices added or removed, health, NUMA),
    /// until kubelet hangs up or the endpoint stops.
    async fn list_and_watch(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        let mut inventory = self.inventory.clone();
        let mut stop = self.stop.clone();
        let resource = self.resource.full_name.clone();
        tracing::info!(%resource, "ListAndWatch started");
        tokio::spawn(async move {
            let mut last: Option<Vec<Device>> = None;
            loop {
                let devices = {
                    let inv = inventory.borrow_and_update();
                    this.api_devices(&inv)
                };
                if last.as_ref() != Some(&devices) {
                    let healthy = devices.iter().filter(|d| d.health == HEALTHY).count();
                    tracing::info!(%resource, devices = devices.len(), healthy,
                        "ListAndWatch: sending devices");
                    let msg = ListAndWatchResponse {
                        devices: devices.clone(),
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        break;
                    }
                    last = Some(devices);
                }
                tokio::select! {
                    r = inventory.changed() => if r.is_err() { break },
                    _ = crate::stopped(&mut stop) => break,
                    _ = tx.closed() => break,
                }
            }
            tracing::info!(%resource, "ListAndWatch ended");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let inventory = self.snapshot();
        let resource = &self.resource.full_name;
        let placement = |id: &str| {
            inventory
                .device(resource, id)
                .map(|d| Placement {
                    pf: Some(d.pf_pci),
                    numa_node: d.numa_node,
                })
                .unwrap_or_default()
        };
        let mut out = PreferredAllocationResponse::default();
        for c in request.into_inner().container_requests {
            let size = usize::try_from(c.allocation_size).map_err(|_| {
                Status::invalid_argument(format!(
                    "allocation_size {} is negative",
                    c.allocation_size
                ))
            })?;
            let ids = preferred(
                &c.available_device_ids,
                &c.must_include_device_ids,
                size,
                placement,
            );
            tracing::debug!(%resource, ?ids, "preferred allocation");
            out.container_responses
                .push(ContainerPreferredAllocationResponse { device_ids: ids });
        }
        Ok(Response::new(out))
    }

    async fn allocate(
        &self,
        request: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let requests = request.into_inner().container_requests;
        let this = self.clone();
        let inventory = self.snapshot();
        let result = tokio::task::spawn_blocking(move || {
            this.allocate_blocking(&inventory, &requests)
                .map(|r| (r, requests))
        })
        .await
        .map_err(|e| Status::internal(format!("allocation task failed: {e}")))?;
        let ((out, count), requests) = result.inspect_err(|e| {
            tracing::warn!(resource = %self.resource.full_name, error = %e.message(),
                "allocate refused");
        })?;
        tracing::info!(resource = %self.resource.full_name,
            devices = ?requests.iter().map(|c| c.devices_ids.join(",")).collect::<Vec<_>>(),
            "allocated");
        self.metrics.add_allocated(&self.resource.full_name, count);
        Ok(Response::new(out))
    }

    async fn pre_start_container(
        &self,
        request: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        // Not required (OPTIONS), but answer correctly if called: the devices must be ours.
        let inventory = self.snapshot();
        for id in &request.into_inner().devices_ids {
            if inventory.device(&self.resource.full_name, id).is_none() {
                return Err(self.not_in_pool(id));
            }
        }
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
