//! `CNI_ARGS`: `K=V;K=V` pairs passed by the runtime.

use super::error::CniError;

/// Parsed `CNI_ARGS`, in the runtime's order. Unknown keys are kept: delegates pass them on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parse `K=V;K=V`. Empty segments are ignored; a segment without `=` is an error naming it.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        for seg in raw.split(';').filter(|s| !s.is_empty()) {
            let (k, v) = seg.split_once('=').ok_or_else(|| {
                CniError::invalid_env(format!(
                    "CNI_ARGS: invalid pair {seg:?}, expected KEY=VALUE"
                ))
            })?;
            if k.is_empty() {
                return Err(CniError::invalid_env(format!(
                    "CNI_ARGS: empty key in {seg:?}"
                )));
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(CniArgs { pairs })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `IgnoreUnknown` set to a true value (Go's strconv.ParseBool spellings).
    pub fn ignore_unknown(&self) -> bool {
        matches!(
            self.get("IgnoreUnknown"),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn set(&mut self, key: &str, value: &str) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.pairs.push((key.to_string(), value.to_string())),
        }
    }

    /// Fail on keys outside `known` unless `IgnoreUnknown` is set, as the reference plugins do.
    pub fn check_known(&self, known: &[&str]) -> Result<(), CniError> {
        if self.ignore_unknown() {
            return Ok(());
        }
        match self
            .pairs
            .iter()
            .find(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(CniError::invalid_env(format!(
                "CNI_ARGS: unknown key {k:?} (set IgnoreUnknown=1 to allow it)"
            ))),
            None => Ok(()),
        }
    }

    /// Back to the wire form, for executing a delegate.
    pub fn to_env(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_args_in_any_order() {
        let a = CniArgs::parse("K8S_POD_UID=0f3a;IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=15b0").unwrap();
        assert!(a.ignore_unknown());
        assert_eq!(a.get("K8S_POD_NAME"), Some("p"));
        assert_eq!(a.get("K8S_POD_UID"), Some("0f3a"));
        assert_eq!(a.get("missing"), None);
        assert!(a.check_known(&[]).is_ok());
    }

    #[test]
    fn podman_static_ip_and_mac() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.88.0.5;MAC=aa:bb:cc:dd:ee:ff")
            .unwrap();
        assert_eq!(a.get("IP"), Some("10.88.0.5"));
        assert_eq!(a.get("MAC"), Some("aa:bb:cc:dd:ee:ff"));
    }

    #[test]
    fn unknown_keys_fail_without_ignore_unknown() {
        let a = CniArgs::parse("FOO=bar").unwrap();
        let e = a.check_known(&["IP"]).unwrap_err();
        assert!(e.msg.contains("FOO"), "{e}");
        let a = CniArgs::parse("IgnoreUnknown=false;FOO=bar").unwrap();
        assert!(a.check_known(&["IP"]).is_err());
    }

    #[test]
    fn malformed_pair_is_invalid_env() {
        let e = CniArgs::parse("IgnoreUnknown=1;oops").unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("oops"));
        assert!(CniArgs::parse("=x").is_err());
        assert!(CniArgs::parse("").unwrap().pairs().is_empty());
    }

    #[test]
    fn round_trips_and_sets() {
        let mut a = CniArgs::parse("IgnoreUnknown=1;IP=1.2.3.4").unwrap();
        a.set("IP", "5.6.7.8");
        a.set("MAC", "aa:bb:cc:dd:ee:ff");
        assert_eq!(
            a.to_env(),
            "IgnoreUnknown=1;IP=5.6.7.8;MAC=aa:bb:cc:dd:ee:ff"
        );
    }
}
