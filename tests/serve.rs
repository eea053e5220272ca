//! Two `twinsync serve` processes on loopback, driven through the admin API.

use std::time::Duration;

use rusqlite::types::ValueRef;
use serde_json::json;
use twinsync::store::bodies::unpack;
use twinsync::store::sql::Value;
use twinsync_tests::process::{eventually, pair, remote_key};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn the_seed_scenario_between_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = pair(twinsync_tests::twinsync_binary!(), dir.path(), "remote-key");

    let (status, created) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": "Customer cannot log in", "status": "Open"}),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let (status, exalated) = internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    assert_eq!(status, 200, "{exalated}");
    assert_eq!(exalated["errors"], json!([]));

    eventually(WAIT, "Internal stores External's key", || {
        internal.issue(&key).and_then(|i| remote_key(&i)).is_some()
    });
    let stored = remote_key(&internal.issue(&key).unwrap()).unwrap();
    let twins = external.get("/v1/twins");
    let external_key = twins[0]["local_key"].as_str().unwrap();
    assert_eq!(
        stored, external_key,
        "Internal's remote issue key is External's key"
    );
    assert!(external_key.starts_with("EXT-"));
    let external_issue = external.issue(external_key).unwrap();
    assert_eq!(external_issue["summary"], "Customer cannot log in");
    assert_eq!(remote_key(&external_issue).as_deref(), Some(key.as_str()));
}

#[test]
fn a_stopped_node_misses_nothing_and_gets_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, mut external) = pair(twinsync_tests::twinsync_binary!(), dir.path(), "mirror");
    let (_, created) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": "rev 0", "status": "Open"}),
    );
    let key = created["key"].as_str().unwrap().to_string();
    internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    eventually(WAIT, "the first sync", || {
        external
            .get("/v1/twins")
            .as_array()
            .is_some_and(|t| t.len() == 1)
    });

    external.stop();
    for rev in 1..=20 {
        let (status, _) = internal.send(
            "PATCH",
            &format!("/v1/issues/{key}"),
            json!({"summary": format!("rev {rev}")}),
        );
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(15));
    }
    let mut more = Vec::new();
    for n in 0..5 {
        let (_, created) = internal.send(
            "POST",
            "/v1/issues",
            json!({"summary": format!("made while External was down {n}")}),
        );
        more.push(created["key"].as_str().unwrap().to_string());
    }
    internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": more}),
    );
    eventually(WAIT, "Internal queues what it cannot send", || {
        internal.get("/v1/queue")[0]["in_flight"]
            .as_i64()
            .unwrap_or(0)
            >= 6
    });
    std::thread::sleep(Duration::from_millis(500));

    external.restart();
    eventually(WAIT, "everything drains", || {
        internal.get("/v1/queue")[0]["in_flight"] == 0
            && external
                .get("/v1/twins")
                .as_array()
                .is_some_and(|t| t.len() == 6)
            && external.get("/v1/queue")[0]["pending"] == 0
    });
    let twin = external
        .get("/v1/twins")
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["remote_key"] == key.as_str())
        .cloned()
        .unwrap();
    let external_key = twin["local_key"].as_str().unwrap();
    assert_eq!(external.issue(external_key).unwrap()["summary"], "rev 20");

    // In order, and nothing lost: External received the twin's messages 1, 2, 3... with no
    // gap, applied them in order, and the last of them. One that waited while a later one
    // arrived was not applied: the later one took its place (it carries its changes).
    let db = rusqlite::Connection::open(external.dir.join("data/twinsync.db")).unwrap();
    let rows: Vec<(i64, String, Option<String>)> = db
        .prepare("SELECT message_seq, state, note FROM events WHERE twin_id = ?1 AND direction = 'incoming' ORDER BY seq")
        .unwrap()
        .query_map([twin["twin"].as_str().unwrap()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=rows.len() as i64).collect::<Vec<_>>(),
        "{rows:?}"
    );
    let applied: Vec<i64> = rows.iter().filter(|r| r.1 == "done").map(|r| r.0).collect();
    assert!(applied.is_sorted(), "{rows:?}");
    assert_eq!(applied.last(), seqs.last(), "{rows:?}");
    for (_, state, note) in rows.iter().filter(|r| r.1 != "done") {
        assert_eq!(state, "skipped", "{rows:?}");
        assert!(
            note.as_deref()
                .unwrap_or_default()
                .contains("superseded by"),
            "{rows:?}"
        );
    }
    assert!(
        seqs.len() >= 2,
        "the edits made while External was down arrived: {seqs:?}"
    );
}

/// A configuration for a node with only the admin API, on a data directory of its choice.
fn lone_node(dir: &std::path::Path, name: &str, data_dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "instance = \"{name}\"\ndata-dir = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{}\"\n",
            data_dir.display(),
            twinsync_tests::process::free_port(),
            twinsync_tests::process::TOKEN
        ),
    )
    .unwrap();
    config
}

/// Wait for a process to exit; `None` if it still runs after `timeout` (then it is killed).
fn exit_within(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_panicking_event_loop_stops_the_node_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = lone_node(dir.path(), "Lone", &dir.path().join("data"));
    let mut child = std::process::Command::new(twinsync_tests::twinsync_binary!())
        .args(["serve", "--config"])
        .arg(&config)
        .env("TWINSYNC_TEST_PANIC_EVENT_LOOP", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(&mut child, WAIT)
        .expect("a node whose event loop panicked must not keep running");
    assert!(!status.success(), "{status}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("the event loop panicked: injected by TWINSYNC_TEST_PANIC_EVENT_LOOP"),
        "{log}"
    );
}

#[test]
fn a_second_node_on_the_same_data_directory_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_internal, _external) = pair(twinsync_tests::twinsync_binary!(), dir.path(), "mirror");
    // Other ports, the same data directory as the running Internal.
    let data = dir.path().join("internal/data");
    let config = lone_node(dir.path(), "Internal", &data);
    let mut second = std::process::Command::new(twinsync_tests::twinsync_binary!())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(&mut second, WAIT).expect("the second node must not start");
    assert!(!status.success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains(&format!(
            "another twinsync (`twinsync serve` or an embedding host) is running on the data directory {}",
            data.display()
        )),
        "{log}"
    );
}

#[test]
fn a_message_the_other_node_refuses_holds_only_its_twin() {
    let dir = tempfile::tempdir().unwrap();
    let (mut internal, mut external) =
        pair(twinsync_tests::twinsync_binary!(), dir.path(), "mirror");
    external.stop();
    let mut keys = Vec::new();
    for summary in ["Poisoned", "Good"] {
        let (_, created) = internal.send(
            "POST",
            "/v1/issues",
            json!({"summary": summary, "status": "Open"}),
        );
        keys.push(created["key"].as_str().unwrap().to_string());
    }
    internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": keys}),
    );
    eventually(WAIT, "both messages wait in the outbox", || {
        internal.get("/v1/queue")[0]["in_flight"] == 2
    });
    // The message of "Poisoned" becomes one External refuses for good (a version it does
    // not speak), as a sender with a bug would make. (Found by its content: the two events
    // run on two workers, so either message may be first in the outbox.)
    internal.stop();
    let db = rusqlite::Connection::open(internal.dir.join("data/twinsync.db")).unwrap();
    // Bodies are stored compressed: read as text, and the poisoned one written back as
    // text, which reads as it is.
    let bodies: Vec<(i64, String)> = db
        .prepare("SELECT seq, body FROM outbox")
        .unwrap()
        .query_map([], |r| {
            let body = match r.get_ref(1)? {
                ValueRef::Blob(bytes) => unpack(Value::Blob(bytes)),
                ValueRef::Text(text) => unpack(Value::Text(std::str::from_utf8(text).unwrap())),
                other => panic!("an outbox body stored as {other:?}"),
            };
            Ok((r.get(0)?, body.unwrap().unwrap()))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let poisoned: Vec<_> = bodies
        .iter()
        .filter(|(_, body)| body.contains("\"summary\":\"Poisoned\""))
        .collect();
    assert_eq!(poisoned.len(), 1, "{bodies:?}");
    let (seq, body) = poisoned[0];
    assert!(body.contains("\"version\":1"), "{body}");
    db.execute(
        "UPDATE outbox SET body = ?2 WHERE seq = ?1",
        rusqlite::params![seq, body.replace("\"version\":1", "\"version\":7")],
    )
    .unwrap();
    drop(db);
    internal.restart();
    external.restart();

    eventually(
        WAIT,
        "the good twin syncs; the poisoned one is a sync error",
        || {
            external
                .issue("EXT-1")
                .is_some_and(|i| i["summary"] == "Good")
                && internal
                    .get("/v1/errors")
                    .as_array()
                    .is_some_and(|e| e.len() == 1)
        },
    );
    let error = internal.get("/v1/errors")[0].clone();
    assert_eq!(error["kind"], "refused-by-peer", "{error}");
    assert!(
        error["reason"]
            .as_str()
            .unwrap()
            .contains("message version 7 is not supported"),
        "{error}"
    );
    // The connection goes on for the other twins.
    internal.send(
        "PATCH",
        &format!("/v1/issues/{}", keys[1]),
        json!({"summary": "Good, edited"}),
    );
    eventually(WAIT, "a later change of the good twin", || {
        external
            .issue("EXT-1")
            .is_some_and(|i| i["summary"] == "Good, edited")
    });
    assert!(external.issue("EXT-2").is_none());

    // Skipped, the refused message goes; the twin's next change takes its number.
    let (status, body) = internal.send(
        "POST",
        &format!("/v1/errors/{}/skip", error["event"].as_str().unwrap()),
        json!({}),
    );
    assert_eq!(status, 200, "{body}");
    internal.send(
        "PATCH",
        &format!("/v1/issues/{}", keys[0]),
        json!({"summary": "Poisoned, edited"}),
    );
    eventually(WAIT, "the poisoned twin syncs again", || {
        external
            .issue("EXT-2")
            .is_some_and(|i| i["summary"] == "Poisoned, edited")
    });
}

#[test]
fn the_admin_api_refuses_bad_issues_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, _external) = pair(twinsync_tests::twinsync_binary!(), dir.path(), "mirror");
    for (body, field) in [
        (
            json!({"sumary": "x", "status": "Open"}),
            "unknown field `sumary`",
        ),
        (
            json!({"summary": "x", "status": null}),
            "field `status` cannot be null",
        ),
        (
            json!({"summary": "x", "status": "Open", "due_date": "soon"}),
            "due date \"soon\" is not a date",
        ),
    ] {
        let (status, answer) = internal.send("POST", "/v1/issues", body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let (status, created) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": "x", "status": "Open"}),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    for (body, field) in [
        (json!({"status": null}), "field `status` cannot be null"),
        (json!({"updated": "yesterday"}), "updated \"yesterday\""),
        (json!({"labels": "one"}), "field `labels`: invalid type"),
    ] {
        let (status, answer) = internal.send("PATCH", &format!("/v1/issues/{key}"), body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    assert_eq!(internal.issue(key).unwrap()["status"], "Open");
    // Events, filtered; a filter it does not know is refused too.
    let (status, events) = internal.send("GET", "/v1/events?state=done", json!(null));
    assert_eq!(status, 200, "{events}");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["state"] == "done")
    );
    let (status, answer) = internal.send("GET", "/v1/events?state=lost", json!(null));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("state `lost`"),
        "{answer}"
    );
    let (status, answer) = internal.send("GET", "/v1/events?twim=x", json!(null));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `twim`"),
        "{answer}"
    );
    let (status, answer) = internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key], "dry_run": true}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `dry_run`")
    );
}

/// A node of a pair that speaks TLS on both listeners and trusts the test CA for its peer.
fn tls_node(
    dir: &std::path::Path,
    name: &str,
    project: &str,
    remote: &str,
    ports: (u16, u16, u16),
) -> std::process::Child {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tls");
    let (listen, admin, remote_port) = ports;
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"instance = "{name}"
data-dir = "{name}-data"
listen = "127.0.0.1:{listen}"

[tls]
cert = "{fixtures}/node-cert.pem"
key = "{fixtures}/node-key.pem"

[admin]
listen = "127.0.0.1:{admin}"
token = "{token}"

[tracker]
kind = "reference"
project = "{project}"

[[connection]]
name = "internal-external"
remote-instance = "{remote}"
remote-url = "https://127.0.0.1:{remote_port}"
remote-ca = "{fixtures}/ca.pem"
incoming = "mirror"
outgoing = "mirror"
secret = "{secret}"
"#,
            fixtures = fixtures.display(),
            token = twinsync_tests::process::TOKEN,
            secret = twinsync_tests::process::SECRET,
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    std::process::Command::new(twinsync_tests::twinsync_binary!())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Kills the processes of a test when it ends, passed or not.
struct Killed(Vec<std::process::Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn with_tls_both_listeners_speak_https_and_the_remote_ca_is_trusted() {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let free = twinsync_tests::process::free_port;
    let (internal, external) = ((free(), free(), free()), (free(), free(), 0));
    let external = (external.0, external.1, internal.0);
    let internal = (internal.0, internal.1, external.0);
    let _children = Killed(vec![
        tls_node(dir.path(), "Internal", "INT", "External", internal),
        tls_node(dir.path(), "External", "EXT", "Internal", external),
    ]);
    let ca = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tls/ca.pem"),
    )
    .unwrap();
    let Some(Ok(PemItem::Certificate(ca))) = ureq::tls::parse_pem(&ca).next() else {
        panic!("the test CA")
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&[ca]))
                .build(),
        )
        .build()
        .into();
    let token = format!("Bearer {}", twinsync_tests::process::TOKEN);
    let admin = |port: u16, method: &str, path: &str, body: serde_json::Value| {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1:{port}{path}"))
            .header("authorization", &token)
            .body(body.to_string())
            .unwrap();
        let mut response = agent.run(request).ok()?;
        let status = response.status().as_u16();
        Some((
            status,
            response.body_mut().read_json::<serde_json::Value>().ok()?,
        ))
    };
    eventually(WAIT, "both admin APIs answer over HTTPS", || {
        admin(internal.1, "GET", "/v1/queue", json!(null)).is_some()
            && admin(external.1, "GET", "/v1/queue", json!(null)).is_some()
    });
    // Plain HTTP gets no answer from the admin API.
    let plain = ureq::get(format!("http://127.0.0.1:{}/v1/queue", internal.1))
        .header("authorization", &token)
        .call();
    assert!(plain.is_err(), "{plain:?}");

    let (status, created) = admin(
        internal.1,
        "POST",
        "/v1/issues",
        json!({"summary": "Over TLS", "status": "Open"}),
    )
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let (status, _) = admin(
        internal.1,
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [created["key"]]}),
    )
    .unwrap();
    assert_eq!(status, 200);
    eventually(WAIT, "the issue reaches External over HTTPS", || {
        admin(external.1, "GET", "/v1/issues/EXT-1", json!(null))
            .is_some_and(|(status, issue)| status == 200 && issue["summary"] == "Over TLS")
    });
}
