//! What a run leaves under `reports/` (to be written): JUnit XML for the whole run, and for a
//! failing flow (every flow with `--artifacts all`) a directory with its pcapng, its journey in
//! Markdown with a mermaid sequence diagram, the nodes' rule tables and conntrack entries.

use std::time::Duration;

use netns_runtime::capture::Captured;

/// How one trial ended, for the JUnit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialRecord {
    /// The trial's name: `<case>[::<mode>]::<flow>` or `...::snapshot::<node>`.
    pub name: String,
    /// The case file it comes from, as given to the run.
    pub file: String,
    pub duration: Duration,
    pub outcome: TrialOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutcome {
    Passed,
    /// The failure as the trial reported it.
    Failed(String),
    /// Not run, and why.
    Ignored(String),
}

/// Everything observed of one flow that goes into its artifact directory.
#[derive(Debug, Clone, Default)]
pub struct FlowArtifacts {
    /// Every frame captured, ordered by kernel timestamp (one pcapng interface per capture
    /// point, named `netns/iface`).
    pub captures: Vec<Captured>,
    /// The capture points, including those that saw nothing.
    pub points: Vec<netns_runtime::capture::CapturePoint>,
    /// The journey walked step by step, with its mermaid `sequenceDiagram` (`journey.md`).
    pub journey_markdown: String,
    /// Each node's rule tables, normalised, as (node, text).
    pub rules: Vec<(String, String)>,
    /// Each node's conntrack entries after the flow, as (node, text).
    pub conntrack: Vec<(String, String)>,
}
