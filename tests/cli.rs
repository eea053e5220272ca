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
        text.contains(&format!(
            "twinsync:processor/sync-helper@{}",
            twinsync::runtime::CONTRACT_VERSION
        )),
        "{text}"
    );
}

/// Internal of a demo run in `dir`, with a configuration for the operator commands.
fn demo_node(dir: &std::path::Path) -> String {
    let output = twinsync(&["demo", "--data-dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = dir.join("internal.toml");
    std::fs::write(
        &config,
        format!(
            r#"instance = "Internal"
data-dir = "{}"
listen = "127.0.0.1:1"

[tracker]
kind = "reference"
project = "INT"

[[connection]]
name = "internal-external"
remote-instance = "External"
remote-url = "http://127.0.0.1:2"
incoming = "remote-key"
outgoing = "remote-key"
secret = "s"
"#,
            dir.join("internal").display()
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_string()
}

fn events_of(config: &str, filters: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["events", "list", "--json", "--config", config];
    args.extend(filters);
    let output = twinsync(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str::<serde_json::Value>(&stdout(&output))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn events_list_filters_by_twin_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_node(dir.path());
    let all = events_of(&config, &[]);
    assert!(all.len() >= 2, "{all:?}");
    let twin = all[0]["twin"].as_str().unwrap().to_string();
    let of_twin = events_of(&config, &["--twin", &twin]);
    assert!(of_twin.iter().all(|e| e["twin"] == twin.as_str()));
    assert_eq!(of_twin.len(), all.len(), "the demo has one twin");
    assert!(events_of(&config, &["--twin", "nobody"]).is_empty());
    let done = events_of(&config, &["--state", "done"]);
    assert!(done.iter().all(|e| e["state"] == "done") && !done.is_empty());
    assert!(events_of(&config, &["--state", "failed"]).is_empty());
    // The table, and a state that does not exist.
    let output = twinsync(&["events", "list", "--config", &config]);
    assert!(stdout(&output).contains(&twin), "{}", stdout(&output));
    let output = twinsync(&["events", "list", "--state", "lost", "--config", &config]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("invalid value 'lost'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn errors_show_cuts_a_huge_input_unless_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_node(dir.path());
    let id = events_of(&config, &[])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A sync error whose stored input is 1 MB.
    let db = rusqlite::Connection::open(dir.path().join("internal/twinsync.db")).unwrap();
    let input = serde_json::json!({ "summary": "x".repeat(1 << 20) }).to_string();
    db.execute(
        "UPDATE events SET state = 'failed', error_kind = 'trap', error = 'boom' WHERE id = ?1",
        [&id],
    )
    .unwrap();
    db.execute(
        "INSERT INTO event_bodies (seq, input) SELECT seq, ?2 FROM events WHERE id = ?1
         ON CONFLICT (seq) DO UPDATE SET input = excluded.input",
        [&id, &input],
    )
    .unwrap();
    let output = twinsync(&["errors", "show", &id, "--config", &config]);
    let text = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(text.len() < 10_000, "{} bytes shown", text.len());
    assert!(
        text.contains("more bytes not shown (--full shows everything)"),
        "{text}"
    );
    let output = twinsync(&["errors", "show", &id, "--full", "--config", &config]);
    assert!(stdout(&output).len() > 1 << 20);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_node(dir.path());
    let id = events_of(&config, &[])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // `twinsync events replay ID | head -0`: the reader is gone before anything is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_twinsync"))
        .args(["events", "replay", &id, "--config", &config])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let errors = stderr(&output);
    assert!(!errors.contains("panicked"), "{errors}");
    assert!(output.status.success(), "{errors}");
}
