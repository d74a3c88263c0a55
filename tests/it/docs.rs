//! The documents a newcomer reads first stay true: ARCHITECTURE.md names every file of the tree,
//! and every `Type::item` it names exists in the code; and the code keeps the promise that it
//! never panics on input.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn architecture() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap()
}

#[test]
fn the_code_map_names_every_file() {
    let map = architecture();
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    for file in files {
        let relative = file.strip_prefix(Path::new(ROOT).join("src")).unwrap();
        let name = relative.to_string_lossy();
        let named = map.contains(&format!("`{name}`"))
            || relative.parent().is_some_and(|folder| {
                let file_name = relative.file_name().unwrap().to_string_lossy();
                map.contains(&format!("`{}/{file_name}`", folder.display()))
                    || map.contains(&format!("`{file_name}`"))
            });
        assert!(named, "ARCHITECTURE.md does not name src/{name}");
    }
    let mut tests = Vec::new();
    rust_files(&Path::new(ROOT).join("tests/it"), &mut tests);
    for file in tests {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            map.contains(&format!("it/{name}")) || name == "main.rs" || name == "common.rs",
            "ARCHITECTURE.md does not name tests/it/{name}"
        );
    }
}

#[test]
fn every_item_the_architecture_names_exists() {
    let map = architecture();
    let mut sources = String::new();
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    for file in files {
        sources.push_str(&std::fs::read_to_string(file).unwrap());
    }
    for quoted in map.split('`').skip(1).step_by(2) {
        let Some((owner, item)) = quoted.split_once("::") else {
            continue;
        };
        if owner.contains(' ') || item.contains(' ') || owner == "process" {
            continue;
        }
        let item = item.trim_end_matches("()");
        let defined = [
            format!("fn {item}"),
            format!("pub {item}:"),
            format!("struct {item}"),
            format!("enum {item}"),
            format!("const {item}"),
            // An enum's variant.
            format!("    {item},"),
            format!("    {item}("),
        ]
        .iter()
        .any(|definition| sources.contains(definition.as_str()));
        assert!(
            defined,
            "ARCHITECTURE.md names {quoted}, which the code does not define"
        );
        let owner_exists = [
            format!("struct {owner}"),
            format!("enum {owner}"),
            format!("mod {owner}"),
            format!("impl {owner}"),
        ]
        .iter()
        .any(|definition| sources.contains(definition.as_str()))
            || Path::new(ROOT).join(format!("src/{owner}.rs")).exists();
        assert!(
            owner_exists,
            "ARCHITECTURE.md names {quoted}, but no {owner}"
        );
    }
}

/// A log line as it reads whatever the moment, the port and the speed: the timestamp dropped,
/// every number `N`.
fn shape(line: &str) -> String {
    let line = line.split_once("Z ").map_or(line, |(_, rest)| rest);
    let mut shaped = String::new();
    let mut in_number = false;
    for c in line.chars() {
        match (c.is_ascii_digit(), in_number) {
            (true, false) => {
                shaped.push('N');
                in_number = true;
            }
            (true, true) => {}
            (false, _) => {
                in_number = c == '.' && in_number;
                if !in_number {
                    shaped.push(c);
                }
            }
        }
    }
    shaped
}

/// The README's quick start shows what `cargo run --example quickstart` prints: every log line of
/// its sample comes, in its order, from a real run of the same job (the emulator's demo job and
/// `data/config.json`). Only how many `Running` lines a run shows depends on the moments it looks.
#[test]
fn the_readmes_quickstart_sample_is_what_the_quickstart_prints() {
    use dbt_cloud_emulator::Emulator;
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme
        .find("```text\ndbt Cloud emulator listening at")
        .unwrap();
    let sample = &readme[start + 8..];
    let sample = &sample[..sample.find("```").unwrap()];
    let shown: Vec<String> = sample
        .lines()
        .filter(|line| line.contains(" INFO  ") || line.contains(" WARN  "))
        .filter(|line| !line.contains(": Running (step "))
        .map(shape)
        .collect();
    assert!(shown.len() > 10, "{sample}");

    let emulator = Emulator::start();
    emulator.serve_demo();
    let data = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(ROOT).join("data/config.json")).unwrap())
            .unwrap();
    config["parameters"]["dbt_cloud_url"] = emulator.base_url().into();
    std::fs::write(data.path().join("config.json"), config.to_string()).unwrap();
    let output = crate::common::component(data.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let mut printed = stdout.lines().map(shape);
    for line in &shown {
        assert!(
            printed.any(|printed| &printed == line),
            "the README's quick start shows\n{line}\nwhich a real run does not print (in that order):\n{stdout}"
        );
    }
}

/// The Rust the README asks for is the `rust-version` of both crates, and no locked crate needs
/// a newer one (a lock updated past it once left the README promising a Rust that cannot build).
#[test]
fn the_readmes_rust_is_the_crates_and_the_locks() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let asked = readme
        .split("with Rust (")
        .nth(1)
        .and_then(|rest| rest.split(" or newer)").next())
        .expect("the README names the Rust it needs");
    for manifest in ["Cargo.toml", "tests/emulator/Cargo.toml"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(manifest)).unwrap();
        assert!(
            text.contains(&format!("rust-version = \"{asked}\"")),
            "{manifest}'s rust-version is not the README's {asked}"
        );
    }
    let metadata = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        metadata.status.success(),
        "{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    // "1.88" and "1.88.0" are one version.
    let version = |text: &str| -> Vec<u64> {
        let mut parts: Vec<u64> = text.split('.').map(|part| part.parse().unwrap()).collect();
        parts.resize(3, 0);
        parts
    };
    let needed = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|package| Some((version(package["rust_version"].as_str()?), package)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .unwrap();
    assert!(
        needed.0 <= version(asked),
        "{} {} needs Rust {}, the README says {asked}",
        needed.1["name"],
        needed.1["version"],
        needed.1["rust_version"]
    );
}

/// Outside tests, the code never panics on what input can reach: the only `expect`, `unwrap`,
/// `panic!` or `unreachable!` left are the two that cannot happen, each right after a comment
/// saying why (`Justified ...`).
#[test]
fn outside_tests_only_the_two_justified_panics_remain() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    let mut justified = Vec::new();
    for file in files {
        if file.ends_with("no_panic_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lines: Vec<&str> = code.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let panics = [
                ".expect(",
                ".unwrap()",
                "panic!(",
                "unreachable!(",
                "todo!(",
                "unimplemented!(",
            ]
            .iter()
            .any(|call| line.contains(call));
            if !panics {
                continue;
            }
            let place = format!("{}:{}", file.display(), at + 1);
            let why = lines[..at]
                .iter()
                .rev()
                .take_while(|earlier| !earlier.trim().is_empty() && !earlier.trim().ends_with(';'))
                .any(|earlier| earlier.trim_start().starts_with("// Justified"));
            assert!(
                why,
                "{place} may panic without a comment saying why it cannot: {line}"
            );
            justified.push(place);
        }
    }
    assert_eq!(justified.len(), 2, "{justified:?}");
}
