//! Two `twinsync serve` processes on loopback, driven through the admin API.

use std::time::Duration;

use serde_json::json;
use twinsync_tests::process::{eventually, pair};

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

    let remote_key = |issue: &serde_json::Value| {
        issue["custom_fields"]
            .as_array()
            .and_then(|fields| fields.iter().find(|f| f["name"] == "remote issue key"))
            .and_then(|f| f["value"]["value"].as_str().map(str::to_string))
    };
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

    // In order, and nothing lost: External applied the twin's messages 1, 2, 3... with no gap.
    let db = rusqlite::Connection::open(external.dir.join("data/twinsync.db")).unwrap();
    let seqs: Vec<(i64, String)> = db
        .prepare("SELECT message_seq, state FROM events WHERE twin_id = ?1 AND direction = 'incoming' ORDER BY seq")
        .unwrap()
        .query_map([twin["twin"].as_str().unwrap()], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<(i64, String)> = (1..=seqs.len() as i64)
        .map(|n| (n, "done".to_string()))
        .collect();
    assert_eq!(seqs, expected);
    assert!(
        seqs.len() >= 2,
        "the edits made while External was down arrived: {seqs:?}"
    );
}
