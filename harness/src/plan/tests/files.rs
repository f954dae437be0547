use super::*;

// --- files ---------------------------------------------------------------------------

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podpath-plan-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = scratch_dir("load");
    let path = dir.join("cross-node.yaml");
    fs::write(&path, "name: across\nnodes: [node1]\n").unwrap();
    let plan = load(&path).unwrap();
    assert_eq!(plan.name, "across");
    assert_eq!(plan.stem, "cross-node");
    assert_eq!(plan.file, path);

    let missing = dir.join("missing.yaml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, CaseError::Io { .. }));
    assert!(err.to_string().starts_with(&missing.display().to_string()));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_that_is_not_utf8_is_a_located_error() {
    let dir = scratch_dir("utf8");
    let path = dir.join("bad.yaml");
    fs::write(&path, b"nodes: [node1]\nname: ab\xff\xfe\n").unwrap();
    let err = load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2:9: the file is not valid UTF-8", path.display())
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn discover_finds_yaml_files_recursively_in_order() {
    let dir = scratch_dir("discover");
    for file in [
        "b.yaml",
        "a.yml",
        "sub/c.yaml",
        "sub/deeper/d.yaml",
        "notes.md",
        ".hidden.yaml",
        "a.yaml.snap",
    ] {
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "nodes: [node1]\n").unwrap();
    }
    fs::create_dir_all(dir.join(".git")).unwrap();
    fs::write(dir.join(".git/x.yaml"), "").unwrap();
    let found = discover(&dir).unwrap();
    let relative: Vec<String> = found
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        relative,
        ["a.yml", "b.yaml", "sub/c.yaml", "sub/deeper/d.yaml"]
    );
    assert_eq!(discover(&dir.join("b.yaml")).unwrap(), [dir.join("b.yaml")]);
    assert!(discover(&dir.join("nowhere")).is_err());
    fs::remove_dir_all(&dir).unwrap();
}
