//! `twinsync plugin new`: the Rust project it writes builds with its one command into a
//! package that passes `plugin check` and installs as what its manifest says.

use std::path::Path;
use std::process::Command;

fn twinsync() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_twinsync"));
    command.env(
        "TWINSYNC_CACHE_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-compile-cache"),
    );
    command
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?}\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[test]
fn the_rust_scaffold_builds_into_a_package_that_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    run(twinsync()
        .args(["plugin", "new", "tag-origin", "--lang", "rust", "--dir"])
        .arg(dir.path()));
    let project = dir.path().join("tag-origin");
    // Writing over an existing project is refused.
    let again = twinsync()
        .args(["plugin", "new", "tag-origin", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());

    // Its one command, with the guests' target directory so that the SDK's dependencies
    // are compiled once for every run of this test.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffold-build");
    run(Command::new("sh")
        .arg(project.join("build.sh"))
        .env("TWINSYNC", env!("CARGO_BIN_EXE_twinsync"))
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    let package = project.join("tag-origin.wasm");
    let text = run(twinsync().args(["plugin", "check"]).arg(&package));
    assert!(
        text.contains("package: tag-origin@0.1.0 by Your Company"),
        "{text}"
    );
    assert!(
        text.contains("incoming processor on the sample issue: ok"),
        "{text}"
    );
    assert!(
        text.contains("outgoing processor on the sample issue: ok"),
        "{text}"
    );
}

/// The polyglot toolchains `scripts/build-polyglot` installs under `target/polyglot/`.
fn polyglot(path: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/polyglot")
        .join(path);
    assert!(
        path.exists(),
        "{} is missing: `scripts/build-polyglot --install-only` installs it (./scripts/test does)",
        path.display()
    );
    path
}

/// Write a project in `lang`, build it with its `build.sh`, and `plugin check` the package.
fn scaffold_builds_and_checks(lang: &str, env: &[(&str, std::path::PathBuf)]) {
    let dir = tempfile::tempdir().unwrap();
    run(twinsync()
        .args(["plugin", "new", "tag-origin", "--lang", lang, "--dir"])
        .arg(dir.path()));
    let project = dir.path().join("tag-origin");
    let mut build = Command::new("sh");
    build
        .arg(project.join("build.sh"))
        .env("TWINSYNC", env!("CARGO_BIN_EXE_twinsync"))
        .env(
            "TWINSYNC_CACHE_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-compile-cache"),
        );
    for (name, value) in env {
        build.env(name, value);
    }
    run(&mut build);
    let text = run(twinsync()
        .args(["plugin", "check"])
        .arg(project.join("tag-origin.wasm")));
    assert!(
        text.contains("package: tag-origin@0.1.0 by Your Company"),
        "{text}"
    );
    assert!(
        text.contains("incoming processor on the sample issue: ok"),
        "{text}"
    );
    assert!(
        text.contains("outgoing processor on the sample issue: ok"),
        "{text}"
    );
}

#[test]
fn the_python_scaffold_builds_into_a_package_that_passes_check() {
    let componentize = polyglot("venv/bin/componentize-py");
    scaffold_builds_and_checks("python", &[("COMPONENTIZE_PY", componentize)]);
}

#[test]
fn the_javascript_scaffold_builds_into_a_package_that_passes_check() {
    let cli = polyglot("node_modules/@bytecodealliance/componentize-js/src/cli.js");
    scaffold_builds_and_checks("js", &[("COMPONENTIZE_JS", cli)]);
}
