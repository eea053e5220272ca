//! A running node refuses what it must refuse, with a clear status and reason, and stores
//! nothing: the database is compared before and after every refused request.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use twinsync::config::Secret;
use twinsync::model::{Issue, SyncReason};
use twinsync::sync::{MESSAGE_VERSION, MessageKind, SyncMessage};
use twinsync::transport::protocol::{
    CONNECTION_HEADER, MESSAGE_ID_HEADER, MESSAGES_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign,
};
use twinsync_tests::process::{NodeProcess, NodeSpec, SECRET, free_port};

const OTHER_SECRET: &str = "another-connection-secret";

/// External, with its connection to Internal and a second connection, `other`.
fn node(dir: &Path) -> NodeProcess {
    NodeProcess::start(
        twinsync_tests::twinsync_binary!(),
        dir,
        NodeSpec {
            instance: "External",
            project: "EXT",
            remote: "Internal",
            port: free_port(),
            admin_port: free_port(),
            remote_port: free_port(),
            processor: "mirror",
            extra: r#"
[[connection]]
name = "other"
remote-instance = "Elsewhere"
direction = "receive-only"
incoming = "mirror"
secret = "another-connection-secret"
"#,
        },
    )
}

fn message(id: &str, seq: i64) -> SyncMessage {
    SyncMessage {
        version: MESSAGE_VERSION,
        id: id.into(),
        connection: "internal-external".into(),
        twin: "Internal-t1".into(),
        seq,
        kind: MessageKind::Update,
        reason: SyncReason::ManualExalate,
        hop: 0,
        sender_key: "INT-1".into(),
        replica: Some(Issue {
            summary: "Signed and sealed".into(),
            status: "Open".into(),
            ..Issue::default()
        }),
        stamps: Default::default(),
        applied: None,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request as a sender would make it, with every part overridable.
struct Request {
    connection: Option<String>,
    message_id: Option<String>,
    timestamp: Option<String>,
    signature: Option<String>,
    body: Vec<u8>,
}

impl Request {
    fn signed(message: &SyncMessage) -> Request {
        Request::signed_body(
            &message.id,
            serde_json::to_vec(message).unwrap(),
            SECRET,
            now(),
        )
    }

    fn signed_body(id: &str, body: Vec<u8>, secret: &str, timestamp: i64) -> Request {
        let timestamp = timestamp.to_string();
        let signature = sign(
            &Secret::new(secret),
            "POST",
            MESSAGES_PATH,
            &timestamp,
            id,
            &body,
        );
        Request {
            connection: Some("internal-external".into()),
            message_id: Some(id.into()),
            timestamp: Some(timestamp),
            signature: Some(signature),
            body,
        }
    }

    fn send(&self, node: &NodeProcess) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut request = agent.post(format!(
            "http://127.0.0.1:{}{MESSAGES_PATH}",
            node.spec.port
        ));
        for (name, value) in [
            (CONNECTION_HEADER, &self.connection),
            (MESSAGE_ID_HEADER, &self.message_id),
            (TIMESTAMP_HEADER, &self.timestamp),
            (SIGNATURE_HEADER, &self.signature),
        ] {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        match request.send(&self.body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                (
                    status,
                    response.body_mut().read_json().unwrap_or(Value::Null),
                )
            }
            // A server may close the connection on a body it refuses to read.
            Err(error) => (0, json!({ "transport": error.to_string() })),
        }
    }
}

/// Everything the node has stored: its queue database and its tracker.
fn state(node: &NodeProcess) -> String {
    let mut dump = String::new();
    for (file, tables) in [
        ("twinsync.db", &["events", "twins", "outbox", "meta"][..]),
        ("tracker.db", &["issues", "changes", "sync_writes"][..]),
    ] {
        let db = rusqlite::Connection::open(node.dir.join("data").join(file)).unwrap();
        for table in tables {
            let mut stmt = db
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
                .unwrap();
            let columns = stmt.column_count();
            let rows = stmt
                .query_map([], |row| {
                    Ok((0..columns)
                        .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap();
            for row in rows {
                dump.push_str(&format!("{table}: {}\n", row.unwrap()));
            }
        }
    }
    dump
}

fn assert_refused(node: &NodeProcess, what: &str, request: Request, status: u16, reason: &str) {
    let before = state(node);
    let (got, body) = request.send(node);
    assert_eq!(got, status, "{what}: {body}");
    let text = body.to_string();
    assert!(
        text.contains(reason),
        "{what}: {text} should say {reason:?}"
    );
    assert_eq!(state(node), before, "{what}: the node's state changed");
}

#[test]
fn refused_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());

    let mut missing = Request::signed(&message("Internal-1", 1));
    missing.signature = None;
    assert_refused(
        &node,
        "missing signature",
        missing,
        401,
        "missing header x-twinsync-signature",
    );

    let mut wrong = Request::signed(&message("Internal-1", 1));
    wrong.signature = Some(format!("v1={}", "0".repeat(64)));
    assert_refused(&node, "wrong signature", wrong, 401, "bad signature");

    let mut truncated = Request::signed(&message("Internal-1", 1));
    truncated.signature = truncated.signature.map(|s| s[..s.len() - 8].to_string());
    assert_refused(
        &node,
        "truncated signature",
        truncated,
        401,
        "bad signature",
    );

    let stale_body = serde_json::to_vec(&message("Internal-1", 1)).unwrap();
    let stale = Request::signed_body("Internal-1", stale_body, SECRET, now() - 600);
    assert_refused(&node, "a message 10 minutes old", stale, 401, "stale");

    let huge = Request::signed_body("Internal-1", vec![b' '; 50 << 20], SECRET, now());
    let before = state(&node);
    let (status, body) = huge.send(&node);
    assert!(status == 413 || status == 0, "50 MB body: {status} {body}");
    assert_eq!(state(&node), before, "50 MB body: the node's state changed");

    let invalid = Request::signed_body(
        "Internal-1",
        b"{\"version\": 1, \"id\": ".to_vec(),
        SECRET,
        now(),
    );
    assert_refused(&node, "invalid JSON", invalid, 400, "malformed message");

    let body = serde_json::to_vec(&message("Internal-1", 1)).unwrap();
    let other = Request::signed_body("Internal-1", body, OTHER_SECRET, now());
    assert_refused(
        &node,
        "a valid signature for another connection",
        other,
        401,
        "bad signature",
    );

    let mut unknown = Request::signed(&message("Internal-1", 1));
    unknown.connection = Some("nobody".into());
    assert_refused(
        &node,
        "unknown connection",
        unknown,
        404,
        "unknown connection `nobody`",
    );

    let mut mismatched = message("Internal-1", 1);
    mismatched.id = "Internal-2".into();
    let body = serde_json::to_vec(&mismatched).unwrap();
    assert_refused(
        &node,
        "an id that differs from the signed header",
        Request::signed_body("Internal-1", body, SECRET, now()),
        400,
        "must match the headers",
    );

    // The control: a good message is accepted and stored...
    let (status, body) = Request::signed(&message("Internal-1", 1)).send(&node);
    assert_eq!((status, body), (200, json!({"status": "accepted"})));
    twinsync_tests::process::eventually(Duration::from_secs(10), "the message is applied", || {
        node.get("/v1/twins")
            .as_array()
            .is_some_and(|t| t.len() == 1)
    });
    // ...and replayed, it is answered as already applied and not applied again. (First let
    // the node finish with it: it also reads its tracker's change feed afterwards.)
    let mut before = state(&node);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = state(&node);
        if now == before {
            break;
        }
        before = now;
    }
    let (status, body) = Request::signed(&message("Internal-1", 1)).send(&node);
    assert_eq!((status, body), (200, json!({"status": "duplicate"})));
    assert_eq!(
        state(&node),
        before,
        "a replayed message changed the node's state"
    );
}
