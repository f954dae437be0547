//! What `podpath run` prints on standard output, for people or for programs.
//!
//! For people (`--format human`, the default): one line per trial as it ends, with its time; on
//! a terminal, in colour (unless `NO_COLOR` is set) and with a progress line on standard error
//! while trials run; at the end every failure in full, the summary, and last, where the eye
//! lands, one line per failure with its cause (as nextest closes its runs).
//!
//! For programs (`--format json`): one JSON object per line, per trial as it ends
//! (`{"type":"trial","name":...,"file":...,"outcome":"passed"|"failed"|"ignored",
//! "duration_ms":...,...}`), then `{"type":"summary",...}`. Nothing else goes to standard output.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cause::cause_line;
use crate::suite::RevisionChange;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "human" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown format {s:?}: expected human or json")),
        }
    }
}

/// Whether colour is wanted on a stream that is (or is not) a terminal: only on a terminal,
/// never with `NO_COLOR` set to anything non-empty (no-color.org) or `TERM=dumb`.
pub fn colour_wanted(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// A trial's time as people read it: `812µs`, `12.3ms`, `1.24s`.
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// The output of one run.
pub struct RunOutput {
    format: Format,
    colour: bool,
    progress: bool,
    total: usize,
    ended: usize,
    started: Instant,
    failures: Vec<(String, String, Duration)>,
    counts: (usize, usize, usize),
    progress_shown: bool,
}

impl RunOutput {
    /// For a run of `total` trials, on this process's standard output and error.
    pub fn new(format: Format, total: usize) -> RunOutput {
        let human = format == Format::Human;
        RunOutput::with(
            format,
            total,
            human && colour_wanted(std::io::stdout().is_terminal()),
            human && std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
        )
    }

    /// The same with colour and the progress line decided by the caller (tests).
    pub fn with(format: Format, total: usize, colour: bool, progress: bool) -> RunOutput {
        RunOutput {
            format,
            colour,
            progress,
            total,
            ended: 0,
            started: Instant::now(),
            failures: Vec::new(),
            counts: (0, 0, 0),
            progress_shown: false,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn clear_progress(&mut self) {
        if self.progress_shown {
            eprint!("\r\x1b[K");
            self.progress_shown = false;
        }
    }

    /// A trial starts: the progress line says which, and how far the run is (terminal only).
    pub fn start(&mut self, name: &str) {
        if self.progress {
            self.clear_progress();
            eprint!(
                "\r\x1b[K[{}/{}] {} {name}",
                self.ended + 1,
                self.total.max(self.ended + 1),
                human_duration(self.started.elapsed())
            );
            let _ = std::io::stderr().flush();
            self.progress_shown = true;
        }
    }

    fn line(&mut self, text: String, object: serde_json::Value) {
        self.clear_progress();
        self.ended += 1;
        match self.format {
            Format::Human => println!("{text}"),
            Format::Json => println!("{object}"),
        }
    }

    /// A trial passed; `detail` is what it observed.
    pub fn passed(&mut self, name: &str, file: &str, detail: Option<&str>, d: Duration) {
        self.passed_after(name, file, detail, d, None);
    }

    /// A flow passed that first moved the cluster to its revision (`change`): the change and
    /// its time to the datapath are part of the line (`"change"` in JSON).
    pub fn passed_after(
        &mut self,
        name: &str,
        file: &str,
        detail: Option<&str>,
        d: Duration,
        change: Option<&RevisionChange>,
    ) {
        self.counts.0 += 1;
        let detail_text = detail.map(|t| format!(": {t}")).unwrap_or_default();
        let change_text = change
            .map(|c| format!(" {}", self.paint("2", &format!("({})", c.summary()))))
            .unwrap_or_default();
        let text = format!(
            "{}   {name}{detail_text}{change_text} {}",
            self.paint("32", "ok"),
            self.paint("2", &format!("[{}]", human_duration(d)))
        );
        let object = json!({"type": "trial", "name": name, "file": file, "outcome": "passed",
            "duration_ms": millis(d), "detail": detail, "change": change.map(change_json)});
        self.line(text, object);
    }

    /// A trial failed with `text`.
    pub fn failed(&mut self, name: &str, file: &str, text: &str, d: Duration) {
        self.failed_after(name, file, text, d, None);
    }

    /// A flow failed that first moved the cluster to its revision (`change`).
    pub fn failed_after(
        &mut self,
        name: &str,
        file: &str,
        text: &str,
        d: Duration,
        change: Option<&RevisionChange>,
    ) {
        match change {
            Some(c) => {
                let text = format!("{}\ncluster:       {}", text.trim_end(), c.summary());
                self.failed_as(name, file, &text, Some(d));
            }
            None => self.failed_as(name, file, text, Some(d)),
        }
    }

    /// A case that does not load: a failing trial named after it, built never.
    pub fn invalid(&mut self, name: &str, file: &str, text: &str) {
        self.failed_as(name, file, text, None);
    }

    fn failed_as(&mut self, name: &str, file: &str, text: &str, d: Option<Duration>) {
        self.counts.1 += 1;
        let cause = cause_line(text);
        let invalid = d.is_none();
        let line = match d {
            Some(d) => format!(
                "{} {name}: {cause} {}",
                self.paint("1;31", "FAIL"),
                self.paint("2", &format!("[{}]", human_duration(d)))
            ),
            None => format!(
                "{} {name} (invalid case): {cause}",
                self.paint("1;31", "FAIL")
            ),
        };
        let d = d.unwrap_or_default();
        let object = json!({"type": "trial", "name": name, "file": file, "outcome": "failed",
            "duration_ms": millis(d), "cause": cause, "failure": text,
            "invalidCase": invalid});
        self.failures.push((name.to_string(), text.to_string(), d));
        self.line(line, object);
    }

    /// A trial was not run, for `reason`.
    pub fn ignored(&mut self, name: &str, file: &str, reason: &str) {
        self.counts.2 += 1;
        let text = format!("{} {name}: {reason}", self.paint("33", "ignored"));
        let object = json!({"type": "trial", "name": name, "file": file, "outcome": "ignored",
            "duration_ms": 0, "reason": reason});
        self.line(text, object);
    }

    /// (passed, failed, ignored) so far.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.counts
    }

    /// The end of the run: failures in full, the summary, and the closing list of failures
    /// with their causes.
    pub fn finish(&mut self) {
        self.clear_progress();
        let (passed, failed, ignored) = self.counts;
        let elapsed = self.started.elapsed();
        if self.format == Format::Json {
            println!(
                "{}",
                json!({"type": "summary", "passed": passed, "failed": failed,
                    "ignored": ignored, "duration_ms": millis(elapsed)})
            );
            return;
        }
        if !self.failures.is_empty() {
            println!("\nfailures:");
            for (name, text, _) in &self.failures {
                println!("\n{}:\n{}", self.paint("1", name), text.trim_end());
            }
        }
        let failed_text = format!("{failed} failed");
        let failed_text = if failed > 0 {
            self.paint("1;31", &failed_text)
        } else {
            failed_text
        };
        println!(
            "\n{passed} passed, {failed_text}, {ignored} ignored in {}",
            human_duration(elapsed)
        );
        for (name, text, d) in &self.failures {
            println!(
                "    {} {} {name}: {}",
                self.paint("1;31", "FAIL"),
                self.paint("2", &format!("[{:>8}]", human_duration(*d))),
                self.paint("1", cause_line(text))
            );
        }
    }
}

/// A revision change as JSON: `{"from":1,"to":2,"changes":["pod/default/b ready=false"],
/// "programmed_ms":12.3}`.
fn change_json(c: &RevisionChange) -> serde_json::Value {
    json!({"from": c.from, "to": c.to,
        "changes": c.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "programmed_ms": millis(c.programmed)})
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(!colour_wanted(false));
        // SAFETY: this test is the only one in the crate reading or writing NO_COLOR.
        unsafe { std::env::set_var("NO_COLOR", "1") };
        assert!(!colour_wanted(true));
        unsafe { std::env::remove_var("NO_COLOR") };
    }

    #[test]
    fn durations_read_as_people_read_them() {
        assert_eq!(human_duration(Duration::from_micros(812)), "812µs");
        assert_eq!(human_duration(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(human_duration(Duration::from_millis(1_240)), "1.24s");
    }
}
