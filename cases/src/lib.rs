//! The podpath conformance suite, embedded: the case files of this directory and their
//! snapshots in `snapshots/`, as they were when the crate was built. `podpath run` runs it when
//! there is no `cases/` directory where it is started; `podpath suite export DIR` writes it out.

include!(concat!(env!("OUT_DIR"), "/suite.rs"));

/// The case files: (path below the suite, contents), sorted by path.
pub fn cases() -> impl Iterator<Item = (&'static str, &'static str)> {
    FILES
        .iter()
        .copied()
        .filter(|(path, _)| !path.starts_with("snapshots/"))
}

/// A snapshot by file name (`icmp__node1.snap`).
pub fn snapshot(name: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(path, _)| path.strip_prefix("snapshots/") == Some(name))
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_suite_and_its_snapshots_are_embedded() {
        assert!(super::cases().any(|(p, _)| p == "services/clusterip.yaml"));
        assert!(super::snapshot("icmp__node1.snap").is_some_and(|s| s.contains("input_file")));
        assert!(super::FILES.iter().all(|(p, _)| !p.ends_with(".snap.new")));
    }
}
