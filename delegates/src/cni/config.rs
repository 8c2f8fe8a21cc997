//! Decoding plugin configurations with Go's `encoding/json` key matching.
//!
//! Every Go plugin (the reference macvlan/ipvlan/host-local, sriov-cni, Multus, the SR-IOV device
//! plugin) decodes object keys case-insensitively, and users' configs rely on it (`Master`, `MTU`,
//! `IPAM`, `IsRdma`, ...). [`parse_config`] and [`from_value`] do the same for any
//! `#[derive(Deserialize)]` type, without the types listing their keys by hand.
//!
//! How: the input is parsed into a [`serde_json::Value`], then deserialized through [`Node`], a
//! deserializer that sees each struct's field names in `deserialize_struct(name, fields, ..)` (serde
//! puts renamed names and every alias there) and maps the object's keys onto them:
//!
//! - a key equal to a field name goes to that field; otherwise it goes to the first field, in
//!   declaration order, whose name is equal under Unicode case folding (Go: `byExactName`, then
//!   `byFoldedName`, which keeps the first field per folded name). Keys matching no field are left
//!   as they are (ignored, or refused by `deny_unknown_fields`).
//! - several keys landing on one field (`"mtu"` and `"MTU"`) are decoded in input order into the
//!   same Go value, so the later one wins. When all of them are objects and the field is a struct
//!   or a map, Go decodes each into the same value, merging their keys; [`Node`] does the same.
//!   A field of type `Value` (Go: `interface{}`) takes the last one whole.
//! - `null` gives `None` for an `Option`, an empty `Vec`/map, and a struct decoded from no keys
//!   (Go leaves the zero value; required fields then fail as missing); scalars refuse it.
//! - map keys (`HashMap`, `serde_json::Map`) and `Value` fields keep the keys exactly as written;
//!   structs inside map values and sequences are matched again, at any depth.
//!
//! Limits: serde hides field names from structs using `#[serde(flatten)]` (they are read with
//! `deserialize_map`) and buffers untagged and internally tagged enums before we see them, so
//! neither gets case-insensitive keys. Enum variant names are matched exactly (Go has no enums;
//! plugins compare such strings exactly).
//!
//! Errors name the key path as written by the user, e.g.
//! `cannot decode network configuration: ipam.ranges[0][0].subnet: invalid IP address syntax
//! (value "x")`, and are CNI code 6 (decode).

use std::fmt;

use serde::de::value::StringDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde_json::Value;

use super::error::CniError;

/// Decode a network configuration (stdin bytes) into a typed struct, matching keys as Go does.
pub fn parse_config<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CniError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| CniError::decode(format!("cannot decode network configuration: {e}")))?;
    from_value(value)
}

/// Decode a JSON value (a section of a configuration) into a typed struct, matching keys as Go
/// does.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, CniError> {
    decode(value).map_err(|e| CniError::decode(format!("cannot decode network configuration: {e}")))
}

/// [`from_value`] for a section found at `path` (e.g. `"ipam"`), so errors name the full key path
/// (`ipam.ranges[0][0].subnet: ...`).
pub fn from_value_at<T: DeserializeOwned>(value: Value, path: &str) -> Result<T, CniError> {
    decode(value).map_err(|mut e| {
        if !path.is_empty() {
            e.path.push(Segment::Key(path.to_string()));
        }
        CniError::decode(format!("cannot decode network configuration: {e}"))
    })
}

/// Deserialize `value` into `T` with Go's key matching, keeping the structured error.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    T::deserialize(Node::new(value))
}

/// A decoding failure and the key path where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Innermost segment first (pushed while the error travels up).
    path: Vec<Segment>,
    msg: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl DecodeError {
    /// The key path, e.g. `ipam.ranges[0][0].subnet`; empty for the top level.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Segment::Key(k) if out.is_empty() => out.push_str(k),
                Segment::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.msg
    }

    fn at(mut self, seg: Segment) -> Self {
        self.path.push(seg);
        self
    }

    fn from_json(e: serde_json::Error) -> Self {
        DecodeError {
            path: Vec::new(),
            msg: e.to_string(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if path.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{path}: {}", self.msg)
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        DecodeError {
            path: Vec::new(),
            msg: msg.to_string(),
        }
    }
}

/// Go's case folding of a key (`unicode.ToUpper(unicode.ToLower(r))` per rune).
fn fold(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars()
        .flat_map(char::to_lowercase)
        .flat_map(char::to_uppercase)
}

fn fold_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || fold(a).eq(fold(b))
}

/// The struct field an input key decodes into: exact match first, else the first folded match.
fn field_for<'f>(key: &str, fields: &'f [&'static str]) -> Option<&'f str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| fold_eq(f, key)))
        .copied()
}

/// A JSON value being deserialized, plus earlier values given for the same struct field under
/// differently cased keys (merged when the target is a struct or a map, as Go does).
#[derive(Debug)]
pub struct Node {
    value: Value,
    earlier: Vec<Value>,
}

impl Node {
    pub fn new(value: Value) -> Self {
        Node {
            value,
            earlier: Vec::new(),
        }
    }

    /// The entries of every object given for this field, oldest first (Go decodes each into the
    /// same struct or map); the last value itself when it is not an object.
    fn object_entries(self) -> Result<Vec<(String, Value)>, Value> {
        match self.value {
            Value::Object(last) => {
                let mut entries = Vec::new();
                for v in self.earlier {
                    if let Value::Object(m) = v {
                        entries.extend(m);
                    }
                }
                entries.extend(last);
                Ok(entries)
            }
            other => Err(other),
        }
    }

    /// Run a serde_json deserializer method on the (last) value, for scalars.
    fn forward<'de, V, F>(self, f: F) -> Result<V::Value, DecodeError>
    where
        V: Visitor<'de>,
        F: FnOnce(Value) -> Result<V::Value, serde_json::Error>,
    {
        let shown = match &self.value {
            Value::String(s) => Some(format!("{s:?}")),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        f(self.value).map_err(|e| {
            let mut e = DecodeError::from_json(e);
            // Custom errors (`invalid IP address syntax`) do not say what was given.
            if let Some(shown) = shown.filter(|s| !e.msg.contains(s.as_str())) {
                e.msg = format!("{} (value {shown})", e.msg);
            }
            e
        })
    }
}

/// Map entries with values wrapped in [`Node`]; errors are prefixed with the key as written.
struct Entries {
    iter: std::vec::IntoIter<(String, String, Node)>,
    /// (key as written, value) of the entry whose key was just returned.
    pending: Option<(String, Node)>,
}

impl Entries {
    /// Entries for a map: keys untouched.
    fn plain(entries: Vec<(String, Value)>) -> Self {
        let list = entries
            .into_iter()
            .map(|(k, v)| (k.clone(), k, Node::new(v)))
            .collect();
        Entries::from_list(list)
    }

    /// Entries for a struct: keys mapped onto `fields`, values for the same field grouped.
    fn for_struct(entries: Vec<(String, Value)>, fields: &'static [&'static str]) -> Self {
        let mut list: Vec<(String, String, Node)> = Vec::with_capacity(entries.len());
        for (written, value) in entries {
            let target =
                field_for(&written, fields).map_or_else(|| written.clone(), str::to_string);
            match list.iter_mut().find(|(_, t, _)| *t == target) {
                Some(slot) => {
                    let old = std::mem::replace(&mut slot.2.value, value);
                    slot.2.earlier.push(old);
                    slot.0 = written;
                }
                None => list.push((written, target, Node::new(value))),
            }
        }
        Entries::from_list(list)
    }

    fn from_list(list: Vec<(String, String, Node)>) -> Self {
        Entries {
            iter: list.into_iter(),
            pending: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((written, target, node)) = self.iter.next() else {
            return Ok(None);
        };
        let key: StringDeserializer<DecodeError> = target.into_deserializer();
        let key = seed
            .deserialize(key)
            .map_err(|e| e.at(Segment::Key(written.clone())))?;
        self.pending = Some((written, node));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let Some((written, node)) = self.pending.take() else {
            return Err(de::Error::custom("map value requested before its key"));
        };
        seed.deserialize(node)
            .map_err(|e| e.at(Segment::Key(written)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Sequence elements wrapped in [`Node`]; errors are prefixed with the index.
struct Elements {
    iter: std::iter::Enumerate<std::vec::IntoIter<Value>>,
}

impl Elements {
    fn new(items: Vec<Value>) -> Self {
        Elements {
            iter: items.into_iter().enumerate(),
        }
    }
}

impl<'de> SeqAccess<'de> for Elements {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some((i, v)) = self.iter.next() else {
            return Ok(None);
        };
        seed.deserialize(Node::new(v))
            .map(Some)
            .map_err(|e| e.at(Segment::Index(i)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An externally tagged enum written as `{"Variant": content}`.
struct Variant {
    name: String,
    content: Node,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = DecodeError;
    type Variant = Node;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Node), DecodeError> {
        let name: StringDeserializer<DecodeError> = self.name.clone().into_deserializer();
        let v = seed
            .deserialize(name)
            .map_err(|e| e.at(Segment::Key(self.name.clone())))?;
        Ok((v, self.content))
    }
}

impl<'de> VariantAccess<'de> for Node {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        match self.value {
            Value::Null => Ok(()),
            other => Err(de::Error::custom(format!(
                "expected no content for a unit variant, got {other}"
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

macro_rules! forward_scalars {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
                self.forward::<V, _>(|v| de::Deserializer::$method(v, visitor))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = DecodeError;

    /// Self-describing targets (`Value`, `IgnoredAny`, untagged enums): keys kept as written;
    /// duplicates take the last value, as Go replaces an `interface{}` value.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Object(m) => visitor.visit_map(Entries::plain(m.into_iter().collect())),
            Value::Array(a) => visitor.visit_seq(Elements::new(a)),
            other => {
                Node::new(other).forward::<V, _>(|v| de::Deserializer::deserialize_any(v, visitor))
            }
        }
    }

    forward_scalars! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_identifier
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_unit(self, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Array(a) => visitor.visit_seq(Elements::new(a)),
            Value::Null => visitor.visit_seq(Elements::new(Vec::new())),
            other => {
                Node::new(other).forward::<V, _>(|v| de::Deserializer::deserialize_seq(v, visitor))
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.object_entries() {
            Ok(entries) => visitor.visit_map(Entries::plain(entries)),
            Err(Value::Null) => visitor.visit_map(Entries::plain(Vec::new())),
            Err(other) => {
                Node::new(other).forward::<V, _>(|v| de::Deserializer::deserialize_map(v, visitor))
            }
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.object_entries() {
            Ok(entries) => visitor.visit_map(Entries::for_struct(entries, fields)),
            Err(Value::Null) => visitor.visit_map(Entries::for_struct(Vec::new(), fields)),
            Err(Value::Array(a)) => visitor.visit_seq(Elements::new(a)),
            Err(other) => Node::new(other).forward::<V, _>(|v| {
                de::Deserializer::deserialize_struct(v, name, fields, visitor)
            }),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::String(s) => {
                let variant: StringDeserializer<DecodeError> = s.into_deserializer();
                visitor.visit_enum(variant)
            }
            Value::Object(m) if m.len() == 1 => {
                let Some((name, content)) = m.into_iter().next() else {
                    return Err(de::Error::custom("empty enum object"));
                };
                visitor.visit_enum(Variant {
                    name,
                    content: Node::new(content),
                })
            }
            other => Node::new(other).forward::<V, _>(|v| {
                de::Deserializer::deserialize_enum(v, name, variants, visitor)
            }),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use ipnet::IpNet;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::cni::error::ErrorCode;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Macvlan {
        master: String,
        #[serde(default)]
        mtu: Option<u32>,
        #[serde(default)]
        mode: String,
    }

    #[test]
    fn go_cased_keys_reach_lowercase_fields() {
        let c: Macvlan =
            parse_config(br#"{"Master":"eth0","MTU":9000,"mode":"bridge","Unknown":1}"#).unwrap();
        assert_eq!(
            c,
            Macvlan {
                master: "eth0".into(),
                mtu: Some(9000),
                mode: "bridge".into()
            }
        );
    }

    #[derive(Debug, Deserialize)]
    struct Range {
        subnet: IpNet,
        #[serde(default, rename = "rangeStart")]
        range_start: Option<std::net::IpAddr>,
    }

    #[derive(Debug, Deserialize)]
    struct Ipam {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        ranges: Vec<Vec<Range>>,
        #[serde(default)]
        routes: Option<Vec<BTreeMap<String, String>>>,
    }

    #[derive(Debug, Deserialize)]
    struct Conf {
        #[serde(rename = "cniVersion")]
        cni_version: String,
        #[serde(default)]
        ipam: Option<Ipam>,
        #[serde(default, rename = "runtimeConfig")]
        runtime_config: HashMap<String, Value>,
        #[serde(default)]
        args: Option<Value>,
    }

    #[test]
    fn nested_renamed_option_vec_and_map_fields() {
        let c: Conf = parse_config(
            br#"{"CNIVERSION":"1.0.0",
                 "IPAM":{"TYPE":"host-local","Ranges":[[{"Subnet":"10.0.0.0/24","RANGESTART":"10.0.0.5"}]],
                         "routes":[{"Dst":"0.0.0.0/0"}]},
                 "RuntimeConfig":{"HostPort":[{"containerPort":80}],"ips":["1.2.3.4"]},
                 "Args":{"K8S":{"Mixed":1}}}"#,
        )
        .unwrap();
        assert_eq!(c.cni_version, "1.0.0");
        let ipam = c.ipam.unwrap();
        assert_eq!(ipam.kind, "host-local");
        assert_eq!(ipam.ranges[0][0].subnet.to_string(), "10.0.0.0/24");
        assert_eq!(
            ipam.ranges[0][0].range_start.unwrap().to_string(),
            "10.0.0.5"
        );
        // map keys are data, not field names: kept as written
        assert_eq!(
            ipam.routes.unwrap()[0].get("Dst").map(String::as_str),
            Some("0.0.0.0/0")
        );
        assert!(c.runtime_config.contains_key("HostPort"));
        assert_eq!(c.runtime_config["HostPort"][0]["containerPort"], 80);
        assert_eq!(c.args.unwrap(), json!({"K8S":{"Mixed":1}}));
    }

    #[test]
    fn exact_match_wins_over_folded_and_later_key_wins() {
        #[derive(Debug, Deserialize)]
        struct Two {
            #[serde(rename = "Mtu")]
            upper: Option<u32>,
            mtu: Option<u32>,
        }
        // "mtu" is exact for the second field; "MTU" folds to the first field in order ("Mtu").
        let t: Two = from_value(json!({"MTU":1, "mtu":2})).unwrap();
        assert_eq!((t.upper, t.mtu), (Some(1), Some(2)));

        // Two keys folding to one field: decoded in order, the later one wins (Go).
        let m: Macvlan = from_value(json!({"master":"a","MASTER":"b"})).unwrap();
        assert_eq!(m.master, "b");
        let m: Macvlan = from_value(json!({"Master":"a","master":"b"})).unwrap();
        assert_eq!(m.master, "b");
    }

    #[test]
    fn duplicate_objects_merge_into_a_struct_as_go_does() {
        let c: Conf =
            from_value(json!({"cniVersion":"1.0.0","ipam":{"type":"static"},"IPAM":{"routes":[]}}))
                .unwrap();
        let ipam = c.ipam.unwrap();
        assert_eq!(ipam.kind, "static");
        assert_eq!(ipam.routes, Some(vec![]));
        // a Value field takes the last one whole
        let c: Conf =
            from_value(json!({"cniVersion":"1.0.0","args":{"a":1},"ARGS":{"b":2}})).unwrap();
        assert_eq!(c.args.unwrap(), json!({"b":2}));
    }

    #[test]
    fn aliases_match_case_insensitively() {
        #[derive(Debug, Deserialize)]
        struct A {
            #[serde(alias = "readinessindicatorfile")]
            #[serde(rename = "readinessIndicatorFile")]
            readiness: String,
        }
        let a: A = from_value(json!({"ReadinessIndicatorFile":"/x"})).unwrap();
        assert_eq!(a.readiness, "/x");
        let a: A = from_value(json!({"READINESSINDICATORFILE":"/y"})).unwrap();
        assert_eq!(a.readiness, "/y");
    }

    #[test]
    fn nulls_behave_like_go_zero_values() {
        #[derive(Debug, Deserialize)]
        struct N {
            #[serde(default)]
            list: Vec<u32>,
            #[serde(default)]
            ipam: Option<Ipam>,
            #[serde(default)]
            map: HashMap<String, u32>,
        }
        let n: N = from_value(json!({"List":null,"ipam":null,"map":null})).unwrap();
        assert!(n.list.is_empty() && n.ipam.is_none() && n.map.is_empty());
    }

    #[test]
    fn enums_tuples_and_deny_unknown_fields() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            Bridge,
            Private,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        enum Ext {
            Vf { index: u32 },
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct E {
            mode: Mode,
            ext: Option<Ext>,
            pair: (u8, String),
        }
        let e: E =
            from_value(json!({"Mode":"private","EXT":{"Vf":{"Index":3}},"pair":[1,"x"]})).unwrap();
        assert_eq!(e.mode, Mode::Private);
        assert_eq!(e.ext, Some(Ext::Vf { index: 3 }));
        assert_eq!(e.pair, (1, "x".to_string()));
        let err = from_value::<E>(json!({"mode":"bridge","pair":[1,"x"],"bogus":1})).unwrap_err();
        assert!(err.msg.contains("bogus"), "{err}");
        let err = from_value::<E>(json!({"mode":"Bridge","pair":[1,"x"]})).unwrap_err();
        assert!(err.msg.contains("mode: unknown variant"), "{err}");
    }

    #[test]
    fn errors_name_the_key_path_and_are_decode() {
        let raw =
            br#"{"cniVersion":"1.0.0","ipam":{"type":"host-local","ranges":[[{"subnet":"x"}]]}}"#;
        let e = parse_config::<Conf>(raw).unwrap_err();
        assert!(e.is(ErrorCode::Decode));
        assert_eq!(
            e.msg,
            r#"cannot decode network configuration: ipam.ranges[0][0].subnet: invalid IP address syntax (value "x")"#
        );
        // the path uses the keys as the user wrote them
        let raw = br#"{"cniVersion":"1.0.0","IPAM":{"type":"host-local","Ranges":[[{"Subnet":"10.0.0.0/8"}],[{}]]}}"#;
        let e = parse_config::<Conf>(raw).unwrap_err();
        assert!(
            e.msg.ends_with("IPAM.Ranges[1][0]: missing field `subnet`"),
            "{e}"
        );
        let e = parse_config::<Macvlan>(br#"{"master":"eth0","MTU":"big"}"#).unwrap_err();
        assert!(
            e.msg
                .contains(r#"MTU: invalid type: string "big", expected u32"#),
            "{e}"
        );
        let e = from_value_at::<Ipam>(json!({"type": 5}), "ipam").unwrap_err();
        assert!(
            e.msg.contains("ipam.type: invalid type: integer `5`"),
            "{e}"
        );
    }

    #[test]
    fn malformed_json_is_decode_with_position() {
        let e = parse_config::<Macvlan>(b"{\"master\": ").unwrap_err();
        assert!(e.is(ErrorCode::Decode));
        assert!(e.msg.contains("line 1"), "{e}");
        let e = parse_config::<Macvlan>(b"[1]").unwrap_err();
        assert!(e.is(ErrorCode::Decode), "{e}");
    }

    #[test]
    fn structured_error_exposes_path() {
        let e = decode::<Conf>(
            json!({"cniVersion":"1.0.0","ipam":{"type":"x","ranges":[[{"subnet":"1.2.3.4/40"}]]}}),
        )
        .unwrap_err();
        assert_eq!(e.path(), "ipam.ranges[0][0].subnet");
        assert!(!e.message().is_empty());
    }

    #[test]
    fn netconf_header_reads_go_cased_keys() {
        let c = crate::cni::netconf::NetConf::parse(
            br#"{"CNIVersion":"0.4.0","Name":"n","Type":"macvlan","IPAM":{"type":"static"}}"#,
        )
        .unwrap();
        assert_eq!(c.cni_version.as_deref(), Some("0.4.0"));
        assert_eq!((c.name.as_str(), c.plugin_type.as_str()), ("n", "macvlan"));
        assert_eq!(c.ipam_type(), Some("static"));
    }
}
