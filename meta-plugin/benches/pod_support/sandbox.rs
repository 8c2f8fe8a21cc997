//! One pod sandbox as the runtime sees it: a fresh network namespace, a pod name, a container
//! id, and the `CNI_ARGS` containerd sends (the shape of
//! `../shared/testdata/runtime/containerd-cri-runp.log`).

use anyhow::Result;

use super::exec::CniEnv;
use super::topology::NamedNetns;

pub struct Sandbox {
    pub netns: NamedNetns,
    pub pod_name: String,
    pub container_id: String,
    pub pod_uid: String,
}

impl Sandbox {
    /// A new sandbox; `tag` tells the sides apart, `seq` is unique within the run.
    pub fn create(tag: char, seq: usize) -> Result<Sandbox> {
        let pid = std::process::id();
        let netns = NamedNetns::add(format!("plx-podbench-{tag}{seq}-{pid}"))?;
        Ok(Sandbox {
            netns,
            pod_name: format!("bench-{tag}-{seq}"),
            // 64 hex digits, like the sandbox ids containerd passes.
            container_id: format!("{pid:016x}{:016x}{seq:032x}", u32::from(tag)),
            pod_uid: format!("0f3a6c1e-1111-4222-8333-{seq:012x}"),
        })
    }

    /// The environment for one plugin call on interface `ifname`.
    pub fn env(&self, ifname: &str, cni_path: &str) -> CniEnv {
        CniEnv {
            container_id: self.container_id.clone(),
            netns: self.netns.path().display().to_string(),
            ifname: ifname.to_owned(),
            cni_path: cni_path.to_owned(),
            cni_args: format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                self.pod_name, self.container_id, self.pod_uid
            ),
        }
    }
}
