//! podpath: the case format, the planner, the runner and the CLI over `netns-runtime`.
