//! Signed change notifications (`POST /v1/changes`) to a real `twinsync serve` over HTTP:
//! a notified change syncs while the tracker is not polled, a replay is recognised, every
//! bad notification is refused and queues nothing, and reconciliation finds a change no
//! notification reported.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use twinsync::config::Secret;
use twinsync::transport::protocol::sign;
use twinsync::webhooks::CHANGES_PATH;
use twinsync_tests::process::{NodeProcess, eventually, pair_with};

const WAIT: Duration = Duration::from_secs(30);
const WEBHOOK_SECRET: &str = "test-webhook-secret";
const WEBHOOKS: &str = r#"
[webhooks]
secret = "test-webhook-secret"
"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request to the node-to-node address with the given headers; status and JSON body.
fn post(node: &NodeProcess, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1:{}{CHANGES_PATH}", node.spec.port))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = agent
        .run(request.body(body.to_vec()).unwrap())
        .expect("the node answers");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_json().unwrap_or(Value::Null),
    )
}

/// The headers of a notification signed with `secret`.
fn signed(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let timestamp = timestamp.to_string();
    let signature = sign(
        &Secret::new(secret),
        "POST",
        CHANGES_PATH,
        &timestamp,
        id,
        body,
    );
    vec![
        ("x-twinsync-message-id", id.to_string()),
        ("x-twinsync-timestamp", timestamp),
        ("x-twinsync-signature", signature),
    ]
}

/// Notify `keys` as changed, signed with the right secret.
fn notify(node: &NodeProcess, id: &str, keys: &[&str]) -> (u16, Value) {
    let body = json!({ "issues": keys }).to_string();
    post(
        node,
        &signed(WEBHOOK_SECRET, id, now(), body.as_bytes()),
        body.as_bytes(),
    )
}

/// A pair whose Internal takes webhooks and does not poll its tracker, with one issue
/// synced; returns the nodes and both keys.
fn synced_pair(dir: &std::path::Path) -> (NodeProcess, NodeProcess, String, String) {
    let (internal, external) =
        pair_with(twinsync_tests::twinsync_binary!(), dir, "mirror", WEBHOOKS);
    let (status, created) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": "rev 0", "status": "Open"}),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let (status, body) = internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    assert_eq!(status, 200, "{body}");
    eventually(WAIT, "External creates its issue", || {
        external
            .get("/v1/twins")
            .as_array()
            .is_some_and(|t| t.len() == 1)
    });
    let remote = external.get("/v1/twins")[0]["local_key"]
        .as_str()
        .unwrap()
        .to_string();
    (internal, external, key, remote)
}

fn edit(node: &NodeProcess, key: &str, summary: &str) {
    let (status, body) = node.send(
        "PATCH",
        &format!("/v1/issues/{key}"),
        json!({ "summary": summary }),
    );
    assert_eq!(status, 200, "{body}");
}

fn summary(node: &NodeProcess, key: &str) -> String {
    node.issue(key).unwrap()["summary"]
        .as_str()
        .unwrap()
        .to_string()
}

fn events(node: &NodeProcess) -> usize {
    node.get("/v1/events").as_array().unwrap().len()
}

#[test]
fn a_notified_change_syncs_without_polling_and_a_replay_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, external, key, remote) = synced_pair(dir.path());

    edit(&internal, &key, "rev 1");
    // Not polled: without a notification the change stays here.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(summary(&external, &remote), "rev 0");

    let body = json!({ "issues": [key] }).to_string();
    let headers = signed(WEBHOOK_SECRET, "n-1", now(), body.as_bytes());
    let (status, answer) = post(&internal, &headers, body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"issues": [{"key": key, "result": "queued", "events": 1}]})
    );
    eventually(WAIT, "the notified change reaches External", || {
        summary(&external, &remote) == "rev 1"
    });

    // The same request again, as an attacker who recorded it would send it.
    let before = events(&internal);
    let (status, answer) = post(&internal, &headers, body.as_bytes());
    assert_eq!((status, answer), (200, json!({"duplicate": true})));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(events(&internal), before, "a replay queued an event");
}

#[test]
fn bad_notifications_are_refused_and_queue_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, _external, key, _) = synced_pair(dir.path());
    let before = events(&internal);
    let body = json!({ "issues": [key] }).to_string();
    let body = body.as_bytes();

    // What is wrong, the headers, the body, the status and what the error must say.
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "another secret",
            signed("not-the-secret", "b-1", now(), body),
            body.to_vec(),
            401,
            "bad signature",
        ),
        (
            "the node-to-node secret",
            signed(twinsync_tests::process::SECRET, "b-2", now(), body),
            body.to_vec(),
            401,
            "bad signature",
        ),
        (
            "a body changed after signing",
            signed(WEBHOOK_SECRET, "b-3", now(), body),
            json!({"issues": [key, "INT-99"]}).to_string().into_bytes(),
            401,
            "bad signature",
        ),
        (
            "an old timestamp",
            signed(WEBHOOK_SECRET, "b-4", now() - 3600, body),
            body.to_vec(),
            401,
            "stale",
        ),
        (
            "no signature",
            signed(WEBHOOK_SECRET, "b-5", now(), body)[..2].to_vec(),
            body.to_vec(),
            401,
            "missing header",
        ),
        (
            "a body over 64 KiB",
            signed(WEBHOOK_SECRET, "b-6", now(), &vec![b' '; 70 << 10]),
            vec![b' '; 70 << 10],
            413,
            "",
        ),
        (
            "not JSON",
            signed(WEBHOOK_SECRET, "b-7", now(), b"issues=INT-1"),
            b"issues=INT-1".to_vec(),
            400,
            "expected {\"issues\"",
        ),
        (
            "no issue",
            signed(WEBHOOK_SECRET, "b-8", now(), br#"{"issues": []}"#),
            br#"{"issues": []}"#.to_vec(),
            400,
            "1 to 1000 issues",
        ),
    ];
    for (what, headers, body, status, error) in cases {
        let (got, answer) = post(&internal, &headers, &body);
        assert_eq!(got, status, "{what}: {answer}");
        if !error.is_empty() {
            let said = answer["error"].as_str().unwrap_or_default();
            assert!(said.contains(error), "{what}: {answer}");
        }
    }

    // Unknown issues are named; known ones in the same notification still count.
    let (status, answer) = notify(&internal, "u-1", &["INT-404"]);
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no such issue in the tracker: INT-404"),
        "{answer}"
    );
    let (_, other) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": "not synced", "status": "Open"}),
    );
    let other = other["key"].as_str().unwrap();
    let (status, answer) = notify(&internal, "u-2", &[other, "INT-404"]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["issues"],
        json!([
            {"key": other, "result": "not-synced", "events": 0},
            {"key": "INT-404", "result": "unknown", "events": 0},
        ])
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        events(&internal),
        before,
        "a refused notification queued an event"
    );
}

#[test]
fn reconciliation_finds_a_change_no_notification_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, external, key, remote) = synced_pair(dir.path());
    edit(&internal, &key, "changed, never notified");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(summary(&external, &remote), "rev 0");
    // What `serve` runs every `verify-interval-minutes`.
    let (status, report) = internal.send("POST", "/v1/verify", json!({}));
    assert_eq!(status, 200, "{report}");
    eventually(WAIT, "reconciliation sends the change", || {
        summary(&external, &remote) == "changed, never notified"
    });
}
