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
    pub services: Option<Vec<Spanned<ServiceSpec>>>,
    /// A host outside the cluster on the underlay. `external:` alone (null) declares it too,
    /// like `external: {}`; read it through [`Case::external_host`].
    #[serde(default, deserialize_with = "declared")]
    pub external: Option<Spanned<Option<ExternalSpec>>>,
    /// The cluster DNS: a `coredns` pod on a node behind the `kube-dns` Service.
    pub dns: Option<Spanned<DnsSpec>>,
    /// Kubernetes objects (`Service`, `EndpointSlice`, `Pod`) as `kubectl apply` takes them,
    /// beside or instead of the short forms; [`parse`] turns them into those
    /// ([`crate::plan::manifests`]).
    pub manifests: Option<Vec<Spanned<crate::plan::manifests::Manifest>>>,
}

impl Case {
    /// The external host, if the case declares one (`external: {}`, `external:` or a mapping
    /// with `listen`), with the location of its value.
    pub fn external_host(&self) -> Option<Spanned<ExternalSpec>> {
        self.external
            .as_ref()
            .map(|e| Spanned::new(e.value.clone().unwrap_or_default(), e.referenced, e.defined))
    }
}

/// Keeps a key that is present with a null value (`external:`) apart from an absent one.
fn declared<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The external host: a host outside the cluster, on the underlay, at the nodes' gateway.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    /// Echo servers it runs, written as a pod's `listen`.
    pub listen: Option<Vec<Spanned<ListenEntry>>>,
}

/// The cluster DNS (`dns:`): where its pod runs, the kube-dns Service's address and the
/// cluster domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// The node the `coredns` pod runs on.
    pub node: Option<Spanned<String>>,
    /// The kube-dns Service's ClusterIP; default: the 10th address of the service CIDR.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<Spanned<String>>,
    /// The cluster domain; default `cluster.local`.
    pub domain: Option<Spanned<String>>,
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
    #[serde(rename = "serviceCIDR")]
    pub service_cidr: Option<Spanned<String>>,
    /// The service proxy mode, or a list of modes (each runs as its own trial).
    pub proxy: Option<Spanned<PodNames>>,
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
    /// The MAC of the pod's `eth0`, as a runtime asks a CNI plugin with the `mac` capability.
    pub mac: Option<Spanned<String>>,
    pub labels: Option<Spanned<BTreeMap<String, String>>>,
    pub ready: Option<Spanned<bool>>,
    /// `8080/tcp`, `5353/udp`, a bare port (tcp), or `{ port, protocol, name }`.
    pub listen: Option<Vec<Spanned<ListenEntry>>>,
    /// `spec.hostname`: a DNS-1123 label.
    pub hostname: Option<Spanned<String>>,
    /// `spec.subdomain`: a DNS-1123 label (with a headless Service of that name, the pod's
    /// `<hostname>.<subdomain>.<namespace>.svc.<zone>` resolves).
    pub subdomain: Option<Spanned<String>>,
}

/// An entry of a pod's `listen`: `8080/tcp` (text) or a mapping that can also name the port
/// (a container port name, for Services' named `targetPort`).
#[derive(Debug, Clone)]
pub enum ListenEntry {
    Text(String),
    Spec(Box<ListenSpec>),
}

/// A listener written as a mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSpec {
    pub port: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    /// The node port the container port is published on (Kubernetes' `hostPort`).
    #[serde(rename = "hostPort")]
    pub host_port: Option<Spanned<String>>,
}

/// Lets a text listener be compared with what was written (`listen[0].value == "8080/tcp"`).
impl PartialEq<&str> for ListenEntry {
    fn eq(&self, other: &&str) -> bool {
        matches!(self, ListenEntry::Text(text) if text == other)
    }
}

/// A Kubernetes Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    /// `ClusterIP` (default) or `NodePort`.
    #[serde(rename = "type")]
    pub service_type: Option<Spanned<String>>,
    /// A fixed address in the service CIDR, or `None` (headless).
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<Spanned<String>>,
    pub selector: Option<Spanned<BTreeMap<String, String>>>,
    pub ports: Option<Spanned<Vec<Spanned<ServicePortSpec>>>>,
    /// `None` (default) or `ClientIP`.
    #[serde(rename = "sessionAffinity")]
    pub session_affinity: Option<Spanned<String>>,
    /// Seconds, with `sessionAffinity: ClientIP`.
    #[serde(rename = "sessionAffinityTimeout")]
    pub session_affinity_timeout: Option<Spanned<String>>,
    #[serde(rename = "externalTrafficPolicy")]
    pub external_traffic_policy: Option<Spanned<String>>,
    #[serde(rename = "internalTrafficPolicy")]
    pub internal_traffic_policy: Option<Spanned<String>>,
    /// Endpoints of a Service without a selector: pod names or `{ ip, port, node }`.
    pub endpoints: Option<Spanned<Vec<Spanned<EndpointEntry>>>>,
    /// `present` (default) or `absent`: an absent Service exists only from the step that
    /// creates it (`- step: { create: svc/NAME }`); its address is allocated from the start.
    pub initially: Option<Spanned<String>>,
}

/// One port of a Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePortSpec {
    pub name: Option<Spanned<String>>,
    /// `TCP` (default) or `UDP`.
    pub protocol: Option<Spanned<String>>,
    pub port: Option<Spanned<String>>,
    /// A port number or a listener (container port) name; default: `port`.
    #[serde(rename = "targetPort")]
    pub target_port: Option<Spanned<String>>,
    #[serde(rename = "nodePort")]
    pub node_port: Option<Spanned<String>>,
}

/// An entry of a Service's `endpoints`: a pod name or a mapping (see [`EndpointEntry::pod`]).
#[derive(Debug, Clone)]
pub enum EndpointEntry {
    Pod(String),
    Spec(Box<EndpointSpec>),
}

/// An endpoint written as a mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub ip: Option<Spanned<String>>,
    pub port: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
}

/// A flow: traffic from a pod to a target, and what must happen to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub name: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    /// `pod:port`, `a.b.c.d:port`, `pod`, `a.b.c.d`, `svc/name:port`, `svc/ns/name:port`,
    /// `node:port` or `node`; or a DNS name (`myapp:80`, `myapp.other:80`), resolved by the
    /// cluster DNS.
    pub to: Option<Spanned<String>>,
    /// A command run in the pod of `from` instead of sending to `to`: `[dig, +short, name]`.
    pub exec: Option<Spanned<Vec<Spanned<String>>>>,
    pub protocol: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// How many times the flow is sent; default 1.
    pub attempts: Option<Spanned<String>>,
    pub expect: Option<Spanned<ExpectSpec>>,
    /// Not a flow but a change to the cluster (`- step: { pod: b, ready: false }`): the flows
    /// after it run against the cluster as changed. An entry with `step` has no other key.
    pub step: Option<Spanned<StepSpec>>,
}

/// A change to the cluster between flows: exactly one of `pod` (with `ready`), `delete` or
/// `create`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The pod whose readiness changes, with `ready`.
    pub pod: Option<Spanned<String>>,
    pub ready: Option<Spanned<bool>>,
    /// `pod/NAME`, `svc/NAME` or `svc/NAMESPACE/NAME` (`pod/NAMESPACE/NAME` too).
    pub delete: Option<Spanned<String>>,
    /// `svc/NAME` or `svc/NAMESPACE/NAME`: a Service declared with `initially: absent`.
    pub create: Option<Spanned<String>>,
}

/// What a flow must do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    pub reach: Option<Spanned<PodNames>>,
    #[serde(rename = "seenSource")]
    pub seen_source: Option<Spanned<String>>,
    pub fail: Option<Spanned<String>>,
    /// Every attempt must be answered by the same pod.
    pub sticky: Option<Spanned<bool>>,
    /// For a flow to a DNS name: what the name resolves to.
    pub dns: Option<Spanned<DnsExpectSpec>>,
    /// For an `exec` flow: the command's exit status (default 0).
    pub exit: Option<Spanned<String>>,
    /// For an `exec` flow: lines that must appear in its output, in this order.
    pub output: Option<Spanned<Vec<Spanned<String>>>>,
    /// For an `exec` flow: regular expressions each of which must match a line of its output.
    #[serde(rename = "outputMatches")]
    pub output_matches: Option<Spanned<Vec<Spanned<String>>>>,
    /// The forward path: hops that must be observed, in this order (others may come between).
    pub hops: Option<Spanned<Vec<Spanned<HopEntry>>>>,
    /// The return path, written as `hops`.
    pub reply: Option<Spanned<Vec<Spanned<HopEntry>>>>,
    /// Hops that must not be observed at all, in either direction.
    pub avoid: Option<Spanned<Vec<Spanned<HopEntry>>>>,
}

/// An entry of `hops`, `reply` or `avoid`: an interface (`pod-a/eth0`) or a mapping. Which
/// keys a mapping may combine is checked by the planner, so that every mistake of a file is
/// reported with its location.
#[derive(Debug, Clone)]
pub enum HopEntry {
    Iface(String),
    Spec(Box<HopSpec>),
}

/// A hop written as a mapping: an interface with details (`iface`, `dir`, `src`, `dst`), a
/// rewrite (`node` with `dnat`, `snat`, `undnat` or `unsnat`), a rule hit (`node`, `chain`, `table`, `verdict`),
/// an encapsulation (`vxlan`, maybe with `iface`), or a `dns` list; `proxy` goes with any but
/// `dns`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopSpec {
    /// `<netns>/<iface>`.
    pub iface: Option<Spanned<String>>,
    /// `in` or `out`.
    pub dir: Option<Spanned<String>>,
    pub src: Option<Spanned<String>>,
    pub dst: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub dnat: Option<Spanned<String>>,
    pub snat: Option<Spanned<String>>,
    /// On the way back: the node restored the reply's source (undoing its DNAT) to this.
    pub undnat: Option<Spanned<String>>,
    /// On the way back: the node restored the reply's destination (undoing its SNAT) to this.
    pub unsnat: Option<Spanned<String>>,
    pub chain: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    pub verdict: Option<Spanned<String>>,
    /// `iptables` or `nftables`: the hop only applies in that proxy mode.
    pub proxy: Option<Spanned<String>>,
    /// `vxlan: { vni, port, outer }`; `vxlan: {}` and `vxlan:` alone match any VXLAN packet.
    /// Read it through [`HopSpec::vxlan`].
    #[serde(default, deserialize_with = "declared")]
    pub vxlan: Option<Spanned<Option<VxlanHopSpec>>>,
    /// Hops of the flow's DNS exchange.
    pub dns: Option<Spanned<Vec<Spanned<HopEntry>>>>,
}

impl HopSpec {
    /// `vxlan`, if written (`vxlan:` alone is `vxlan: {}`), with the location of its value.
    pub fn vxlan(&self) -> Option<Spanned<VxlanHopSpec>> {
        self.vxlan
            .as_ref()
            .map(|v| Spanned::new(v.value.clone().unwrap_or_default(), v.referenced, v.defined))
    }
}

/// The VXLAN details of a hop; each optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanHopSpec {
    pub vni: Option<Spanned<String>>,
    pub port: Option<Spanned<String>>,
    /// The outer addresses, `SRC -> DST`.
    pub outer: Option<Spanned<String>>,
}

/// `expect.dns`: an answer (`svc/myapp`) or a list of them (`[svc/myapp, pod-b, 10.96.0.5]`),
/// with rcode NOERROR, or a mapping `{ answers, rcode }`. Read it through
/// [`DnsExpectSpec::parts`].
#[derive(Debug, Clone)]
pub enum DnsExpectSpec {
    One(String),
    Answers(Vec<Spanned<String>>),
    Spec(Box<DnsExpectMap>),
}

/// `expect.dns` written as a mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsExpectMap {
    pub answers: Option<Spanned<Vec<Spanned<String>>>>,
    pub rcode: Option<Spanned<String>>,
}

impl DnsExpectSpec {
    /// The answers (`None`: not written) and the rcode as written.
    pub fn parts(
        value: &Spanned<DnsExpectSpec>,
    ) -> (Option<Vec<Spanned<String>>>, Option<Spanned<String>>) {
        match &value.value {
            DnsExpectSpec::One(answer) => (
                Some(vec![Spanned::new(
                    answer.clone(),
                    value.referenced,
                    value.defined,
                )]),
                None,
            ),
            DnsExpectSpec::Answers(answers) => (Some(answers.clone()), None),
            DnsExpectSpec::Spec(map) => (
                map.answers.as_ref().map(|a| a.value.clone()),
                map.rcode.clone(),
            ),
        }
    }
}

/// One name or a list of them (pod names in `reach`, modes in `proxy`). Read it through
/// [`PodNames::names`].
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

/// Parses a case, checking its structure only (see the module documentation), and the types
/// Kubernetes gives a few values (see [`kubernetes_types`]).
///
/// The error is the one structural problem serde-saphyr stopped at: syntax, a list where a
/// mapping belongs, an unknown key. Its location is `None` only if the parser had none. A
/// syntax error inside a `[...]` or `{...}` that is never closed (or closed by the other
/// bracket) is reported at that bracket, where the mistake is, rather than where the parser
/// gave up (often the next key).
pub fn parse(text: &str) -> Result<Spanned<Case>, (Option<Location>, String)> {
    let budget = serde_saphyr::Budget::default();
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        strict_booleans: true,
        budget: Some(budget.clone()),
    };
    let case =
        serde_saphyr::from_str_with_options::<Spanned<Case>>(text, options).map_err(|err| {
            let location = err.location().and_then(Location::from_yaml);
            let err = err.without_snippet();
            if let serde_saphyr::Error::Budget { breach, .. } = &err {
                return (location, too_large(breach, &budget));
            }
            if let Some((at, message)) = unclosed_bracket(text)
                && location.is_none_or(|l| at <= l)
            {
                return (Some(at), message);
            }
            let message = serde_saphyr::UserMessageFormatter.format_message(err);
            (location, plain(&message))
        })?;
    kubernetes_types(text)?;
    let mut case = case;
    crate::plan::manifests::merge(&mut case.value)?;
    Ok(case)
}

/// Which limit a case too large or too complex for the parser exceeded, in words.
fn too_large(breach: &serde_saphyr::budget::BudgetBreach, limits: &serde_saphyr::Budget) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match breach {
        B::Nodes { .. } => format!(
            "it has more than {} YAML nodes (every value, list and mapping counts one)",
            limits.max_nodes
        ),
        B::Events { .. } => format!("it has more than {} YAML parser events", limits.max_events),
        B::Depth { .. } => format!(
            "its lists and mappings are nested more than {} deep",
            limits.max_depth
        ),
        B::Documents { .. } => format!(
            "it has more than {} YAML documents (`---`)",
            limits.max_documents
        ),
        B::Aliases { .. } => format!("it has more than {} aliases (`*name`)", limits.max_aliases),
        B::Anchors { .. } => format!("it has more than {} anchors (`&name`)", limits.max_anchors),
        B::AliasAnchorRatio { .. } => format!(
            "its aliases repeat its anchors more than {} times over",
            limits.alias_anchor_ratio_multiplier
        ),
        B::MergeKeys { .. } => format!(
            "it has more than {} merge keys (`<<`)",
            limits.max_merge_keys
        ),
        B::ScalarBytes { .. } => format!(
            "its values hold more than {} bytes of text",
            limits.max_total_scalar_bytes
        ),
        other => format!("it exceeds a limit of the YAML parser ({other:?})"),
    };
    format!("the file is too large or too complex for a case: {what}")
}

/// Where a syntax error may really be: the innermost `[` or `{` that is never closed, or is
/// closed by the other bracket, with what to say about it. A rough scan of the YAML: quoted
/// scalars, comments, block scalars (`|`, `>`), tags and anchors are skipped; a bracket
/// counts only where a value may start (after `: `, `- `, `[`, `{`, `,` or an indentation), as
/// brackets inside a plain scalar (`a[1]`) are text.
fn unclosed_bracket(text: &str) -> Option<(Location, String)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let blank = |c: Option<char>| c.is_none_or(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let flow_indicator = |c: Option<char>| matches!(c, Some(',' | '[' | ']' | '{' | '}'));
    let location = |i: usize| Location::of_byte(text.as_bytes(), chars[i].0);
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut start = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let flow = !stack.is_empty();
        match c {
            '\n' => {
                if !flow {
                    start = true;
                }
                i += 1;
                continue;
            }
            ' ' | '\t' | '\r' => {
                i += 1;
                continue;
            }
            '#' if i == 0 || blank(at(i - 1)) => {
                while i < chars.len() && chars[i].1 != '\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        if start && !(flow && matches!(c, ']' | '}' | ',')) {
            match c {
                '[' | '{' => {
                    stack.push((c, i));
                    i += 1;
                    continue;
                }
                '"' | '\'' => {
                    i += 1;
                    while i < chars.len() {
                        match chars[i].1 {
                            '\\' if c == '"' => i += 1,
                            '\'' if c == '\'' && at(i + 1) == Some('\'') => i += 1,
                            q if q == c => break,
                            _ => {}
                        }
                        i += 1;
                    }
                    i += 1;
                    start = false;
                    continue;
                }
                '-' | '?' | ':' if blank(at(i + 1)) => {
                    i += 1;
                    continue;
                }
                '&' | '!' => {
                    while i < chars.len() && !blank(at(i)) && !(flow && flow_indicator(at(i))) {
                        i += 1;
                    }
                    continue;
                }
                '|' | '>' if !flow => {
                    // A block scalar: the lines after this one indented more than it.
                    let line_start = chars[..i]
                        .iter()
                        .rposition(|&(_, c)| c == '\n')
                        .map_or(0, |p| p + 1);
                    let indent = chars[line_start..]
                        .iter()
                        .take_while(|&&(_, c)| c == ' ')
                        .count();
                    while i < chars.len() && chars[i].1 != '\n' {
                        i += 1;
                    }
                    while i < chars.len() {
                        let next = i + 1;
                        let spaces = chars[next..].iter().take_while(|&&(_, c)| c == ' ').count();
                        let end = at(next + spaces);
                        if end.is_none_or(|c| c == '\n' || c == '\r') || spaces > indent {
                            i = next + spaces;
                            while i < chars.len() && chars[i].1 != '\n' {
                                i += 1;
                            }
                        } else {
                            break;
                        }
                    }
                    continue;
                }
                _ => start = false,
            }
        }
        match c {
            ',' if flow => start = true,
            '[' | '{' if flow => {
                stack.push((c, i));
                start = true;
            }
            ']' | '}' if flow => {
                let (open, at_open) = stack.pop().expect("in flow");
                let want = if open == '[' { ']' } else { '}' };
                if c != want {
                    let close = location(i);
                    return Some((
                        location(at_open),
                        format!(
                            "unclosed bracket `{open}`: it is closed by `{c}` at line {}, column {} instead of `{want}`",
                            close.line, close.column
                        ),
                    ));
                }
                start = false;
            }
            ':' if blank(at(i + 1)) || (flow && flow_indicator(at(i + 1))) => start = true,
            _ => {}
        }
        i += 1;
    }
    let &(open, at_open) = stack.last()?;
    let want = if open == '[' { ']' } else { '}' };
    Some((
        location(at_open),
        format!("unclosed bracket `{open}`: no `{want}` closes it"),
    ))
}

/// Keys whose value is a boolean: `true` or `false`, unquoted.
const BOOLEAN_KEYS: &[&str] = &["ready", "sticky"];
/// Keys whose value is a whole number, unquoted.
const COUNT_KEYS: &[&str] = &[
    "attempts",
    "mtu",
    "subnetLen",
    "nodePort",
    "sessionAffinityTimeout",
    "vni",
    "exit",
];
/// Keys whose value is a mapping of labels, whose values are strings.
const LABEL_KEYS: &[&str] = &["labels", "selector"];

/// A whole number too large for a `u64`, `text` as written, in the words the planner uses for
/// the same key's values out of range (it cannot tell them, having only their text).
fn too_big(key: Option<&str>, list: Option<&str>, text: &str) -> String {
    use crate::plan::hops::MAX_VNI;
    use crate::plan::{MAX_AFFINITY_TIMEOUT, MAX_ATTEMPTS, MTU_RANGE, NODE_PORT_RANGE};
    match (key, list) {
        (Some("mtu"), _) => format!(
            "mtu {text} is out of range {}..={}",
            MTU_RANGE.start(),
            MTU_RANGE.end()
        ),
        (Some("attempts"), _) => format!("attempts {text} is out of range 1..={MAX_ATTEMPTS}"),
        (Some("vni"), _) => format!("vni {text} is out of range 0..={MAX_VNI} (24 bits)"),
        (Some("nodePort"), _) => format!(
            "nodePort {text} is out of range {}-{}",
            NODE_PORT_RANGE.start(),
            NODE_PORT_RANGE.end()
        ),
        (Some("sessionAffinityTimeout"), _) => format!(
            "sessionAffinityTimeout {text} is out of range 1..={MAX_AFFINITY_TIMEOUT} (seconds)"
        ),
        (Some("subnetLen"), _) => format!("subnetLen {text} is too long: at most 30"),
        (Some("exit"), _) => format!("exit {text} is out of range 0..=255 (an exit status)"),
        (Some("port" | "targetPort"), _) => format!("port `{text}` is out of range 1..=65535"),
        (None, Some("listen")) => format!("listener `{text}` is out of range 1..=65535"),
        (Some(key), _) => {
            format!("{key} {text} is out of range: too large for any number of a case")
        }
        (None, _) => format!("{text} is out of range: too large for any number of a case"),
    }
}

/// What YAML's core schema makes of a plain scalar that is not a string, if anything.
fn core_type(value: &str) -> Option<&'static str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    if matches!(
        value,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
    ) {
        return Some("a boolean");
    }
    if digits(unsigned)
        || value
            .strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        || value
            .strip_prefix("0o")
            .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b)))
    {
        return Some("a number");
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(e) => (&unsigned[..e], Some(&unsigned[e + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (digits(a) || a.is_empty())
                && (digits(b) || b.is_empty())
                && !(a.is_empty() && b.is_empty())
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if (mantissa_ok && exponent_ok)
        || matches!(unsigned, ".inf" | ".Inf" | ".INF")
        || matches!(value, ".nan" | ".NaN" | ".NAN")
    {
        return Some("a number");
    }
    None
}

/// Kubernetes' typing of the values it types, which serde-saphyr would convert leniently:
/// a label value (under `labels` or `selector`) is a string, so a plain number or boolean
/// there must be quoted; a boolean (`ready`, `sticky`) is an unquoted `true` or `false` (not
/// `"no"`, `n` or `yes`: serde-saphyr's strict booleans reject those unquoted); a count
/// (`attempts`, `mtu`, ...) is an unquoted whole number, not a string; a whole number too
/// large for any field is reported as written; and `!!binary` is no way to write a case's
/// text. The first problem in file order, if any.
pub fn kubernetes_types(text: &str) -> Result<(), (Option<Location>, String)> {
    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
    enum Frame {
        Map {
            /// The key this mapping is the value of.
            own: Option<String>,
            /// The key whose value comes next, if a value comes next.
            key: Option<String>,
        },
        Seq {
            /// The key this list is the value of.
            own: Option<String>,
        },
    }
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let at = Some(Location {
            line: span.start.line() as u64,
            column: span.start.col() as u64 + 1,
        });
        // The key this node is the value of, and whether it is a key itself.
        let (is_key, key, parent) = match stack.last() {
            Some(Frame::Map { own, key }) => (key.is_none(), key.clone(), own.clone()),
            _ => (false, None, None),
        };
        let done = |stack: &mut Vec<Frame>| {
            if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                *key = None;
            }
        };
        match event {
            Event::MappingStart(..) => stack.push(Frame::Map {
                own: key,
                key: None,
            }),
            Event::SequenceStart(..) => stack.push(Frame::Seq { own: key }),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                done(&mut stack);
            }
            Event::Alias(_) => done(&mut stack),
            Event::Scalar(value, style, _, tag) => {
                let plain = style == ScalarStyle::Plain && tag.is_none();
                let what = key.as_deref().unwrap_or("a value");
                if tag
                    .as_ref()
                    .is_some_and(|t| t.handle() == "tag:yaml.org,2002:" && t.suffix() == "binary")
                {
                    return Err((
                        at,
                        format!("{what}: `!!binary` is not taken in a case: write the text itself"),
                    ));
                }
                let unsigned = value.strip_prefix(['+', '-']).unwrap_or(&value);
                if plain
                    && !unsigned.is_empty()
                    && unsigned.bytes().all(|b| b.is_ascii_digit())
                    && unsigned.parse::<u64>().is_err()
                {
                    let in_list = match stack.last() {
                        Some(Frame::Seq { own }) => own.as_deref(),
                        _ => None,
                    };
                    return Err((at, too_big(key.as_deref(), in_list, &value)));
                }
                if is_key {
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        *key = Some(value.into_owned());
                    }
                    continue;
                }
                let quoted = if style == ScalarStyle::DoubleQuoted {
                    format!("\"{value}\"")
                } else {
                    format!("'{value}'")
                };
                if let Some(k) = key.as_deref() {
                    if parent.as_deref().is_some_and(|p| LABEL_KEYS.contains(&p))
                        && plain
                        && let Some(kind) = core_type(&value)
                    {
                        return Err((
                            at,
                            format!(
                                "label value {value} of `{k}` is {kind}: a label value is a string, write it quoted (`{k}: \"{value}\"`)"
                            ),
                        ));
                    }
                    if BOOLEAN_KEYS.contains(&k) && style != ScalarStyle::Plain {
                        return Err((
                            at,
                            format!(
                                "{k} is a boolean: expected true or false, unquoted, not the string {quoted}"
                            ),
                        ));
                    }
                    if COUNT_KEYS.contains(&k) && style != ScalarStyle::Plain {
                        return Err((
                            at,
                            format!(
                                "{k} is a whole number, not the string {quoted}: write it without quotes (`{k}: {value}`)"
                            ),
                        ));
                    }
                }
                done(&mut stack);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The parser's message in words a case author uses, on one line.
fn plain(message: &str) -> String {
    let reworded = if message.starts_with("expected mapping") {
        "expected a mapping (`key: value` entries) here"
    } else if message.starts_with("expected sequence") {
        "expected a list (`[a, b]` or lines starting with `- `) here"
    } else if message.starts_with("expected string scalar") {
        "expected a single value here, not a list or a mapping"
    } else if message == "invalid boolean" || message.starts_with("invalid boolean (") {
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

impl<'de> Deserialize<'de> for ListenEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ListenEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a listener (8080/tcp) or a mapping with `port`")
            }

            scalars_as_text!(ListenEntry::Text);

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ListenEntry, A::Error> {
                ListenSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| ListenEntry::Spec(Box::new(spec)))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

impl EndpointEntry {
    /// The entry as written: a pod name (with the entry's location) or a mapping.
    pub fn pod(entry: &Spanned<EndpointEntry>) -> Option<Spanned<String>> {
        match &entry.value {
            EndpointEntry::Pod(name) => {
                Some(Spanned::new(name.clone(), entry.referenced, entry.defined))
            }
            EndpointEntry::Spec(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for EndpointEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = EndpointEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pod name or a mapping with `ip`")
            }

            scalars_as_text!(EndpointEntry::Pod);

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndpointEntry, A::Error> {
                EndpointSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| EndpointEntry::Spec(Box::new(spec)))
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

impl<'de> Deserialize<'de> for DnsExpectSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DnsVisitor;

        impl<'de> Visitor<'de> for DnsVisitor {
            type Value = DnsExpectSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an answer, a list of answers or a mapping with `answers` and `rcode`")
            }

            scalars_as_text!(DnsExpectSpec::One);

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DnsExpectSpec, A::Error> {
                let mut answers = Vec::new();
                while let Some(answer) = seq.next_element::<Spanned<String>>()? {
                    answers.push(answer);
                }
                Ok(DnsExpectSpec::Answers(answers))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DnsExpectSpec, A::Error> {
                DnsExpectMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| DnsExpectSpec::Spec(Box::new(spec)))
            }
        }

        deserializer.deserialize_any(DnsVisitor)
    }
}

impl<'de> Deserialize<'de> for HopEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = HopEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an interface (pod-a/eth0) or a mapping describing a hop")
            }

            scalars_as_text!(HopEntry::Iface);

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HopEntry, A::Error> {
                HopSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|spec| HopEntry::Spec(Box::new(spec)))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
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
    fn services_and_listen_mappings_keep_their_locations() {
        let text = "\
pods:
  - { name: b, listen: [8080, { port: 53, protocol: udp, name: dns }] }
services:
  - name: web
    clusterIP: None
    selector: { app: web }
    ports: [{ name: http, port: 80, targetPort: http, nodePort: 30080 }]
    endpoints: [b, { ip: 192.0.2.1, port: 80, node: node1 }]
flows:
  - { name: f, attempts: 3, expect: { reach: b, sticky: true } }
";
        let case = parse(text).unwrap().value;
        let listen = case.pods.unwrap()[0].value.listen.clone().unwrap();
        assert_eq!(listen[0].value, "8080");
        let ListenEntry::Spec(spec) = &listen[1].value else {
            panic!("a mapping listener")
        };
        assert_eq!(at(spec.name.as_ref().unwrap()), (2, 64));
        let services = case.services.unwrap();
        let web = &services[0].value;
        assert_eq!(at(&services[0]), (4, 5));
        assert_eq!(web.cluster_ip.as_ref().unwrap().value, "None");
        let ports = &web.ports.as_ref().unwrap().value;
        assert_eq!(at(ports[0].value.target_port.as_ref().unwrap()), (7, 49));
        assert_eq!(at(ports[0].value.node_port.as_ref().unwrap()), (7, 65));
        let endpoints = &web.endpoints.as_ref().unwrap().value;
        assert_eq!(EndpointEntry::pod(&endpoints[0]).unwrap().value, "b");
        assert_eq!(at(&endpoints[0]), (8, 17));
        let EndpointEntry::Spec(spec) = &endpoints[1].value else {
            panic!("a mapping endpoint")
        };
        assert_eq!(at(spec.node.as_ref().unwrap()), (8, 53));
        let flow = &case.flows.unwrap()[0].value;
        assert_eq!(flow.attempts.as_ref().unwrap().value, "3");
        let sticky = flow.expect.as_ref().unwrap().value.sticky.as_ref().unwrap();
        assert!(sticky.value);
        assert_eq!(at(sticky), (10, 57));
    }

    #[rstest]
    #[case::absent("nodes: [a]\n", None)]
    #[case::empty_mapping("nodes: [a]\nexternal: {}\n", Some(((2, 11), 0)))]
    #[case::null("nodes: [a]\nexternal:\nflows: []\n", Some(((2, 9), 0)))]
    #[case::tilde("external: ~\n", Some(((1, 11), 0)))]
    #[case::listeners(
        "external:\n  listen: [8080/tcp, { port: 53, protocol: udp }]\n",
        Some(((2, 3), 2))
    )]
    fn the_external_host_is_declared_by_its_key(
        #[case] text: &str,
        #[case] expected: Option<((u64, u64), usize)>,
    ) {
        let case = parse(text).unwrap().value;
        let got = case.external_host().map(|e| {
            let listeners = e.value.listen.as_ref().map_or(0, Vec::len);
            (at(&e), listeners)
        });
        assert_eq!(got, expected);
    }

    #[test]
    fn external_listeners_keep_their_locations() {
        let text = "external: { listen: [8080/tcp, 53/udp] }\n";
        let case = parse(text).unwrap().value;
        let external = case.external_host().unwrap();
        let listen = external.value.listen.unwrap();
        assert_eq!(listen[1].value, "53/udp");
        assert_eq!(at(&listen[1]), (1, 32));
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

    #[test]
    fn dns_exec_and_their_expectations_keep_their_locations() {
        let text = "\
dns: { node: node1, clusterIP: 10.96.0.53, domain: corp.example }
pods: [{ name: a, hostname: h, subdomain: s }]
flows:
  - { name: f, to: 'web:80', expect: { dns: [svc/web, a] } }
  - { name: g, to: 'x:80', expect: { dns: { rcode: NXDOMAIN, answers: [] } } }
  - name: h
    exec: [dig, +short, 53]
    expect: { exit: 1, output: [a], outputMatches: ['^b$'] }
";
        let case = parse(text).unwrap().value;
        let dns = case.dns.unwrap().value;
        assert_eq!(at(dns.node.as_ref().unwrap()), (1, 14));
        assert_eq!(dns.cluster_ip.as_ref().unwrap().value, "10.96.0.53");
        assert_eq!(at(dns.domain.as_ref().unwrap()), (1, 52));
        let pod = &case.pods.unwrap()[0].value;
        assert_eq!(at(pod.hostname.as_ref().unwrap()), (2, 29));
        assert_eq!(at(pod.subdomain.as_ref().unwrap()), (2, 43));
        let flows = case.flows.unwrap();
        let dns_of = |i: usize| {
            flows[i]
                .value
                .expect
                .as_ref()
                .unwrap()
                .value
                .dns
                .clone()
                .unwrap()
        };
        let (answers, rcode) = DnsExpectSpec::parts(&dns_of(0));
        let answers = answers.unwrap();
        assert_eq!((answers[1].value.as_str(), at(&answers[1])), ("a", (4, 55)));
        assert!(rcode.is_none());
        let (answers, rcode) = DnsExpectSpec::parts(&dns_of(1));
        let one = parse("flows: [{ expect: { dns: svc/web } }]\n")
            .unwrap()
            .value;
        let one = one.flows.unwrap()[0]
            .value
            .expect
            .clone()
            .unwrap()
            .value
            .dns
            .unwrap();
        let (answer, _) = DnsExpectSpec::parts(&one);
        assert_eq!(
            answer.map(|a| (a[0].value.clone(), at(&a[0]))),
            Some(("svc/web".into(), (1, 26)))
        );
        assert_eq!(answers.map(|a| a.len()), Some(0));
        assert_eq!(at(&rcode.unwrap()), (5, 52));
        let exec = flows[2].value.exec.as_ref().unwrap();
        assert_eq!(at(exec), (7, 11));
        assert_eq!(exec.value[2].value, "53");
        let expect = &flows[2].value.expect.as_ref().unwrap().value;
        assert_eq!(expect.exit.as_ref().unwrap().value, "1");
        assert_eq!(
            at(&expect.output_matches.as_ref().unwrap().value[0]),
            (8, 53)
        );
    }

    #[test]
    fn hops_keep_their_locations() {
        let text = "\
flows:
  - expect:
      hops:
        - pod-a/eth0
        - { iface: node1/cni0, dir: in, src: pod-a, dst: 'svc/web:80', proxy: iptables }
        - { node: node1, chain: KUBE-SVC-*, table: nat, verdict: accept }
        - { iface: node1/eth0, vxlan: { vni: 1, port: 8472, outer: node1 -> node2 } }
        - dns: [pod-a/eth0, { node: node1, dnat: 'coredns:53' }]
      reply: [{ vxlan: {} }, { vxlan: }]
      avoid: [node1/flannel.1]
";
        let case = parse(text).unwrap().value;
        let flows = case.flows.unwrap();
        let expect = &flows[0].value.expect.as_ref().unwrap().value;
        let hops = &expect.hops.as_ref().unwrap().value;
        assert_eq!(hops.len(), 5);
        assert!(matches!(&hops[0].value, HopEntry::Iface(i) if i == "pod-a/eth0"));
        assert_eq!(at(&hops[0]), (4, 11));
        let spec = |entry: &Spanned<HopEntry>| match &entry.value {
            HopEntry::Spec(spec) => (**spec).clone(),
            HopEntry::Iface(_) => panic!("a mapping hop"),
        };
        let iface = spec(&hops[1]);
        assert_eq!(at(&hops[1]), (5, 11));
        assert_eq!(at(iface.dir.as_ref().unwrap()), (5, 37));
        assert_eq!(iface.dst.as_ref().unwrap().value, "svc/web:80");
        assert_eq!(at(iface.proxy.as_ref().unwrap()), (5, 79));
        let rule = spec(&hops[2]);
        assert_eq!(rule.chain.as_ref().unwrap().value, "KUBE-SVC-*");
        assert_eq!(at(rule.verdict.as_ref().unwrap()), (6, 66));
        let vxlan = spec(&hops[3]).vxlan().unwrap();
        assert_eq!(at(&vxlan), (7, 39));
        let outer = vxlan.value.outer.as_ref().unwrap();
        assert_eq!(
            (outer.value.as_str(), at(outer)),
            ("node1 -> node2", (7, 68))
        );
        let dns = spec(&hops[4]).dns.unwrap();
        assert_eq!(at(&dns), (8, 16));
        assert_eq!(at(&dns.value[1]), (8, 29));
        let reply = &expect.reply.as_ref().unwrap().value;
        let empty = spec(&reply[0]).vxlan().unwrap();
        assert!(empty.value.vni.is_none() && empty.value.outer.is_none());
        let null = spec(&reply[1]).vxlan().unwrap();
        assert_eq!(at(&null), (9, 37));
        assert_eq!(at(&expect.avoid.as_ref().unwrap().value[0]), (10, 15));
    }

    #[rstest]
    #[case::unknown_top_key("nodes: [a]\nbogus: 1\n", 2, 1, "unknown field `bogus`")]
    #[case::unknown_node_key("nodes:\n  - name: a\n    zone: x\n", 3, 5, "unknown field `zone`")]
    #[case::unknown_service_key(
        "services:\n  - { name: a, externalIPs: [1.2.3.4] }\n",
        2,
        16,
        "unknown field `externalIPs`"
    )]
    #[case::unknown_service_port_key(
        "services:\n  - { name: a, ports: [{ port: 80, appProtocol: http }] }\n",
        2,
        36,
        "unknown field `appProtocol`"
    )]
    #[case::unknown_listener_key(
        "pods: [{ listen: [{ port: 80, host: x }] }]\n",
        1,
        31,
        "unknown field `host`"
    )]
    #[case::unknown_endpoint_key(
        "services: [{ endpoints: [{ ip: 1.2.3.4, zone: a }] }]\n",
        1,
        41,
        "unknown field `zone`"
    )]
    #[case::unknown_expect_key(
        "flows:\n  - expect: { reach: a, via: b }\n",
        2,
        25,
        "unknown field `via`"
    )]
    #[case::unknown_external_key(
        "external: { listen: [80], address: 1.2.3.4 }\n",
        1,
        27,
        "unknown field `address`"
    )]
    #[case::external_list("external: [80]\n", 1, 11, "expected a mapping")]
    #[case::unknown_dns_key(
        "dns: { node: a, upstream: 1.1.1.1 }\n",
        1,
        17,
        "unknown field `upstream`"
    )]
    #[case::unknown_dns_expect_key(
        "flows: [{ expect: { dns: { rcode: NOERROR, ttl: 30 } } }]\n",
        1,
        44,
        "unknown field `ttl`"
    )]
    #[case::dns_expect_sequence_of_lists(
        "flows: [{ expect: { dns: [[a]] } }]\n",
        1,
        27,
        "expected a single value"
    )]
    #[case::unknown_hop_key(
        "flows: [{ expect: { hops: [{ iface: a/eth0, via: b }] } }]\n",
        1,
        45,
        "unknown field `via`, expected one of iface, dir, src, dst, node, dnat, snat, undnat, unsnat, chain, table, verdict, proxy, vxlan, dns"
    )]
    #[case::unknown_vxlan_key(
        "flows: [{ expect: { avoid: [{ vxlan: { vni: 1, group: x } }] } }]\n",
        1,
        48,
        "unknown field `group`, expected one of vni, port, outer"
    )]
    #[case::hops_mapping(
        "flows: [{ expect: { hops: { iface: a/eth0 } } }]\n",
        1,
        27,
        "expected a list"
    )]
    #[case::hop_list(
        "flows: [{ expect: { reply: [[a/eth0]] } }]\n",
        1,
        29,
        "expected an interface"
    )]
    #[case::vxlan_scalar(
        "flows: [{ expect: { hops: [{ vxlan: 1 }] } }]\n",
        1,
        37,
        "expected a mapping"
    )]
    #[case::exec_scalar("flows: [{ exec: dig }]\n", 1, 17, "expected a list")]
    #[case::syntax("nodes: [a\n", 1, 8, "unclosed bracket")]
    #[case::list_at_top("- a\n- b\n", 1, 1, "expected a mapping")]
    #[case::scalar_for_list("nodes: 3\n", 1, 8, "expected a list")]
    #[case::mapping_for_name("name: {a: 1}\n", 1, 7, "expected a single value")]
    #[case::not_a_boolean("pods: [{ ready: maybe }]\n", 1, 17, "expected true or false")]
    #[case::unclosed_bracket_before_the_next_key(
        "pods:\n  - name: a\n    listen: [80/tcp\nflows: []\n",
        3,
        13,
        "unclosed bracket `[`: no `]` closes it"
    )]
    #[case::bracket_closed_by_a_brace(
        "pods:\n  - { name: a, listen: [80/tcp }\nflows: []\n",
        2,
        24,
        "unclosed bracket `[`: it is closed by `}` at line 2, column 32 instead of `]`"
    )]
    #[case::brackets_in_text_and_quotes_are_not_brackets(
        "description: a [b c[d # [e\nname: 'x [y'\npods: [{ name: a, listen: [80 }]\n",
        3,
        27,
        "unclosed bracket `[`"
    )]
    #[case::integer_too_large_as_written(
        "flows: [{ attempts: 99999999999999999999999 }]\n",
        1,
        21,
        "attempts 99999999999999999999999 is out of range 1..=100"
    )]
    #[case::listener_too_large_as_written(
        "pods: [{ listen: [99999999999999999999999] }]\n",
        1,
        19,
        "listener `99999999999999999999999` is out of range 1..=65535"
    )]
    #[case::name_too_large_as_written(
        "nodes: [99999999999999999999999]\n",
        1,
        9,
        "99999999999999999999999 is out of range"
    )]
    #[case::quoted_no_is_no_boolean("pods: [{ ready: \"no\" }]\n", 1, 17, "expected true or false")]
    #[case::n_is_no_boolean("pods: [{ ready: n }]\n", 1, 17, "expected true or false")]
    #[case::yes_is_no_boolean(
        "flows: [{ expect: { sticky: yes } }]\n",
        1,
        29,
        "expected true or false"
    )]
    #[case::quoted_true_is_a_string(
        "pods: [{ ready: \"true\" }]\n",
        1,
        17,
        "ready is a boolean: expected true or false, unquoted, not the string \"true\""
    )]
    #[case::quoted_count(
        "flows: [{ attempts: \"5\" }]\n",
        1,
        21,
        "attempts is a whole number, not the string \"5\": write it without quotes (`attempts: 5`)"
    )]
    #[case::quoted_mtu(
        "cluster: { mtu: '1500' }\n",
        1,
        17,
        "mtu is a whole number, not the string '1500'"
    )]
    #[case::integer_label_value(
        "pods: [{ labels: { app: web, tier: 5 } }]\n",
        1,
        36,
        "label value 5 of `tier` is a number: a label value is a string, write it quoted (`tier: \"5\"`)"
    )]
    #[case::boolean_selector_value(
        "services: [{ selector: { canary: true } }]\n",
        1,
        34,
        "label value true of `canary` is a boolean"
    )]
    #[case::float_label_value("pods: [{ labels: { version: 1.0 } }]\n", 1, 29, "is a number")]
    #[case::binary_string(
        "pods: [{ name: !!binary YQ== }]\n",
        1,
        25,
        "name: `!!binary` is not taken in a case: write the text itself"
    )]
    #[case::binary_label_value("pods: [{ labels: { app: !!binary d2Vi } }]\n", 1, 34, "`!!binary`")]
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

    #[test]
    fn kubernetes_types_accepted_as_kubernetes_takes_them() {
        let case = parse(
            "name: no\npods:\n  - { name: a, ready: true, labels: { app: \"5\", tier: web, on: yes, v: !!str 1 } }\n  - { name: b, ready: False }\nflows: [{ name: f, attempts: 5 }]\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
        .value;
        // With strict booleans, `no` is a name, not `false`.
        assert_eq!(case.name.unwrap().value, "no");
        let pods = case.pods.unwrap();
        assert!(pods[0].value.ready.as_ref().unwrap().value);
        assert!(!pods[1].value.ready.as_ref().unwrap().value);
        let labels = &pods[0].value.labels.as_ref().unwrap().value;
        assert_eq!(labels["app"], "5");
        assert_eq!(labels["on"], "yes");
        assert_eq!(labels["v"], "1");
        assert_eq!(
            case.flows.unwrap()[0]
                .value
                .attempts
                .as_ref()
                .unwrap()
                .value,
            "5"
        );
    }

    #[test]
    fn a_file_too_large_says_which_limit_it_exceeds() {
        let mut text = String::from("flows:\n");
        for _ in 0..90_000 {
            text.push_str("  - { name: f }\n");
        }
        let (location, message) = parse(&text).unwrap_err();
        assert!(location.is_some());
        assert_eq!(
            message,
            "the file is too large or too complex for a case: it has more than 250000 YAML nodes (every value, list and mapping counts one)"
        );
    }
}
