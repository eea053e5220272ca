//! The `twinsync` command, run as a user would.

use std::process::{Command, Output};

fn twinsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twinsync"))
        .args(args)
        .output()
        .expect("run twinsync")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn demo_shows_externals_key_stored_on_internal() {
    let dir = tempfile::tempdir().unwrap();
    let output = twinsync(&["demo", "--data-dir", dir.path().to_str().unwrap()]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(text.contains("External  EXT-1"), "{text}");
    assert!(text.contains("remote issue key: EXT-1"), "{text}");
    assert!(
        text.contains("holds External's key EXT-1: the sync back worked"),
        "{text}"
    );
    // The data directory keeps both trackers and both queues.
    for file in [
        "internal/tracker.db",
        "internal/twinsync.db",
        "external/tracker.db",
        "external/twinsync.db",
    ] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
}

#[test]
fn help_lists_the_commands() {
    let output = twinsync(&["--help"]);
    let text = stdout(&output);
    assert!(output.status.success());
    for command in ["demo", "plugin"] {
        assert!(text.contains(command), "{text}");
    }
}

#[test]
fn inspect_explains_what_is_wrong_with_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.wasm");
    std::fs::write(&file, "hello").unwrap();
    let output = twinsync(&["plugin", "inspect", file.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("is not a WebAssembly file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn inspect_shows_worlds_and_imports() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote-key.wasm");
    std::fs::write(&file, twinsync::builtin::REMOTE_KEY).unwrap();
    let output = twinsync(&["plugin", "inspect", file.to_str().unwrap()]);
    let text = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        text.contains("implements: incoming-processor, outgoing-processor"),
        "{text}"
    );
    assert!(
        text.contains("twinsync:processor/sync-helper@0.2.0"),
        "{text}"
    );
}
