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
/// Returns the directory that holds the project (`tag-origin/`), removed when dropped.
fn scaffold_builds_and_checks(lang: &str, env: &[(&str, std::path::PathBuf)]) -> tempfile::TempDir {
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
    dir
}

#[test]
fn the_python_scaffold_builds_into_a_package_that_passes_check() {
    let componentize = polyglot("venv/bin/componentize-py");
    scaffold_builds_and_checks("python", &[("COMPONENTIZE_PY", componentize)]);
}

#[test]
fn the_javascript_scaffold_builds_into_a_package_that_passes_check() {
    let cli = polyglot("node_modules/@bytecodealliance/componentize-js/src/cli.js");
    let dir = scaffold_builds_and_checks("js", &[("COMPONENTIZE_JS", cli)]);
    let project = dir.path().join("tag-origin");

    // The project ships the contract's TypeScript declarations and the helpers': `tsc` (the
    // one the pinned toolchain brings) checks app.js against them as written...
    let tsc = || {
        let mut command = Command::new("node");
        command
            .arg(polyglot("node_modules/typescript/bin/tsc"))
            .arg("-p")
            .arg(&project);
        command
    };
    run(&mut tsc());
    // ...and catches a misspelt field of the contract and a side that returns no issue.
    let app = std::fs::read_to_string(project.join("app.js")).unwrap();
    std::fs::write(
        project.join("app.js"),
        format!(
            "{app}\n/** @param {{import('twinsync:processor/types@{contract}').Issue}} issue */\n\
             export const misspelt = (issue) => issue.sumary;\n\
             export const wrong = defineProcessor({{ incoming: () => 42 }});\n",
            contract = twinsync::runtime::CONTRACT_VERSION
        ),
    )
    .unwrap();
    let output = tsc().output().unwrap();
    let errors = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{errors}");
    assert!(
        errors.contains("'sumary' does not exist on type 'Issue'"),
        "{errors}"
    );
    assert!(errors.contains("'number' is not assignable"), "{errors}");
}

/// `guest/js/types/` (which the JavaScript scaffold ships) is what jco's type generator makes
/// of `wit/processor.wit` today, and names every type and function of the contract.
#[test]
fn the_typescript_declarations_are_those_of_the_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::tempdir().unwrap();
    run(Command::new("node")
        .arg(root.join("scripts/jco-types.mjs"))
        .arg(polyglot(""))
        .arg(root.join("wit/processor.wit"))
        .arg(out.path()));
    let committed = root.join("guest/js/types");
    let mut all = String::new();
    for file in [
        "processor.d.ts",
        "interfaces/twinsync-processor-incoming.d.ts",
        "interfaces/twinsync-processor-outgoing.d.ts",
        "interfaces/twinsync-processor-sync-helper.d.ts",
        "interfaces/twinsync-processor-types.d.ts",
    ] {
        let fresh = std::fs::read_to_string(out.path().join(file)).unwrap();
        let kept = std::fs::read_to_string(committed.join(file)).unwrap();
        assert!(
            fresh == kept,
            "guest/js/types/{file} is stale: run `scripts/build-polyglot --types`"
        );
        all.push_str(&kept);
    }
    let generated = std::fs::read_dir(out.path().join("interfaces"))
        .unwrap()
        .count();
    assert_eq!(
        generated, 4,
        "a new interface: add it to the scaffold and here"
    );

    let wit = std::fs::read_to_string(root.join("wit/processor.wit")).unwrap();
    let camel = |name: &str, upper_first: bool| -> String {
        let mut out = String::new();
        for (i, part) in name.split('-').enumerate() {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                if i > 0 || upper_first {
                    out.extend(first.to_uppercase());
                } else {
                    out.push(first);
                }
                out.push_str(chars.as_str());
            }
        }
        out
    };
    let mut named = 0;
    for line in wit.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let (Some(first), Some(second)) = (words.next(), words.next()) else {
            continue;
        };
        let expected = match first {
            "record" | "enum" | "variant" | "flags" | "type" => {
                let name = camel(second.trim_end_matches(['{', '=']), true);
                vec![
                    format!("export interface {name} "),
                    format!("export type {name} "),
                ]
            }
            _ if second == "func(" || second.starts_with("func(") => {
                let name = camel(first.trim_end_matches(':'), false);
                vec![format!("export function {name}(")]
            }
            _ => continue,
        };
        named += 1;
        assert!(
            expected.iter().any(|e| all.contains(e.as_str())),
            "the declarations do not name `{line}` ({expected:?})"
        );
    }
    assert!(named > 20, "found only {named} names in the WIT");
}
