//! An in-memory [`PodResourcesApi`] for planning tests: fixed answers, recorded calls.

use std::sync::{Mutex, PoisonError};

use plexus_kubelet_api::podresources::{ContainerDevices, ContainerResources};

use super::{GetAnswer, PodResources, PodResourcesApi, PodResourcesError};
use crate::kube::PodRef;

/// Answers `Get` with `get` and `List` with `list`; records `"Get"`/`"List"` per call.
#[derive(Debug)]
pub struct FakePodResources {
    pub get: Result<GetAnswer, PodResourcesError>,
    pub list: Vec<PodResources>,
    calls: Mutex<Vec<&'static str>>,
}

impl FakePodResources {
    /// A kubelet whose `Get` answers `pod`.
    pub fn get_answers(pod: PodResources) -> Self {
        Self::new(Ok(GetAnswer::Pod(pod)), Vec::new())
    }

    /// A kubelet without `Get` that lists `pods`.
    pub fn list_only(pods: Vec<PodResources>) -> Self {
        Self::new(Ok(GetAnswer::Unsupported), pods)
    }

    pub fn new(get: Result<GetAnswer, PodResourcesError>, list: Vec<PodResources>) -> Self {
        FakePodResources {
            get,
            list,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls served so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, call: &'static str) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }
}

impl PodResourcesApi for FakePodResources {
    async fn get(&self, _pod: &PodRef) -> Result<GetAnswer, PodResourcesError> {
        self.record("Get");
        self.get.clone()
    }

    async fn list(&self) -> Result<Vec<PodResources>, PodResourcesError> {
        self.record("List");
        Ok(self.list.clone())
    }
}

/// A pod with one container per `(container, resource, device IDs)` entry.
pub fn pod_resources(
    namespace: &str,
    name: &str,
    devices: &[(&str, &str, &[&str])],
) -> PodResources {
    PodResources {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        containers: devices
            .iter()
            .map(|(container, resource, ids)| ContainerResources {
                name: (*container).to_owned(),
                devices: vec![ContainerDevices {
                    resource_name: (*resource).to_owned(),
                    device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                    topology: None,
                }],
                ..Default::default()
            })
            .collect(),
    }
}
