//! The one line of a failure a reader needs first: its cause. A flow's verdict renders as
//! `flow:` / `expected:` / `observed:` / `cause:` lines (`verdict::Verdict::render`); the cause
//! is what the JUnit `<failure message>` carries and what the closing list of `podpath run`
//! shows.

/// The cause line of a failure's `text`: the value of its `cause:` line; else its
/// `observed:` line (as `observed: ...`); else its first non-empty line (an invalid case's
/// located error, a snapshot's "no snapshot ..." or "... differs").
pub fn cause_line(text: &str) -> &str {
    let labelled = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(cause) = labelled("cause:") {
        return cause;
    }
    if let Some(line) = text.lines().find(|l| l.starts_with("observed:")) {
        return line.trim_end();
    }
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::cause_line;

    #[test]
    fn the_cause_line_is_the_cause_then_what_was_observed_then_the_first_line() {
        let verdict = "flow:     pod-a -> 10.244.2.3:8080/tcp\nexpected: answered by pod-b\n\
                       observed: no answer\ncause:    dropped at node1/cni0\nartifacts: /x\n";
        assert_eq!(cause_line(verdict), "dropped at node1/cni0");
        let no_cause = "flow:     a -> b\nexpected: refused\nobserved: answered by pod-b\n";
        assert_eq!(cause_line(no_cause), "observed: answered by pod-b");
        assert_eq!(
            cause_line("\ncases/bad.yaml:4:26: x\nmore"),
            "cases/bad.yaml:4:26: x"
        );
    }
}
