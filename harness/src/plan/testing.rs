//! Test helpers shared by the tests of the planner's modules (`dns`, `hops`, `services`, and
//! the sections' in `tests`); each of those reads its cases as a file of its own (`file`).

use std::net::Ipv4Addr;
use std::path::Path;

use super::{Plan, load_str};
use crate::diag::{Diagnostic, Location};

/// The plan of `yaml` read as `file`; panics with the errors if there are any.
pub(crate) fn plan(file: &str, yaml: &str) -> Plan {
    match load_str(Path::new(file), yaml) {
        Ok(plan) => plan,
        Err(err) => panic!("unexpected errors:\n{err}"),
    }
}

/// The errors of `yaml` read as `file`; panics if it plans.
pub(crate) fn diagnostics(file: &str, yaml: &str) -> Vec<Diagnostic> {
    match load_str(Path::new(file), yaml) {
        Ok(plan) => panic!("expected errors, got a plan:\n{plan}"),
        Err(err) => err.diagnostics().to_vec(),
    }
}

pub(crate) fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

/// Where each of `found` is, as (line, column); panics on one without a location.
pub(crate) fn locations(found: &[Diagnostic]) -> Vec<(u64, u64)> {
    found
        .iter()
        .map(|d| d.location.map(|l| (l.line, l.column)).unwrap())
        .collect()
}

/// Asserts that `found` is one diagnostic, at `line`:`column`; returns them shown.
pub(crate) fn assert_one_at(found: &[Diagnostic], line: u64, column: u64) -> Vec<String> {
    let all: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
    assert_eq!(found.len(), 1, "{all:#?}");
    assert_eq!(
        found[0].location,
        Some(Location { line, column }),
        "{all:#?}"
    );
    all
}

/// [`assert_one_at`], and the diagnostic's message contains `message`.
pub(crate) fn assert_one_saying(
    found: &[Diagnostic],
    line: u64,
    column: u64,
    message: &str,
) -> Vec<String> {
    let all = assert_one_at(found, line, column);
    assert!(found[0].message.contains(message), "{all:#?}");
    all
}

/// [`assert_one_saying`] for the errors of `yaml` read as `file`, and the diagnostic is
/// shown as `file:line:column: ...`.
pub(crate) fn assert_one_error(file: &str, yaml: &str, line: u64, column: u64, message: &str) {
    let all = assert_one_saying(&diagnostics(file, yaml), line, column, message);
    assert!(
        all[0].starts_with(&format!("{file}:{line}:{column}: ")),
        "{all:#?}"
    );
}

/// Deterministic random edits of a valid case (cut, insert one of `pieces`, duplicate),
/// `rounds` times from `seed` (xorshift64, so a failure reproduces): none may panic, and
/// every error they cause must be reported with a location.
pub(crate) fn assert_edits_stay_located(valid: &str, pieces: &[&str], seed: u64, rounds: usize) {
    let chars: Vec<char> = valid.chars().collect();
    let mut seed = seed;
    let mut next = |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    for round in 0..rounds {
        let mut text = chars.clone();
        for _ in 0..=next(3) {
            let at = next(text.len() + 1);
            match next(3) {
                0 => {
                    let end = (at + next(8)).min(text.len());
                    text.drain(at..end);
                }
                1 => {
                    let piece = pieces[next(pieces.len())];
                    text.splice(at..at, piece.chars());
                }
                _ => {
                    let end = (at + next(40)).min(text.len());
                    let copy: Vec<char> = text[at..end].to_vec();
                    text.splice(at..at, copy);
                }
            }
        }
        let text: String = text.into_iter().collect();
        if let Err(err) = load_str(Path::new("cases/mutated.yaml"), &text) {
            for d in err.diagnostics() {
                assert!(d.location.is_some(), "round {round}: unlocated {d}\n{text}");
            }
        }
    }
}
