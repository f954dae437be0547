//! The case file schema: what a YAML case says, as written, with the location of every value.
//!
//! Only the structure is checked here (which keys exist, what is a list or a mapping). Scalars
//! are kept as the text that was written (`mtu: 1500` is `"1500"`), and the planner
//! ([`crate::plan`]) interprets them: serde stops at its first error, while the planner reports
//! every bad value of a file with its own location and a message that says what was expected.
//! The format is described in `docs/case-format.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

use crate::diag::Location;

/// A whole case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub cluster: Option<Spanned<ClusterSpec>>,
    pub nodes: Option<Spanned<Vec<Spanned<NodeEntry>>>>,
    pub pods: Option<Vec<Spanned<PodSpec>>>,
    pub flows: Option<Vec<Spanned<FlowSpec>>>,
}

/// Cluster-wide settings; every one has a default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<Spanned<String>>,
    #[serde(rename = "subnetLen")]
    pub subnet_len: Option<Spanned<String>>,
    #[serde(rename = "nodeCIDR")]
    pub node_cidr: Option<Spanned<String>>,
    pub overlay: Option<Spanned<String>>,
    pub mtu: Option<Spanned<String>>,
}

/// An entry of `nodes`: a bare name or a mapping. Read it through [`NodeEntry::spec`].
#[derive(Debug, Clone)]
pub enum NodeEntry {
    Name(String),
    Spec(Box<NodeSpec>),
}

/// A node written as a mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
}

impl NodeEntry {
    /// The entry as a mapping; a bare name gets the location of the entry.
    pub fn spec(entry: &Spanned<NodeEntry>) -> NodeSpec {
        match &entry.value {
            NodeEntry::Name(name) => NodeSpec {
                name: Some(Spanned::new(name.clone(), entry.referenced, entry.defined)),
                pod_cidr: None,
                address: None,
            },
            NodeEntry::Spec(spec) => (**spec).clone(),
        }
    }
}

/// A pod.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    pub name: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    pub ip: Option<Spanned<String>>,
    pub labels: Option<Spanned<BTreeMap<String, String>>>,
    pub ready: Option<Spanned<bool>>,
    /// `8080/tcp`, `5353/udp` or a bare port (tcp).
    pub listen: Option<Vec<Spanned<String>>>,
}

/// A flow: traffic from a pod to a target, and what must happen to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub name: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    /// `pod:port`, `a.b.c.d:port`, `pod` or `a.b.c.d`.
    pub to: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub expect: Option<Spanned<ExpectSpec>>,
}

/// What a flow must do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub reach: Option<Spanned<PodNames>>,
    #[serde(rename = "seenSource")]
    pub seen_source: Option<Spanned<String>>,
    pub fail: Option<Spanned<String>>,
}

/// One pod name or a list of them. Read it through [`PodNames::names`].
#[derive(Debug, Clone)]
pub enum PodNames {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl PodNames {
    /// Every name with its location; a single name gets the location of the whole value.
    pub fn names(value: &Spanned<PodNames>) -> Vec<Spanned<String>> {
        match &value.value {
            PodNames::One(name) => {
                vec![Spanned::new(name.clone(), value.referenced, value.defined)]
            }
            PodNames::Many(names) => names.clone(),
        }
    }
}

/// Parses a case, checking its structure only (see the module documentation).
///
/// The error is the one structural problem serde-saphyr stopped at: syntax, a list where a
/// mapping belongs, an unknown key. Its location is `None` only if the parser had none.
pub fn parse(text: &str) -> Result<Spanned<Case>, (Option<Location>, String)> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options::<Spanned<Case>>(text, options).map_err(|err| {
        let location = err.location().and_then(Location::from_yaml);
        let message = serde_saphyr::UserMessageFormatter.format_message(err.without_snippet());
        (location, plain(&message))
    })
}

/// The parser's message in words a case author uses, on one line.
fn plain(message: &str) -> String {
    let reworded = if message.starts_with("expected mapping") {
        "expected a mapping (`key: value` entries) here"
    } else if message.starts_with("expected sequence") {
        "expected a list (`[a, b]` or lines starting with `- `) here"
    } else if message.starts_with("expected string scalar") {
        "expected a single value here, not a list or a mapping"
    } else if message == "invalid boolean" {
        "expected true or false"
    } else {
        message
    };
    // Control characters from the file (quoted in some messages) must not break the line.
    reworded
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

// Scalars of any type are taken as their text, so a name written as a number or a boolean is
// reported by the planner ("unknown pod `12`") with its location, instead of failing serde.
macro_rules! scalars_as_text {
    ($wrap:expr) => {
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(v.to_owned()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok($wrap(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok($wrap(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok($wrap(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok($wrap(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(String::new()))
        }
    };
}

impl<'de> Deserialize<'de> for NodeEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = NodeEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node name or a mapping with `name`")
            }

            scalars_as_text!(NodeEntry::Name);

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NodeEntry, A::Error> {
                // Goes on reading through the YAML map itself, so the fields keep their spans
                // (an untagged enum would buffer them and lose them).
                NodeSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| NodeEntry::Spec(Box::new(spec)))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

impl<'de> Deserialize<'de> for PodNames {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamesVisitor;

        impl<'de> Visitor<'de> for NamesVisitor {
            type Value = PodNames;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pod name or a list of pod names")
            }

            scalars_as_text!(PodNames::One);

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PodNames, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    names.push(name);
                }
                Ok(PodNames::Many(names))
            }
        }

        deserializer.deserialize_any(NamesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn at<T>(s: &Spanned<T>) -> (u64, u64) {
        (s.referenced.line(), s.referenced.column())
    }

    #[test]
    fn every_value_keeps_its_location() {
        let text = "\
nodes:
  - node1
  - { name: node2, podCIDR: 10.244.7.0/24 }
pods:
  - name: pod-a
    node: node1
    listen: [8080/tcp, 9000]
flows:
  - name: f
    from: pod-a
    to: pod-a:8080
    expect: { reach: [pod-a], seenSource: pod-a }
";
        let case = parse(text).unwrap().value;
        let nodes = case.nodes.unwrap().value;
        let node1 = NodeEntry::spec(&nodes[0]);
        assert_eq!(at(node1.name.as_ref().unwrap()), (2, 5));
        let node2 = NodeEntry::spec(&nodes[1]);
        assert_eq!(at(node2.name.as_ref().unwrap()), (3, 13));
        assert_eq!(at(node2.pod_cidr.as_ref().unwrap()), (3, 29));
        let pods = case.pods.unwrap();
        let listen = pods[0].value.listen.as_ref().unwrap();
        assert_eq!(listen[1].value, "9000");
        assert_eq!(at(&listen[1]), (7, 24));
        let flows = case.flows.unwrap();
        assert_eq!(at(&flows[0]), (9, 5));
        let expect = flows[0].value.expect.as_ref().unwrap();
        let reach = PodNames::names(expect.value.reach.as_ref().unwrap());
        assert_eq!(at(&reach[0]), (12, 23));
        assert_eq!(at(expect.value.seen_source.as_ref().unwrap()), (12, 43));
    }

    #[test]
    fn a_single_reach_name_gets_the_value_location() {
        let text = "flows:\n  - expect:\n      reach: pod-b\n";
        let case = parse(text).unwrap().value;
        let flows = case.flows.unwrap();
        let expect = flows[0].value.expect.as_ref().unwrap();
        let names = PodNames::names(expect.value.reach.as_ref().unwrap());
        assert_eq!(names.len(), 1);
        assert_eq!(names[0].value, "pod-b");
        assert_eq!(at(&names[0]), (3, 14));
    }

    #[rstest]
    #[case::unknown_top_key("nodes: [a]\nbogus: 1\n", 2, 1, "unknown field `bogus`")]
    #[case::unknown_node_key("nodes:\n  - name: a\n    zone: x\n", 3, 5, "unknown field `zone`")]
    #[case::unknown_expect_key(
        "flows:\n  - expect: { reach: a, via: b }\n",
        2,
        25,
        "unknown field `via`"
    )]
    #[case::syntax("nodes: [a\n", 1, 8, "unclosed bracket")]
    #[case::list_at_top("- a\n- b\n", 1, 1, "expected a mapping")]
    #[case::scalar_for_list("nodes: 3\n", 1, 8, "expected a list")]
    #[case::mapping_for_name("name: {a: 1}\n", 1, 7, "expected a single value")]
    #[case::not_a_boolean("pods: [{ ready: maybe }]\n", 1, 17, "expected true or false")]
    #[case::control_character("\u{0}x", 1, 1, "unexpected character")]
    #[case::duplicate_key("name: a\nname: b\n", 2, 1, "duplicate mapping key `name`")]
    fn structural_errors_are_located(
        #[case] text: &str,
        #[case] line: u64,
        #[case] column: u64,
        #[case] message: &str,
    ) {
        let (location, got) = parse(text).unwrap_err();
        assert_eq!(location, Some(Location { line, column }), "{got}");
        assert!(got.contains(message), "{got}");
    }
}
