//! The Dockerfile builds the binary the tests use: its stages are checked against the Cargo
//! setup, since no Docker engine runs here. (The build command itself was run outside Docker with
//! the same target and linker; see the README for the image's size.)

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|part| part.parse().unwrap()).collect()
}

#[test]
fn the_dockerfile_builds_this_crate_s_binary_statically_and_ships_it_alone() {
    let dockerfile = read("Dockerfile");
    let cargo = read("Cargo.toml");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        stages.len(),
        2,
        "a build stage and a final stage: {stages:?}"
    );

    // The builder's Rust is at least the crate's rust-version.
    let builder = stages[0]
        .strip_prefix("FROM rust:")
        .expect("the build stage starts from rust:");
    let builder_version = version(builder.split('-').next().unwrap());
    let rust_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| version(v.trim_end_matches('"')))
        .unwrap();
    assert!(
        builder_version >= rust_version,
        "rust:{builder_version:?} is older than rust-version {rust_version:?}"
    );

    let target = "x86_64-unknown-linux-musl";
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build");
    for flag in [
        "--release",
        "--locked",
        &format!("--target {target}"),
        "--bin dbt-cloud-job-trigger",
    ] {
        assert!(build.contains(flag), "the build lacks {flag}: {build}");
    }
    assert!(dockerfile.contains(&format!("rustup target add {target}")));
    assert!(
        dockerfile.contains("musl-tools")
            && dockerfile.contains("CC_x86_64_unknown_linux_musl=musl-gcc")
    );

    // The final image: nothing but the binary and CA certificates, non-root, KBC_DATADIR=/data/.
    assert_eq!(stages[1], "FROM scratch");
    let final_stage = dockerfile.split("FROM scratch").nth(1).unwrap();
    let copies: Vec<&str> = final_stage
        .lines()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies.iter().any(|c| c.contains("ca-certificates.crt")));
    assert!(copies.iter().any(|c| c.contains(&format!(
        "/src/target/{target}/release/dbt-cloud-job-trigger"
    ))));
    assert!(final_stage.contains("KBC_DATADIR=/data/"));
    assert!(final_stage.contains("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"));
    let user = final_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(!user.starts_with('0') && user != "root", "non-root: {user}");
    assert!(final_stage.contains("ENTRYPOINT [\"/dbt-cloud-job-trigger\"]"));

    // The TLS stack reads the CA file the image ships, not a compiled-in bundle.
    assert!(cargo.contains("rustls-tls-native-roots"));
}
