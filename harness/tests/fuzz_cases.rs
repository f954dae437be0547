//! Randomized fuzzing of the case parser and planner on stable Rust (docs/reliability.md).
//!
//! Mutates a seed corpus (every case under `cases/` and the malformed files in
//! `harness/tests/fuzz-corpus/`) for `PODPATH_FUZZ_SECONDS` (default 20) and plans each result:
//! no input may panic, take longer than `PODPATH_FUZZ_INPUT_MS` (default 2000), or give an error
//! without a `file:line:column` location inside the input. `PODPATH_FUZZ_SEED` repeats a run
//! (the seed is printed). A failing input is written to `target/fuzz-failures/` and the target
//! exits 1.
//!
//! `cargo test --test fuzz_cases`; `PODPATH_FUZZ_SECONDS=600 cargo test --release --test
//! fuzz_cases` for the ten-minute figure.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use podpath::plan::load_str;

const FILE: &str = "cases/fuzzed.yaml";

/// Pieces a mutation inserts or substitutes: YAML syntax, the case format's keys and values,
/// edge numbers, special addresses and awkward characters.
const DICTIONARY: &[&str] = &[
    ":",
    "{",
    "}",
    "[",
    "]",
    "- ",
    ",",
    "&x ",
    "*x",
    "!!binary ",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "\n",
    " ",
    "  ",
    "\t",
    "~",
    "/",
    ".",
    "---\n",
    "? ",
    "0",
    "-1",
    "65535",
    "65536",
    "4294967296",
    "18446744073709551616",
    "1e99",
    ".nan",
    "true",
    "null",
    "0x50",
    "1h",
    "0s",
    "/udp",
    "/tcp",
    "/sctp",
    "10.244.0.0/16",
    "10.244.1.0/24",
    "10.96.0.0/12",
    "172.18.0.0/16",
    "127.0.0.0/8",
    "127.0.0.1",
    "224.0.0.0/4",
    "0.0.0.0/0",
    "0.0.0.0",
    "169.254.0.0/16",
    "255.255.255.255",
    "240.0.0.0/4",
    "10.244.0.0/33",
    "name: ",
    "node: ",
    "nodes: ",
    "pods: ",
    "flows: ",
    "services: ",
    "cluster: ",
    "external: ",
    "dns: ",
    "from: ",
    "to: ",
    "exec: ",
    "expect: ",
    "reach: ",
    "fail: ",
    "seenSource: ",
    "listen: ",
    "labels: ",
    "selector: ",
    "ports: ",
    "port: ",
    "targetPort: ",
    "nodePort: ",
    "clusterIP: ",
    "type: ",
    "podCIDR: ",
    "nodeCIDR: ",
    "serviceCIDR: ",
    "subnetLen: ",
    "mtu: ",
    "overlay: ",
    "proxy: ",
    "ip: ",
    "address: ",
    "namespace: ",
    "timeout: ",
    "attempts: ",
    "protocol: ",
    "hops: ",
    "node1",
    "node2",
    "pod-a",
    "svc/web:80",
    "external:80",
    "None",
    "NodePort",
    "ClusterIP",
    "vxlan",
    "host-gw",
    "none",
    "iptables",
    "nftables",
    "refused",
    "timeout",
    "é",
    "ß",
    "\u{202e}",
    "\u{feff}",
    "\u{0}",
    "\u{7}",
    "\u{fffd}",
    "𝔘",
    "\r\n",
];

/// xorshift64*: small, and a seed reproduces a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

fn corpus(root: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join("cases"), root.join("harness/tests/fuzz-corpus")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                found.push((path, text));
            }
        }
    }
    found.sort();
    found
}

/// A char boundary of `text` at or before `at`.
fn boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// One to four random edits of `text`, some taking material from `other`.
fn mutate(rng: &mut Rng, text: &str, other: &str) -> String {
    let mut text = text.to_string();
    for _ in 0..=rng.below(4) {
        let at = boundary(&text, rng.below(text.len() + 1));
        let end = boundary(&text, at + rng.below(24));
        let end = end.max(at);
        match rng.below(8) {
            0 => {
                text.replace_range(at..end, "");
            }
            1 | 2 => text.insert_str(at, DICTIONARY[rng.below(DICTIONARY.len())]),
            3 => text.replace_range(at..end, DICTIONARY[rng.below(DICTIONARY.len())]),
            4 => {
                let copy = text[at..end].to_string();
                text.insert_str(end, &copy);
            }
            5 => {
                // A line of another corpus file, at a line start.
                let lines: Vec<&str> = other.lines().collect();
                if !lines.is_empty() {
                    let line = lines[rng.below(lines.len())];
                    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    text.insert_str(start, &format!("{line}\n"));
                }
            }
            6 => {
                // Swap two lines, or drop one.
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    if rng.below(2) == 0 {
                        lines.swap(a, b);
                    } else {
                        lines.remove(a);
                    }
                    text = lines.join("\n") + "\n";
                }
            }
            _ => {
                // A digit or a letter changed in place.
                let start = text[at..]
                    .find(|c: char| c.is_ascii_alphanumeric())
                    .map(|i| at + i);
                if let Some(i) = start {
                    let replacement = DICTIONARY[rng.below(DICTIONARY.len())];
                    text.replace_range(i..i + 1, replacement);
                }
            }
        }
    }
    text
}

/// Whether `text` planned, and what is wrong with planning it, if anything: unlocated errors,
/// locations outside the input, multi-line messages or a message not shown as
/// `file:line:column: `.
fn check(text: &str) -> (bool, Option<String>) {
    match load_str(Path::new(FILE), text) {
        Ok(plan) => {
            let _ = plan.to_string();
            (true, None)
        }
        Err(err) => (false, check_errors(text, &err)),
    }
}

fn check_errors(text: &str, err: &podpath::diag::CaseError) -> Option<String> {
    let lines = text.split('\n').count() as u64;
    {
        {
            let found = err.diagnostics();
            if found.is_empty() {
                return Some(format!("an error without a diagnostic: {err}"));
            }
            for d in found {
                let Some(at) = d.location else {
                    return Some(format!("unlocated: {d}"));
                };
                if at.line == 0 || at.column == 0 || at.line > lines + 1 {
                    return Some(format!("located outside the input ({lines} lines): {d}"));
                }
                if !d
                    .to_string()
                    .starts_with(&format!("{FILE}:{}:{}: ", at.line, at.column))
                {
                    return Some(format!("not shown as file:line:column: {d}"));
                }
                if d.message.contains('\n') {
                    return Some(format!("multi-line message: {d:?}"));
                }
            }
            None
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    // libtest's arguments (`--list`, filters) are accepted: this target is one trial.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("fuzz_cases: test");
        return ExitCode::SUCCESS;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-'))
        && !"fuzz_cases".contains(filter.as_str())
    {
        return ExitCode::SUCCESS;
    }
    let seconds = env_number("PODPATH_FUZZ_SECONDS", 20);
    let limit = Duration::from_millis(env_number("PODPATH_FUZZ_INPUT_MS", 2000));
    let seed = env_number(
        "PODPATH_FUZZ_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    )
    .max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = corpus(&root);
    assert!(!seeds.is_empty(), "no seed corpus under {}", root.display());
    println!(
        "fuzz_cases: {} seed files, {seconds} s, seed {seed}, {} ms per input",
        seeds.len(),
        limit.as_millis()
    );
    // Panics are caught and reported with their input: silence the default hook's message.
    std::panic::set_hook(Box::new(|_| {}));

    // The planner works on its own thread, so an input that hangs is seen (and the run stops).
    let (to_worker, inputs) = mpsc::channel::<String>();
    let (to_main, outcomes) = mpsc::channel::<Result<(bool, Option<String>), String>>();
    std::thread::spawn(move || {
        for text in inputs {
            let outcome = std::panic::catch_unwind(|| check(&text)).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".to_string())
            });
            if to_main.send(outcome).is_err() {
                break;
            }
        }
    });

    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut inputs_run, mut planned, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut current = seeds[0].1.clone();
    let mut failure = None;
    // The seeds as they are first, then mutants: from a seed, or (a random walk) from the last.
    let mut queue: Vec<String> = seeds.iter().map(|(_, t)| t.clone()).collect();
    queue.reverse();
    while failure.is_none() && (Instant::now() < deadline || !queue.is_empty()) {
        let text = queue.pop().unwrap_or_else(|| {
            if rng.below(3) == 0 {
                current = seeds[rng.below(seeds.len())].1.clone();
            }
            let other = &seeds[rng.below(seeds.len())].1;
            current = mutate(&mut rng, &current, other);
            if current.len() > 64 << 10 {
                current = seeds[rng.below(seeds.len())].1.clone();
            }
            current.clone()
        });
        let started = Instant::now();
        to_worker.send(text.clone()).unwrap();
        match outcomes.recv_timeout(limit) {
            Ok(Ok((ok, problem))) => {
                planned += u64::from(ok);
                if let Some(problem) = problem {
                    failure = Some((problem, text.clone()));
                }
            }
            Ok(Err(panic)) => failure = Some((format!("panicked: {panic}"), text)),
            Err(_) => failure = Some((format!("took more than {limit:?} (hang)"), text)),
        }
        let took = started.elapsed();
        slowest = slowest.max(took);
        inputs_run += 1;
    }
    println!(
        "fuzz_cases: {inputs_run} inputs ({planned} planned, {} refused), slowest {slowest:?}",
        inputs_run - planned
    );
    match failure {
        None => {
            println!("fuzz_cases: no panic, no hang, no unlocated error");
            ExitCode::SUCCESS
        }
        Some((problem, text)) => {
            let dir = root.join("target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{seed}-{inputs_run}.yaml"));
            let _ = std::fs::write(&path, &text);
            eprintln!(
                "fuzz_cases: FAILED (seed {seed}, input {inputs_run}, saved to {}): {problem}\n--- input ---\n{text}\n---",
                path.display()
            );
            // A hung planner thread cannot be stopped: leave at once.
            std::process::exit(1);
        }
    }
}
