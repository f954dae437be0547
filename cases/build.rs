//! Embeds the suite: every case file (`*.yaml`, `*.yml`) below this directory and every
//! snapshot in `snapshots/`, as `(path below the suite, contents)` in `$OUT_DIR/suite.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let mut out = String::from("pub static FILES: &[(&str, &str)] = &[\n");
    for (rel, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            out,
            "    ({rel:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    // A case or snapshot added or removed changes its directory.
    println!("cargo:rerun-if-changed={}", root.display());
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("suite.rs");
    std::fs::write(dest, out).unwrap();
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || name == "target" || (dir == root && name == "src") {
            continue;
        }
        if path.is_dir() {
            if dir == root || !path.starts_with(root.join("snapshots")) {
                println!("cargo:rerun-if-changed={}", path.display());
                walk(root, &path, files);
            }
            continue;
        }
        let in_snapshots = path.parent() == Some(&root.join("snapshots"));
        let keep = if in_snapshots {
            name.ends_with(".snap")
        } else {
            name.ends_with(".yaml") || name.ends_with(".yml")
        };
        if keep {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((rel, path));
        }
    }
}
