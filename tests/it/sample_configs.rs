//! Every example config we show users must parse: the sample data folder, the Keboola sample
//! config, and each JSON block of the README that holds `parameters`.

use dbt_cloud_job_trigger::config;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn sample_config_files_parse() {
    for path in [
        "data/config.json",
        "component_config/sample-config/config.json",
    ] {
        if let Err(error) = config::parse(repo_file(path).as_bytes()) {
            panic!("{path}: {error:#}");
        }
    }
}

#[test]
fn readme_examples_parse() {
    let readme = repo_file("README.md");
    let blocks: Vec<&str> = readme
        .split("```json")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .filter(|block| block.contains("\"parameters\""))
        .collect();
    assert!(!blocks.is_empty(), "the README shows an example config");
    for block in blocks {
        if let Err(error) = config::parse(block.as_bytes()) {
            panic!("{block}: {error:#}");
        }
    }
}
