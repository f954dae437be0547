//! Label and field selectors as the Kubernetes API parses them (`labelSelector=`,
//! `fieldSelector=`): pure, so every form is unit-tested without a server.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key` (the label is set, whatever its value).
    Exists(String),
    /// `!key`.
    NotExists(String),
    /// `key=v`, `key==v`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=v`, `key notin (a,b)`: also true when the label is not set.
    NotIn(String, Vec<String>),
}

/// A parsed label selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

/// A parsed field selector: `path=value` and `path!=value` terms (`metadata.name`,
/// `metadata.namespace`, `spec.nodeName`, ...), all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn set_values(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    /// Parses `labelSelector`; the error says which term is wrong.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        for term in split_terms(text) {
            let bad = || format!("unable to parse requirement {term:?}");
            let req = if let Some(key) = term.strip_prefix('!') {
                let key = key.trim();
                valid_key(key).then(|| LabelRequirement::NotExists(key.into()))
            } else if let Some((k, v)) = term.split_once("!=") {
                Some(LabelRequirement::NotIn(
                    k.trim().into(),
                    vec![v.trim().into()],
                ))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Some(LabelRequirement::In(k.trim().into(), vec![v.trim().into()]))
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                set_values(rest).map(|vs| LabelRequirement::NotIn(k.trim().into(), vs))
            } else if let Some((k, rest)) = term.split_once(" in ") {
                set_values(rest).map(|vs| LabelRequirement::In(k.trim().into(), vs))
            } else {
                valid_key(term).then(|| LabelRequirement::Exists(term.into()))
            };
            let req = req.ok_or_else(bad)?;
            let key = match &req {
                LabelRequirement::Exists(k)
                | LabelRequirement::NotExists(k)
                | LabelRequirement::In(k, _)
                | LabelRequirement::NotIn(k, _) => k,
            };
            if !valid_key(key) {
                return Err(bad());
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|v| vs.iter().all(|x| x != v)),
        })
    }
}

impl FieldSelector {
    /// Parses `fieldSelector`.
    pub fn parse(text: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in split_terms(text) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(format!("invalid selector: {term:?}; needs a '=' or '!='"));
            };
            let path = path.trim();
            if path.is_empty() || !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(format!("invalid field path {path:?}"));
            }
            terms.push((path.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// Whether the object's fields hold these values (a missing field is the empty string, as
    /// the API's field sets have it).
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let mut v = object;
            for part in path.split('.') {
                v = v.get(part).unwrap_or(&Value::Null);
            }
            let actual = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(labels: Value) -> Value {
        json!({ "metadata": { "name": "web", "namespace": "default", "labels": labels },
                "spec": { "nodeName": "node1" } })
    }

    #[test]
    fn kube_proxy_selector_excludes_headless_and_other_proxies() {
        let sel = LabelSelector::parse(
            "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name",
        )
        .unwrap();
        assert_eq!(sel.0.len(), 2);
        assert!(sel.matches(&svc(json!({ "app": "web" }))));
        assert!(sel.matches(&svc(Value::Null)));
        assert!(!sel.matches(&svc(json!({ "service.kubernetes.io/headless": "" }))));
    }

    #[test]
    fn every_label_operator() {
        let o = svc(json!({ "app": "web", "tier": "front" }));
        for (text, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("tier notin (back)", true),
            ("app", true),
            ("!app", false),
            ("app=web,tier=back", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(text).unwrap().matches(&o),
                want,
                "{text}"
            );
        }
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("bad key").is_err());
    }

    #[test]
    fn field_selectors_on_names_and_nodes() {
        let o = svc(Value::Null);
        for (text, want) in [
            ("metadata.name=web", true),
            ("metadata.name=db", false),
            ("metadata.name!=db", true),
            ("spec.nodeName=node1,metadata.namespace=default", true),
            ("spec.nodeName=node2", false),
            ("spec.missing=", true),
        ] {
            assert_eq!(
                FieldSelector::parse(text).unwrap().matches(&o),
                want,
                "{text}"
            );
        }
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
