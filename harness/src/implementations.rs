//! The real implementations podpath runs against (kube-proxy, CoreDNS, the CNI plugins,
//! flannel's CNI plugin): which versions, and where their binaries are. Everything comes from
//! `harness/implementations/pinned`, the one file that also drives `scripts/build-implementations`.
//!
//! A Go-built implementation lives in the cache,
//! `${PODPATH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpath}/impl/<name>-<version>/`, as the
//! script lays it out; one that a Debian package installs lives in the directory its `from`
//! column names.

use std::path::{Path, PathBuf};

/// `harness/implementations/pinned`, as compiled in.
pub const PINNED: &str = include_str!("../implementations/pinned");

/// One line of `harness/implementations/pinned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implementation {
    pub name: &'static str,
    /// As pinned: a Go module version (`v1.34.4`) or a Debian upstream version (`1.1.1`).
    pub version: &'static str,
    /// The Go module it is built from, or the directory a Debian package installs it into.
    pub from: &'static str,
    pub binaries: Vec<&'static str>,
}

impl Implementation {
    /// Built by `scripts/build-implementations` (rather than installed by a Debian package).
    pub fn is_built(&self) -> bool {
        !self.from.starts_with('/')
    }

    /// The directory holding the binaries.
    pub fn dir(&self) -> PathBuf {
        if self.is_built() {
            cache_dir().join(format!("{}-{}", self.name, self.version))
        } else {
            PathBuf::from(self.from)
        }
    }

    pub fn binary(&self, binary: &str) -> PathBuf {
        self.dir().join(binary)
    }
}

/// Every pinned implementation, in the file's order.
pub fn pinned() -> Vec<Implementation> {
    parse(PINNED)
}

/// The pinned implementation called `name`.
pub fn get(name: &str) -> Option<Implementation> {
    pinned().into_iter().find(|i| i.name == name)
}

/// `name version from binaries...` lines; blank lines and `#` comments are skipped.
fn parse(text: &'static str) -> Vec<Implementation> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let mut next = || words.next().unwrap_or_default();
            let (name, version, from) = (next(), next(), next());
            Implementation {
                name,
                version,
                from,
                binaries: words.collect(),
            }
        })
        .collect()
}

/// Where built implementations go: `impl/` in podpath's cache, as the shell spells it (an
/// empty variable counts as unset).
pub fn cache_dir() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let root = var("PODPATH_CACHE")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| Path::new(&d).join("podpath")))
        .unwrap_or_else(|| {
            Path::new(&var("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache")
                .join("podpath")
        });
    root.join("impl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_has_a_version_a_source_and_binaries() {
        let all = pinned();
        for name in ["kube-proxy", "coredns", "cni-plugins", "flannel-cni"] {
            let i = all.iter().find(|i| i.name == name).expect(name);
            assert!(i.is_built(), "{name} is built from a Go module");
            assert!(i.version.starts_with('v'), "{name}: {}", i.version);
            assert!(!i.binaries.is_empty(), "{name} has binaries");
        }
        let deb = get("debian-cni-plugins").unwrap();
        assert!(!deb.is_built());
        assert_eq!(deb.dir(), Path::new("/usr/lib/cni"));
        assert!(deb.binaries.contains(&"bridge"));
    }

    #[test]
    fn the_kube_proxy_wrapper_requires_the_pinned_kubernetes() {
        let go_mod = include_str!("../implementations/kube-proxy/go.mod");
        let kp = get("kube-proxy").unwrap();
        let require = format!("require {} {}", kp.from, kp.version);
        assert!(go_mod.contains(&require), "go.mod lacks `{require}`");
        // Every k8s.io staging module at the matching v0.x: v1.34.4 -> v0.34.4.
        let staging = format!(" v0.{}", kp.version.trim_start_matches("v1."));
        for line in go_mod.lines().filter(|l| l.contains("=>")) {
            assert!(line.ends_with(&staging), "{line} (want {staging})");
        }
    }

    #[test]
    fn the_layout_is_name_dash_version_below_the_cache() {
        let i = Implementation {
            name: "coredns",
            version: "v1.0.0",
            from: "example.org/coredns",
            binaries: vec!["coredns"],
        };
        assert_eq!(
            i.binary("coredns"),
            cache_dir().join("coredns-v1.0.0").join("coredns")
        );
        assert!(cache_dir().ends_with("impl"));
    }
}
