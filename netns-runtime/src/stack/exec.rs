//! Running a user's command for a driver: inside a namespace of the cluster, with the
//! environment the driver gives, a timeout, and its output bounded.

use std::collections::BTreeMap;

use crate::netns::{Netns, command_in};
use crate::stack::{DriverError, ExecSpec};
use crate::tool::{self, Finished, ToolError};

/// The most of a command's standard error an error message quotes.
const STDERR_QUOTED: usize = 4096;

/// Replaces every `{key}` of `argv` by its value; unknown placeholders are left as written.
pub fn expand(argv: &[String], values: &BTreeMap<&str, String>) -> Vec<String> {
    argv.iter()
        .map(|arg| {
            let mut out = arg.clone();
            for (key, value) in values {
                out = out.replace(&format!("{{{key}}}"), value);
            }
            out
        })
        .collect()
}

/// Runs `spec` inside `ns` with `env` (and the stack's own environment) and the placeholders
/// `values`; a start failure, a timeout or a non-zero exit is an error naming `layer`, the
/// program and `subject` (the node or pod it ran for).
pub fn run(
    spec: &ExecSpec,
    layer: &'static str,
    subject: &str,
    ns: &Netns,
    env: &BTreeMap<String, String>,
    values: &BTreeMap<&str, String>,
) -> Result<Finished, DriverError> {
    let argv = expand(&spec.argv, values);
    let Some((program, args)) = argv.split_first() else {
        return Err(DriverError::Exec {
            layer,
            program: String::new(),
            subject: subject.to_string(),
            problem: "the command is empty".into(),
        });
    };
    let resolved = if program.contains('/') && !program.starts_with('/') {
        spec.dir.join(program)
    } else {
        program.into()
    };
    let mut command = command_in(ns, &resolved);
    command.current_dir(&spec.dir);
    command.envs(spec.env.iter()).envs(env.iter());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fail = |problem: String| DriverError::Exec {
        layer,
        program: program.clone(),
        subject: subject.to_string(),
        problem,
    };
    let done = tool::run_command(command, program, &args, None, spec.timeout)
        .map_err(|e| fail(problem_of(e)))?;
    if done.code != Some(0) {
        return Err(fail(format!(
            "{}{}",
            done.status,
            quoted_stderr(&done.stderr)
        )));
    }
    Ok(done)
}

/// What went wrong with a command that did not run to its end, in a driver's words.
pub fn problem_of(e: ToolError) -> String {
    match e {
        ToolError::Timeout { timeout, .. } => format!("killed after {timeout:?} without finishing"),
        ToolError::Spawn { source, .. } => format!("could not start: {source}"),
        other => other.to_string(),
    }
}

/// A command's standard error for an error message: after a newline, trimmed and bounded.
pub fn quoted_stderr(stderr: &str) -> String {
    let text = stderr.trim_end();
    if text.is_empty() {
        return "; it wrote nothing on stderr".into();
    }
    let mut end = text.len().min(STDERR_QUOTED);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < text.len() { "\n..." } else { "" };
    format!("; its stderr:\n{}{more}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_kept() {
        let values = BTreeMap::from([("node", "node1".to_string())]);
        let argv = vec!["setup-{node}".to_string(), "{other}".to_string()];
        assert_eq!(expand(&argv, &values), ["setup-node1", "{other}"]);
    }

    #[test]
    fn stderr_is_bounded() {
        let long = "x".repeat(STDERR_QUOTED + 10);
        let q = quoted_stderr(&long);
        assert!(q.ends_with("\n..."));
        assert_eq!(quoted_stderr("  \n"), "; it wrote nothing on stderr");
    }
}
