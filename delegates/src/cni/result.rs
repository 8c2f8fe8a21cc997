//! CNI results: one canonical in-memory form (the 1.1 layout) and conversion to and from every
//! wire layout, so a prevResult of any version can be read and a reply written in the config's.
//!
//! Layouts: 0.1.0/0.2.0 use `ip4`/`ip6` objects; 0.3.0-0.4.0 use `interfaces`/`ips` where each IP
//! carries `"version": "4"|"6"`; 1.0.0+ drop `version`. Field order follows the reference plugins,
//! so replies read the same side by side.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::CniError;
use super::version::CniVersion;

/// The canonical result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(
        default,
        rename = "socketPath",
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    #[serde(default, rename = "pciID", skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, rename = "advmss", skip_serializing_if = "Option::is_none")]
    pub adv_mss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            adv_mss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The legacy (0.1.0/0.2.0) per-family block.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
}

impl CniResult {
    /// The wire form in `version`'s layout, `cniVersion` first.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.as_str().into());
        if version.is_legacy_result() {
            self.write_legacy(&mut out);
        } else {
            self.write_current(&mut out, version);
        }
        out.insert("dns".into(), to_value(&self.dns));
        Value::Object(out)
    }

    fn write_current(&self, out: &mut Map<String, Value>, version: CniVersion) {
        if !self.interfaces.is_empty() {
            out.insert("interfaces".into(), to_value(&self.interfaces));
        }
        if !self.ips.is_empty() {
            let with_family = version < CniVersion::V1_0_0;
            let ips = self
                .ips
                .iter()
                .map(|ip| ip_to_value(ip, with_family))
                .collect();
            out.insert("ips".into(), Value::Array(ips));
        }
        if !self.routes.is_empty() {
            out.insert("routes".into(), to_value(&self.routes));
        }
    }

    fn write_legacy(&self, out: &mut Map<String, Value>) {
        for (key, v4) in [("ip4", true), ("ip6", false)] {
            let Some(ip) = self.ips.iter().find(|ip| ip.address.addr().is_ipv4() == v4) else {
                continue;
            };
            let routes = self
                .routes
                .iter()
                .filter(|r| r.dst.addr().is_ipv4() == v4)
                .cloned()
                .collect();
            let block = LegacyIp {
                ip: ip.address,
                gateway: ip.gateway,
                routes,
            };
            out.insert(key.into(), to_value(&block));
        }
    }

    /// Read a result (a delegate's stdout or a prevResult) in any layout.
    pub fn from_json(value: &Value) -> Result<CniResult, CniError> {
        let obj = value
            .as_object()
            .ok_or_else(|| CniError::decode(format!("result is not a JSON object: {value}")))?;
        if obj.contains_key("ip4") || obj.contains_key("ip6") {
            return Self::from_legacy(obj);
        }
        serde_json::from_value(value.clone())
            .map_err(|e| CniError::decode(format!("cannot decode CNI result: {e}")))
    }

    fn from_legacy(obj: &Map<String, Value>) -> Result<CniResult, CniError> {
        let mut result = CniResult::default();
        for key in ["ip4", "ip6"] {
            let Some(raw) = obj.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            let block: LegacyIp = serde_json::from_value(raw.clone())
                .map_err(|e| CniError::decode(format!("cannot decode result {key}: {e}")))?;
            result.ips.push(IpConfig {
                interface: None,
                address: block.ip,
                gateway: block.gateway,
            });
            result.routes.extend(block.routes);
        }
        if let Some(dns) = obj.get("dns").filter(|v| !v.is_null()) {
            result.dns = serde_json::from_value(dns.clone())
                .map_err(|e| CniError::decode(format!("cannot decode result dns: {e}")))?;
        }
        Ok(result)
    }

    /// Parse a delegate's raw stdout.
    pub fn from_bytes(bytes: &[u8]) -> Result<CniResult, CniError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decode(format!("cannot decode CNI result: {e}")))?;
        Self::from_json(&value)
    }

    /// Index of the interface with this name inside `sandbox`, if the result lists it.
    pub fn sandbox_interface(&self, name: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && !i.sandbox.is_empty())
    }
}

fn ip_to_value(ip: &IpConfig, with_family: bool) -> Value {
    let mut m = Map::new();
    if with_family {
        let family = if ip.address.addr().is_ipv4() {
            "4"
        } else {
            "6"
        };
        m.insert("version".into(), family.into());
    }
    if let Some(idx) = ip.interface {
        m.insert("interface".into(), idx.into());
    }
    m.insert("address".into(), ip.address.to_string().into());
    if let Some(gw) = ip.gateway {
        m.insert("gateway".into(), gw.to_string().into());
    }
    Value::Object(m)
}

/// Our own types always serialize; a failure would be a bug, reported as null rather than a panic.
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "net1".into(),
                mac: "86:03:d2:7c:84:0f".into(),
                sandbox: "/var/run/netns/x".into(),
                ..Default::default()
            }],
            ips: vec![
                IpConfig {
                    interface: Some(0),
                    address: "10.1.1.5/24".parse().unwrap(),
                    gateway: Some("10.1.1.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(0),
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                },
            ],
            routes: vec![
                Route::new("0.0.0.0/0".parse().unwrap(), None),
                Route::new(
                    "fd01::/64".parse().unwrap(),
                    Some("fd00::1".parse().unwrap()),
                ),
            ],
            dns: Dns {
                nameservers: vec!["1.1.1.1".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn v1_layout_matches_reference_bytes() {
        let s = serde_json::to_string(&sample().to_json(CniVersion::V1_0_0)).unwrap();
        assert_eq!(
            s,
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"net1","mac":"86:03:d2:7c:84:0f","sandbox":"/var/run/netns/x"}],"ips":[{"interface":0,"address":"10.1.1.5/24","gateway":"10.1.1.1"},{"interface":0,"address":"fd00::5/64"}],"routes":[{"dst":"0.0.0.0/0"},{"dst":"fd01::/64","gw":"fd00::1"}],"dns":{"nameservers":["1.1.1.1"]}}"#
        );
    }

    #[test]
    fn v04_layout_carries_family_first() {
        let v = sample().to_json(CniVersion::V0_4_0);
        let first = serde_json::to_string(&v["ips"][0]).unwrap();
        assert_eq!(
            first,
            r#"{"version":"4","interface":0,"address":"10.1.1.5/24","gateway":"10.1.1.1"}"#
        );
        assert_eq!(v["ips"][1]["version"], "6");
    }

    #[test]
    fn legacy_layout_groups_by_family() {
        let v = sample().to_json(CniVersion::V0_2_0);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.1.1.5/24","gateway":"10.1.1.1","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd00::5/64","routes":[{"dst":"fd01::/64","gw":"fd00::1"}]},"dns":{"nameservers":["1.1.1.1"]}}"#
        );
    }

    #[test]
    fn every_layout_round_trips_through_canonical() {
        let original = sample();
        for v in [
            CniVersion::V0_3_0,
            CniVersion::V0_3_1,
            CniVersion::V0_4_0,
            CniVersion::V1_0_0,
            CniVersion::V1_1_0,
        ] {
            let back = CniResult::from_json(&original.to_json(v)).unwrap();
            assert_eq!(back, original, "layout {v}");
        }
        // the legacy layout has no interfaces or indexes; addresses, routes and dns survive
        let legacy = CniResult::from_json(&original.to_json(CniVersion::V0_2_0)).unwrap();
        assert_eq!(legacy.ips.len(), 2);
        assert_eq!(legacy.routes, original.routes);
        assert_eq!(legacy.dns, original.dns);
    }

    #[test]
    fn empty_result_still_has_dns() {
        let s = serde_json::to_string(&CniResult::default().to_json(CniVersion::V1_1_0)).unwrap();
        assert_eq!(s, r#"{"cniVersion":"1.1.0","dns":{}}"#);
    }

    #[test]
    fn v11_route_and_interface_fields_parse() {
        let v = serde_json::json!({"cniVersion":"1.1.0","interfaces":[{"name":"a","mtu":9000,"pciID":"0000:03:02.1"}],
            "routes":[{"dst":"10.0.0.0/8","mtu":1400,"advmss":1360,"priority":5,"table":100,"scope":253}]});
        let r = CniResult::from_json(&v).unwrap();
        assert_eq!(r.interfaces[0].mtu, Some(9000));
        assert_eq!(r.routes[0].table, Some(100));
        assert_eq!(r.to_json(CniVersion::V1_1_0)["routes"][0]["advmss"], 1360);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let e = CniResult::from_bytes(b"not json").unwrap_err();
        assert!(e.is(super::super::error::ErrorCode::Decode));
        let e =
            CniResult::from_json(&serde_json::json!({"ips":[{"address":"bogus"}]})).unwrap_err();
        assert!(e.msg.contains("decode"), "{e}");
    }
}
