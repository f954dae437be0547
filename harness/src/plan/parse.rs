//! Name checks and value parsing shared by the sections: DNS-1123 labels, port names, flow
//! names, ports, durations, CIDRs and addresses, and how values read in messages.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_saphyr::Spanned;

use super::context::{NodeDraft, Planner, YamlLocation};

/// Longest timeout a flow may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest pod, namespace and flow name (a DNS-1123 label).
pub const MAX_NAME: usize = 63;

impl Planner {
    pub(super) fn cidr(&mut self, what: &str, value: &Spanned<String>) -> Option<Ipv4Net> {
        let text = value.value.as_str();
        match text.parse::<Ipv4Net>() {
            Ok(cidr) if cidr.addr() != cidr.network() => {
                self.error(
                    value.referenced,
                    format!(
                        "{what} {text} has host bits set: did you mean {}?",
                        cidr.trunc()
                    ),
                );
                None
            }
            Ok(cidr) => Some(cidr),
            Err(_) => {
                self.error(
                    value.referenced,
                    format!(
                        "{what} {} is not an IPv4 CIDR (like 10.244.0.0/16)",
                        quoted(text)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn address(&mut self, what: &str, value: &Spanned<String>) -> Option<Ipv4Addr> {
        let text = value.value.as_str();
        match text.parse::<Ipv4Addr>() {
            Ok(addr) => {
                if let Some(problem) =
                    super::cluster::special_range_problem(what, Ipv4Net::from(addr))
                {
                    self.error(value.referenced, problem);
                    return None;
                }
                Some(addr)
            }
            Err(_) => {
                let hint = if text.contains('/') {
                    " (an address, without a prefix length)"
                } else {
                    " (like 10.244.1.5)"
                };
                self.error(
                    value.referenced,
                    format!("{what} {} is not an IPv4 address{hint}", quoted(text)),
                );
                None
            }
        }
    }

    pub(super) fn number(&mut self, what: &str, value: &Spanned<String>) -> Option<u64> {
        let text = value.value.as_str();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // All digits but too big for u64: out of every range we have.
            return Some(text.parse().unwrap_or(u64::MAX));
        }
        self.error(
            value.referenced,
            format!("{what} {} is not a whole number", quoted(text)),
        );
        None
    }
}

fn label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

impl Planner {
    /// Records `message` about the name `name` (a DNS-1123 label of at most `max` characters):
    /// at the first character a label cannot hold when the name has one and is written as it
    /// reads (plain or quoted without escapes), so the location points at that character;
    /// at the name otherwise.
    pub(super) fn name_error(&mut self, name: &Spanned<String>, max: usize, message: String) {
        let at = name.referenced;
        let chars = name.value.chars().count() as u64;
        let opening = match at.span().len() {
            len if len == chars => Some(0),
            len if len == chars + 2 => Some(1),
            _ => None,
        };
        let bad = name.value.chars().position(|c| !label_char(c));
        match (opening, bad, crate::diag::Location::from_yaml(at)) {
            (Some(opening), Some(index), Some(start))
                if chars as usize <= max && !name.value.contains(['\n', '\r']) =>
            {
                let column = start.column + opening + index as u64;
                self.found.error_at(
                    Some(crate::diag::Location {
                        line: start.line,
                        column,
                    }),
                    message,
                );
            }
            _ => self.error(at, message),
        }
    }
}

/// Why `name` is not a DNS-1123 label of at most `max` characters, if it is not.
pub(super) fn dns_label_problem(name: &str, max: usize) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    let length = name.chars().count();
    if length > max {
        return Some(format!("is {length} characters long, more than {max}"));
    }
    if let Some(bad) = name.chars().find(|&c| !label_char(c)) {
        let which = if bad.is_ascii() { "" } else { "non-ASCII " };
        return Some(format!(
            "is not a DNS-1123 label: use lowercase letters, digits and '-' (the {which}character `{}` is not one)",
            bad.escape_debug()
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(
            "is not a DNS-1123 label: it must start and end with a letter or digit".to_owned(),
        );
    }
    None
}

/// Why `name` is not an IANA service name (what Kubernetes requires of container port names
/// and of a `targetPort` given by name), if it is not: at most 15 lowercase letters, digits and
/// '-', at least one letter, no '-' at either end or twice in a row.
pub(super) fn iana_svc_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    let length = name.chars().count();
    if length > 15 {
        return Some(format!(
            "is {length} characters long, more than 15 (a port name is an IANA service name)"
        ));
    }
    let rule = "is not a port name: use lowercase letters, digits and '-' (at least one letter, no '-' at either end or twice in a row)";
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || !name.bytes().any(|b| b.is_ascii_lowercase())
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Some(rule.to_owned());
    }
    None
}

/// Flow names end up in test names and report file names: keep them plain.
pub(super) fn flow_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_owned());
    }
    let length = name.chars().count();
    if length > MAX_NAME {
        return Some(format!("is {length} characters long, more than {MAX_NAME}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("may only hold letters, digits, '-', '_' and '.'".to_owned());
    }
    None
}

/// A port number `1..=65535`.
pub(super) fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a port number".to_owned());
    }
    match text.parse::<u64>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err("is out of range 1..=65535".to_owned()),
    }
}

/// `500ms` or `2s`: more than zero, at most [`MAX_TIMEOUT`].
pub(super) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let (digits, millis_per_unit) = if let Some(digits) = text.strip_suffix("ms") {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix('s') {
        (digits, 1000)
    } else {
        return Err("is not a duration: write milliseconds (500ms) or seconds (2s)".to_owned());
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a duration: write milliseconds (500ms) or seconds (2s)".to_owned());
    }
    let millis = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit));
    match millis {
        Some(0) => Err("must be more than zero".to_owned()),
        Some(ms) if Duration::from_millis(ms) <= MAX_TIMEOUT => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "is longer than the maximum, {}s",
            MAX_TIMEOUT.as_secs()
        )),
    }
}

/// A value from the file, quoted for a message: escaped, and cut when very long.
pub(super) fn quoted(text: &str) -> String {
    const LIMIT: usize = 64;
    let escaped: String = text.escape_debug().collect();
    if escaped.chars().count() > LIMIT {
        format!("`{}...`", escaped.chars().take(LIMIT).collect::<String>())
    } else {
        format!("`{escaped}`")
    }
}

/// A list of known names for "unknown ..." messages; long lists are cut.
pub(super) fn known_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    const LIMIT: usize = 10;
    let mut names: Vec<&str> = names.collect();
    // Keep the first of duplicates (already reported), in declared order.
    let mut seen = HashSet::new();
    names.retain(|name| seen.insert(*name));
    if names.is_empty() {
        return "none".to_owned();
    }
    // Escaped: a declared name may hold a newline or a control character (already reported).
    let mut shown = names
        .iter()
        .take(LIMIT)
        .map(|name| name.escape_debug().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIMIT {
        shown.push_str(&format!(" and {} more", names.len() - LIMIT));
    }
    shown
}

pub(super) fn node_label(node: &NodeDraft) -> String {
    node.name
        .clone()
        .unwrap_or_else(|| format!("the node at {}", at_text(node.at)))
}

pub(super) fn at_text(at: YamlLocation) -> String {
    format!("{}:{}", at.line(), at.column())
}
