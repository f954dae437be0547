//! Strict mode (`podpath run --strict`, `PODPATH_STRICT=1`), for CI: a trial that cannot run
//! because podpath lacks the privileges to build its sandbox fails instead of being reported
//! ignored. Trials ignored because the stack under test cannot give what they need stay ignored.

/// The variable that asks for strict mode.
pub const STRICT_ENV: &str = "PODPATH_STRICT";

/// Whether `PODPATH_STRICT` asks for strict mode: set, and not empty, `0` or `false`.
pub fn from_env() -> bool {
    std::env::var(STRICT_ENV).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}
