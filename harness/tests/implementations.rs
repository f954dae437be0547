//! The real implementations run: one trial per binary of `harness/implementations/pinned`, which runs it
//! and checks that it is the pinned version. `kube-proxy --version`, `coredns -version`, and
//! for every CNI plugin the CNI `VERSION` command (never ADD or DEL) and its about text. A Go
//! binary must also carry the pinned module and version in its build information.
//!
//! A binary that is not there is reported as ignored, with what makes it; with `CI=true` it is
//! a failure (CI builds and installs them all with `scripts/setup`).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use podpath::implementations::{self, Implementation};

/// The newest CNI spec version each implementation's plugins must support (and nothing newer):
/// the spec library it was built with. containernetworking/plugins v1.10.0 has spec 1.1.0;
/// Debian's 1.1.1 has 1.0.0; the flannel plugin of plugins v0.9.1 has 0.4.0.
fn newest_cni_spec(name: &str) -> Option<&'static str> {
    match name {
        "cni-plugins" => Some("1.1.0"),
        "debian-cni-plugins" => Some("1.0.0"),
        "flannel-cni" => Some("0.4.0"),
        _ => None,
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for imp in implementations::pinned() {
        for &binary in &imp.binaries {
            let name = if imp.binaries.len() == 1 && binary == imp.name {
                imp.name.to_string()
            } else {
                format!("{}::{binary}", imp.name)
            };
            let imp = imp.clone();
            trials.push(Trial::ignorable_test(name, move || trial(&imp, binary)));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn trial(imp: &Implementation, binary: &str) -> Result<Completion, Failed> {
    let path = imp.binary(binary);
    if !path.exists() {
        let reason = if imp.is_built() {
            format!(
                "not built: run scripts/build-implementations ({} missing)",
                path.display()
            )
        } else {
            format!(
                "not installed: run scripts/setup ({} missing)",
                path.display()
            )
        };
        // CI builds and installs every one of them: a missing binary there is a defect.
        if std::env::var_os("CI").is_some() {
            return Err(reason.into());
        }
        return Ok(Completion::ignored_with(reason));
    }
    if imp.is_built() {
        carries_module(imp, &path)?;
    }
    match imp.name {
        "kube-proxy" => {
            let out = run(&path, &["--version"], &[], None)?;
            expect_line(&out, &format!("Kubernetes {}", imp.version))
        }
        "kubectl" => {
            let out = run(&path, &["version", "--client"], &[], None)?;
            expect_line(&out, &format!("Client Version: {}", imp.version))
        }
        "coredns" => {
            let out = run(&path, &["-version"], &[], None)?;
            expect_line(
                &out,
                &format!("CoreDNS-{}", imp.version.trim_start_matches('v')),
            )
        }
        name => match newest_cni_spec(name) {
            Some(newest) => cni_plugin(imp, binary, &path, newest),
            None => Err(format!("no check for {name} (harness/implementations/pinned)").into()),
        },
    }
}

/// The CNI `VERSION` command: the supported spec versions, as JSON on stdout. Then the plugin's
/// own version: its about text (CNI_COMMAND unset) for a built one, the owning Debian package's
/// version for an installed one.
fn cni_plugin(
    imp: &Implementation,
    binary: &str,
    path: &Path,
    newest: &str,
) -> Result<Completion, Failed> {
    let out = run(
        path,
        &[],
        &[("CNI_COMMAND", "VERSION")],
        Some(br#"{"cniVersion":"1.0.0"}"#),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| format!("VERSION printed no JSON ({e}): {stdout}"))?;
    let supported: Vec<&str> = json["supportedVersions"]
        .as_array()
        .ok_or_else(|| format!("VERSION: no supportedVersions in {stdout}"))?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let max = supported
        .iter()
        .copied()
        .max_by_key(|v| semver(v))
        .unwrap_or_default();
    if max != newest {
        return Err(format!(
            "VERSION: supportedVersions {supported:?}, want up to {newest} (pinned {} {})",
            imp.name, imp.version
        )
        .into());
    }
    if json["cniVersion"].as_str() != Some(newest) {
        return Err(format!("VERSION: cniVersion is not {newest}: {stdout}").into());
    }
    if imp.is_built() {
        // skel prints "CNI <plugin> plugin <version>" on stderr when CNI_COMMAND is unset.
        let out = run(path, &[], &[], Some(b""))?;
        let about = String::from_utf8_lossy(&out.stderr);
        let want = format!("CNI {binary} plugin {}", imp.version);
        if !about.lines().any(|l| l.trim() == want) {
            return Err(format!("about text lacks `{want}`: {about}").into());
        }
    } else {
        let package = debian_package(path)?;
        let upstream = package.1.split(['+', '-', '~']).next().unwrap_or_default();
        if upstream != imp.version {
            return Err(format!(
                "{} is from {} {}, pinned {}",
                path.display(),
                package.0,
                package.1,
                imp.version
            )
            .into());
        }
    }
    Ok(Completion::Completed)
}

/// The Debian package that owns `path`, and its version.
fn debian_package(path: &Path) -> Result<(String, String), Failed> {
    let p = path.to_string_lossy();
    let out = run(Path::new("dpkg-query"), &["-S", &p], &[], None)?;
    let owner = String::from_utf8_lossy(&out.stdout);
    let package = owner
        .split(':')
        .next()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("no Debian package owns {p}"))?
        .to_string();
    let out = run(
        Path::new("dpkg-query"),
        &["-W", "-f=${Version}", &package],
        &[],
        None,
    )?;
    Ok((
        package,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// A Go binary's build information (`go version -m`) holds `mod|dep <module> <version>`:
/// this is the pinned source, whatever the binary says of itself.
fn carries_module(imp: &Implementation, path: &Path) -> Result<(), Failed> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let entry = format!(
        "(?:mod|dep)\t{}\t{}\t",
        regex::escape(imp.from),
        regex::escape(imp.version)
    );
    let found = regex::bytes::Regex::new(&entry)
        .map_err(|e| e.to_string())?
        .is_match(&bytes);
    if found {
        Ok(())
    } else {
        Err(format!(
            "{}: its build information names no {} {}",
            path.display(),
            imp.from,
            imp.version
        )
        .into())
    }
}

/// `1.0.0` as numbers, for ordering.
fn semver(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn expect_line(out: &Output, want: &str) -> Result<Completion, Failed> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.lines().next().map(str::trim) == Some(want) {
        Ok(Completion::Completed)
    } else {
        Err(format!(
            "want `{want}` first, got: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}

/// Runs `program` to its end (killed after 30 s), with `env` added and `CNI_*` removed, `stdin`
/// fed in; a failure says the exit status and the output.
fn run(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<Output, Failed> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CNI_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let what = format!("{} {}", program.display(), args.join(" "));
    let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped");
        // A program may exit before it has read all of its input (a CNI plugin answering
        // VERSION from its environment): its exit status and output say how it went.
        match pipe.write_all(input) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(format!("{what}: stdin: {e}").into());
            }
            _ => {}
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.map_err(|e| format!("{what}: {e}"))?,
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            return Err(format!("{what}: still running after 30 s, killed").into());
        }
    };
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}
