//! The stack file schema: what a stack file says, as written, with the location of every
//! value. Only the structure is checked here; [`super::Stack::load`] interprets the values and
//! reports every bad one with its location, as the planner does for cases.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

use crate::diag::Location;

/// A whole stack file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackFile {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub pod_attach: Option<Spanned<Layer>>,
    pub node_network: Option<Spanned<Layer>>,
    pub service_proxy: Option<Spanned<Layer>>,
    pub cluster_dns: Option<Spanned<Layer>>,
}

/// One layer: a driver name alone (`none`), or a mapping with `driver` and its settings.
#[derive(Debug, Clone)]
pub enum Layer {
    Short(String),
    Full(Box<LayerSpec>),
}

/// A layer's mapping. Which keys a driver takes is checked when the stack is loaded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    pub driver: Option<Spanned<String>>,
    /// `exec`: the command and its arguments.
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// `exec`: how long one run of the command may take (`30s`, `500ms`).
    pub timeout: Option<Spanned<String>>,
    /// `exec`: extra environment for the command.
    pub env: Option<BTreeMap<String, Spanned<String>>>,
    /// `exec`: the interfaces the driver makes on every node, which observation captures.
    pub interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    /// `exec` node network: whether it masquerades pod traffic leaving the cluster.
    pub masquerade: Option<Spanned<String>>,
    /// `exec` node network: what it puts on the wire between nodes.
    pub encapsulation: Option<Spanned<EncapsulationSpec>>,
    /// `builtin` service proxy: the modes it runs in (default: what each case asks for).
    pub modes: Option<Spanned<Vec<Spanned<String>>>>,
    /// `cni` pod attach: the network configuration list (relative to the stack file).
    pub conflist: Option<Spanned<String>>,
    /// `cni` pod attach: the directories plugins are found in (relative to the stack file).
    #[serde(rename = "binDir")]
    pub bin_dir: Option<Spanned<Vec<Spanned<String>>>>,
    /// `exec` and `restore` service proxy: the mode its rules are in (`iptables`, `nftables`).
    pub mode: Option<Spanned<String>>,
    /// `restore` service proxy: the ruleset file (relative to the stack file; `{node}`,
    /// `{case}` replaced).
    pub ruleset: Option<Spanned<String>>,
    /// `exec` service proxy: the template of the configuration file podpath writes per node.
    pub config: Option<Spanned<String>>,
    /// `exec` cluster DNS: the template of the Corefile podpath writes.
    pub corefile: Option<Spanned<String>>,
}

/// An encapsulation: `{ vxlan: { vni: 1, port: 8472 } }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncapsulationSpec {
    pub vxlan: Option<Spanned<VxlanSpec>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanSpec {
    pub vni: Option<Spanned<String>>,
    pub port: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LayerVisitor;

        impl<'de> Visitor<'de> for LayerVisitor {
            type Value = Layer;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a driver name or a mapping with `driver`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Layer, E> {
                Ok(Layer::Short(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Layer, E> {
                Ok(Layer::Short(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Layer, E> {
                Ok(Layer::Short(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Layer, E> {
                Ok(Layer::Short(v.to_string()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Layer, E> {
                Ok(Layer::Short(String::new()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Layer, A::Error> {
                // Deserialised from the map itself, so every value keeps its location.
                LayerSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| Layer::Full(Box::new(spec)))
            }
        }

        deserializer.deserialize_any(LayerVisitor)
    }
}

/// Parses a stack file, checking its structure only. The error is the one structural problem
/// the parser stopped at, with its location.
pub fn parse(text: &str) -> Result<Spanned<StackFile>, (Option<Location>, String)> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options::<Spanned<StackFile>>(text, options).map_err(|err| {
        let location = err.location().and_then(Location::from_yaml);
        let message = serde_saphyr::UserMessageFormatter.format_message(err.without_snippet());
        (location, message.replace('\n', " "))
    })
}
