//! The Events Plexus posts about a pod: one `AddedInterface` Event listing every interface of an
//! ADD (Multus posts one per interface, `Add eth0 [10.244.1.7/24] from cbr0`; Plexus keeps that
//! wording and joins the interfaces with `, `), and one Warning when an ADD fails.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::PodRef;

/// Reason of the Normal Event listing the attached interfaces (Multus's).
pub const REASON_ADDED_INTERFACE: &str = "AddedInterface";
/// Reason of the Warning Event of a failed ADD.
pub const REASON_ADD_FAILED: &str = "FailedAddInterface";
/// `source.component` / `reportingComponent` of Plexus's Events.
pub const EVENT_COMPONENT: &str = "plexus";
/// Longest message posted; longer ones are cut (the API server's limit for Event notes is 1 KiB).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One attached interface, for the `AddedInterface` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedInterface {
    /// Interface name in the pod (`eth0`, `net1`).
    pub ifname: String,
    /// Addresses with prefix length, as in the CNI result (`10.1.2.3/24`).
    pub ips: Vec<String>,
    /// Network name: `<ns>/<nad>`, or the CNI name of a file-based network.
    pub network: String,
}

/// An Event about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub pod: PodRef,
    pub event_type: EventType,
    pub reason: String,
    pub message: String,
}

impl PodEvent {
    /// The single Normal `AddedInterface` Event of an ADD:
    /// `Add eth0 [10.1.2.3/24] from default/cbr0, net1 [10.10.1.30/16 fd00::5/64] from ns/macvlan-conf`.
    pub fn added_interfaces(pod: PodRef, interfaces: &[AddedInterface]) -> Self {
        let parts: Vec<String> = interfaces
            .iter()
            .map(|i| format!("{} [{}] from {}", i.ifname, i.ips.join(" "), i.network))
            .collect();
        PodEvent {
            pod,
            event_type: EventType::Normal,
            reason: REASON_ADDED_INTERFACE.to_owned(),
            message: truncate(format!("Add {}", parts.join(", "))),
        }
    }

    /// The Warning Event of a failed ADD, naming the network, the delegate and the cause.
    pub fn add_failed(
        pod: PodRef,
        network: &str,
        ifname: Option<&str>,
        delegate: &str,
        cause: &str,
    ) -> Self {
        let iface = ifname.map(|i| format!(" {i}")).unwrap_or_default();
        PodEvent {
            pod,
            event_type: EventType::Warning,
            reason: REASON_ADD_FAILED.to_owned(),
            message: truncate(format!(
                "Failed to add{iface} from {network} (delegate {delegate}): {cause}"
            )),
        }
    }

    /// The core/v1 Event object posted for this event (as client-go's recorder builds it: name
    /// `<pod>.<hex nanoseconds>`, count 1, first = last timestamp).
    pub fn to_event(&self, host: Option<&str>, now: Timestamp) -> Event {
        let nanos = now.as_nanosecond();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", self.pod.name, nanos)),
                namespace: Some(self.pod.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(self.pod.name.clone()),
                namespace: Some(self.pod.namespace.clone()),
                uid: self.pod.uid.clone().filter(|u| !u.is_empty()),
                ..Default::default()
            },
            reason: Some(self.reason.clone()),
            message: Some(self.message.clone()),
            type_: Some(self.event_type.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(EVENT_COMPONENT.to_owned()),
                host: host.map(str::to_owned),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(EVENT_COMPONENT.to_owned()),
            reporting_instance: host.map(str::to_owned),
            ..Default::default()
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodRef {
        PodRef {
            namespace: "fixtures".into(),
            name: "multi-pod".into(),
            uid: Some("449436d5-70fb-40f1-9004-df6094d98123".into()),
        }
    }

    #[test]
    fn added_interface_message_lists_every_interface() {
        let e = PodEvent::added_interfaces(
            pod(),
            &[
                AddedInterface {
                    ifname: "eth0".into(),
                    ips: vec!["10.1.2.3/24".into()],
                    network: "default/cbr0".into(),
                },
                AddedInterface {
                    ifname: "net1".into(),
                    ips: vec!["10.10.1.30/16".into(), "fd00::5/64".into()],
                    network: "ns/macvlan-conf".into(),
                },
                AddedInterface {
                    ifname: "net2".into(),
                    ips: vec![],
                    network: "ns/l2".into(),
                },
            ],
        );
        assert_eq!(e.event_type, EventType::Normal);
        assert_eq!(e.reason, "AddedInterface");
        assert_eq!(
            e.message,
            "Add eth0 [10.1.2.3/24] from default/cbr0, net1 [10.10.1.30/16 fd00::5/64] from ns/macvlan-conf, net2 [] from ns/l2"
        );
    }

    #[test]
    fn failure_names_network_delegate_and_cause() {
        let e = PodEvent::add_failed(
            pod(),
            "fixtures/macvlan-conf",
            Some("net1"),
            "macvlan",
            "master eth9 not found",
        );
        assert_eq!(e.event_type, EventType::Warning);
        assert_eq!(
            e.message,
            "Failed to add net1 from fixtures/macvlan-conf (delegate macvlan): master eth9 not found"
        );
    }

    #[test]
    fn event_object_like_client_go() {
        let now: Timestamp = "2026-11-24T01:02:26Z".parse().unwrap();
        let ev = PodEvent::added_interfaces(pod(), &[]).to_event(Some("node-a"), now);
        assert_eq!(
            ev.metadata.name.as_deref(),
            Some(format!("multi-pod.{:x}", now.as_nanosecond()).as_str())
        );
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(
            ev.involved_object.uid.as_deref(),
            Some("449436d5-70fb-40f1-9004-df6094d98123")
        );
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(ev.source.unwrap().host.as_deref(), Some("node-a"));
        assert_eq!(ev.count, Some(1));
    }

    #[test]
    fn long_messages_are_cut() {
        let e = PodEvent::add_failed(pod(), "n", None, "d", &"é".repeat(2000));
        assert!(e.message.len() <= MAX_MESSAGE_BYTES);
        assert!(e.message.ends_with("..."));
        assert!(e.message.starts_with("Failed to add from n (delegate d): "));
    }
}
