//! A running node refuses what it must refuse, with a clear status and reason, and stores
//! nothing: the database is compared before and after every refused request.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use twinsync::config::Secret;
use twinsync::model::{Issue, SyncReason};
use twinsync::store::bodies::unpack;
use twinsync::store::sql::args;
use twinsync::sync::{MESSAGE_VERSION, MessageKind, SyncMessage};
use twinsync::transport::protocol::{
    CONNECTION_HEADER, MESSAGE_ID_HEADER, MESSAGES_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign,
};
use twinsync_tests::process::{NodeProcess, NodeSpec, SECRET, free_port};

const OTHER_SECRET: &str = "another-connection-secret";
/// A twin Internal exalated (ids are `INSTANCE-DATABASE-tN`).
const TWIN: &str = "Internal-abc123-t1";

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
        twin: TWIN.into(),
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

    let mut missing = Request::signed(&message("Internal-abc123-1", 1));
    missing.signature = None;
    assert_refused(
        &node,
        "missing signature",
        missing,
        401,
        "missing header x-twinsync-signature",
    );

    let mut wrong = Request::signed(&message("Internal-abc123-1", 1));
    wrong.signature = Some(format!("v1={}", "0".repeat(64)));
    assert_refused(&node, "wrong signature", wrong, 401, "bad signature");

    let mut truncated = Request::signed(&message("Internal-abc123-1", 1));
    truncated.signature = truncated.signature.map(|s| s[..s.len() - 8].to_string());
    assert_refused(
        &node,
        "truncated signature",
        truncated,
        401,
        "bad signature",
    );

    let stale_body = serde_json::to_vec(&message("Internal-abc123-1", 1)).unwrap();
    let stale = Request::signed_body("Internal-abc123-1", stale_body, SECRET, now() - 600);
    assert_refused(&node, "a message 10 minutes old", stale, 401, "stale");

    let huge = Request::signed_body("Internal-abc123-1", vec![b' '; 50 << 20], SECRET, now());
    let before = state(&node);
    let (status, body) = huge.send(&node);
    assert!(status == 413 || status == 0, "50 MB body: {status} {body}");
    assert_eq!(state(&node), before, "50 MB body: the node's state changed");

    let invalid = Request::signed_body(
        "Internal-abc123-1",
        b"{\"version\": 1, \"id\": ".to_vec(),
        SECRET,
        now(),
    );
    assert_refused(&node, "invalid JSON", invalid, 400, "malformed message");

    let body = serde_json::to_vec(&message("Internal-abc123-1", 1)).unwrap();
    let other = Request::signed_body("Internal-abc123-1", body, OTHER_SECRET, now());
    assert_refused(
        &node,
        "a valid signature for another connection",
        other,
        401,
        "bad signature",
    );

    let mut unknown = Request::signed(&message("Internal-abc123-1", 1));
    unknown.connection = Some("nobody".into());
    assert_refused(
        &node,
        "unknown connection",
        unknown,
        404,
        "unknown connection `nobody`",
    );

    let mut mismatched = message("Internal-abc123-1", 1);
    mismatched.id = "Internal-abc123-2".into();
    let body = serde_json::to_vec(&mismatched).unwrap();
    assert_refused(
        &node,
        "an id that differs from the signed header",
        Request::signed_body("Internal-abc123-1", body, SECRET, now()),
        400,
        "must match the headers",
    );

    // The control: a good message is accepted and stored...
    let (status, body) = Request::signed(&message("Internal-abc123-1", 1)).send(&node);
    assert_eq!((status, body), (200, json!({"status": "accepted"})));
    twinsync_tests::process::eventually(Duration::from_secs(10), "the message is applied", || {
        node.get("/v1/twins")
            .as_array()
            .is_some_and(|t| t.len() == 1)
    });
    // ...and replayed, it is answered as already applied and not applied again. (First let
    // the node finish with it: it also reads its tracker's change feed afterwards.)
    let before = settled(&node);
    let (status, body) = Request::signed(&message("Internal-abc123-1", 1)).send(&node);
    assert_eq!((status, body), (200, json!({"status": "duplicate"})));
    assert_eq!(
        state(&node),
        before,
        "a replayed message changed the node's state"
    );
}

/// The node's state once it has stopped changing (it finished processing what it took, and
/// read its tracker's change feed afterwards).
fn settled(node: &NodeProcess) -> String {
    let mut before = state(node);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = state(node);
        if now == before {
            return now;
        }
        before = now;
    }
}

/// A request on the receive-only connection `other` (remote instance Elsewhere), signed
/// with its own secret: a peer authenticated on another connection.
fn from_other(message: &SyncMessage) -> Request {
    let mut message = message.clone();
    message.connection = "other".into();
    let body = serde_json::to_vec(&message).unwrap();
    let mut request = Request::signed_body(&message.id, body, OTHER_SECRET, now());
    request.connection = Some("other".into());
    request
}

fn with_twin(mut message: SyncMessage, twin: &str) -> SyncMessage {
    message.twin = twin.into();
    message
}

/// Apply message 1 of [`TWIN`] from Internal and wait until the node has created its issue.
fn twin_on_internal_external(node: &NodeProcess) -> String {
    let (status, body) = Request::signed(&message("Internal-abc123-1", 1)).send(node);
    assert_eq!((status, body), (200, json!({"status": "accepted"})));
    twinsync_tests::process::eventually(Duration::from_secs(10), "the message is applied", || {
        node.get("/v1/twins")
            .as_array()
            .is_some_and(|t| t.len() == 1)
    });
    settled(node)
}

#[test]
fn a_peer_cannot_touch_another_connections_twins_or_ids() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let before = twin_on_internal_external(&node);

    // Elsewhere, correctly signed for its own connection, names Internal's twin: an update
    // (whatever the number: no expected number is handed back), and an unexalate.
    for seq in [1, 2, 9] {
        let mut update = with_twin(message("Elsewhere-abc123-1", seq), TWIN);
        update.replica.as_mut().unwrap().summary = "Hijacked".into();
        assert_refused(
            &node,
            &format!("update of another connection's twin, seq {seq}"),
            from_other(&update),
            403,
            "is not a twin of connection `other`",
        );
    }
    let mut unexalate = with_twin(message("Elsewhere-abc123-2", 2), TWIN);
    unexalate.kind = MessageKind::Unexalate;
    unexalate.replica = None;
    assert_refused(
        &node,
        "unexalate of another connection's twin",
        from_other(&unexalate),
        403,
        "is not a twin of connection `other`",
    );
    // Nor can it start a twin in Internal's name (the twin Internal will exalate next)...
    assert_refused(
        &node,
        "a new twin named by another instance",
        from_other(&with_twin(
            message("Elsewhere-abc123-3", 1),
            "Internal-abc123-t2",
        )),
        403,
        "a new twin is named by Elsewhere",
    );
    // ...nor send ids of Internal's.
    assert_refused(
        &node,
        "a message id of another instance",
        from_other(&with_twin(
            message("Internal-abc123-2", 1),
            "Elsewhere-abc123-t1",
        )),
        403,
        "is not one of Elsewhere's ids",
    );

    // A peer cannot take the node's own ids: the events it will make, the twins it will
    // exalate.
    let store_id: String = rusqlite::Connection::open(node.dir.join("data/twinsync.db"))
        .unwrap()
        .query_row("SELECT value FROM meta WHERE name = 'store.id'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let future = format!("External-{store_id}-50");
    let mut taking = message(&future, 2);
    taking.id = future.clone();
    assert_refused(
        &node,
        "a future id of the node's own events",
        Request::signed(&taking),
        403,
        "is not one of Internal's ids",
    );
    assert_refused(
        &node,
        "a future twin id of the node's own",
        Request::signed(&with_twin(
            message("Internal-abc123-2", 1),
            &format!("External-{store_id}-t50"),
        )),
        403,
        "a new twin is named by Internal",
    );
    assert_eq!(settled(&node), before);

    // The control: Elsewhere's own twin, with its own ids, is taken.
    let own = with_twin(message("Elsewhere-abc123-1", 1), "Elsewhere-abc123-t1");
    let (status, body) = from_other(&own).send(&node);
    assert_eq!((status, body), (200, json!({"status": "accepted"})));
}

#[test]
fn an_id_and_a_number_that_disagree_are_refused_never_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    twin_on_internal_external(&node);

    // A new id with a number already received (a sender whose database went back): not
    // "duplicate", which would let the real message 1... be lost; an error with both ids.
    assert_refused(
        &node,
        "a used number with a new id",
        Request::signed(&message("Internal-abc123-2", 1)),
        422,
        "message 1 of twin `Internal-abc123-t1` was received before as `Internal-abc123-1`",
    );
    // The same id with other content.
    let mut changed = message("Internal-abc123-1", 1);
    changed.replica.as_mut().unwrap().summary = "Something else".into();
    assert_refused(
        &node,
        "a used id with other content",
        Request::signed(&changed),
        422,
        "was received before with other content",
    );
    // The same id as a later number.
    assert_refused(
        &node,
        "a used id with another number",
        Request::signed(&message("Internal-abc123-1", 2)),
        422,
        "was received before with other content",
    );

    // The real message 2 is taken, and message 1 delivered again is a duplicate. Its summary
    // is a write made after everything External has (last-writer-wins decides by stamps).
    let mut second = message("Internal-abc123-2", 2);
    second.replica.as_mut().unwrap().summary = "Second".into();
    second.stamps.insert(
        "summary".into(),
        twinsync::model::fields::Stamp {
            at: (now() + 60) * 1000,
            by: "Internal".into(),
            replaced_at: 0,
            replaced_by: String::new(),
        },
    );
    let (status, body) = Request::signed(&second).send(&node);
    assert_eq!((status, body), (200, json!({"status": "accepted"})));
    let (status, body) = Request::signed(&message("Internal-abc123-1", 1)).send(&node);
    assert_eq!((status, body), (200, json!({"status": "duplicate"})));
    twinsync_tests::process::eventually(Duration::from_secs(10), "message 2 is applied", || {
        node.issue("EXT-1")
            .is_some_and(|issue| issue["summary"] == "Second")
    });
}

#[test]
fn a_hostile_hop_or_timestamp_is_refused_or_stopped_never_an_overflow() {
    use std::collections::HashMap;

    use axum::http::{HeaderMap, HeaderValue};
    use twinsync::transport::server::Receiver;
    use twinsync_tests::{Pair, Side, failed};

    // External runs remote-key, which syncs back on first sync: hop + 1.
    let pair = Pair::new(Side::both("remote-key"), Side::both("remote-key"));
    let mut hostile = message("Internal-abc123-1", 1);
    hostile.hop = u32::MAX;
    hostile.reason = SyncReason::SyncBack;
    let node = &pair.external.node;
    assert_eq!(
        node.receive(&hostile).unwrap(),
        twinsync::sync::Receipt::Accepted
    );
    for _ in 0..3 {
        node.process_ready(10).unwrap();
    }
    // The issue is created, and the sync back it asked for is stopped as a chain too long.
    let errors = failed(node);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_kind.as_deref(), Some("sync-back-loop"));
    assert_eq!(errors[0].hop, u32::MAX);

    let secret = Secret::new(SECRET);
    let receiver = Receiver {
        node: node.clone(),
        secrets: HashMap::from([("internal-external".to_string(), secret.clone())]),
        clock: pair.clock.clone(),
        on_accept: Box::new(|| {}),
    };
    let body = serde_json::to_vec(&message("Internal-abc123-2", 2)).unwrap();
    for timestamp in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
        let timestamp = timestamp.to_string();
        let signature = sign(
            &secret,
            "POST",
            MESSAGES_PATH,
            &timestamp,
            "Internal-abc123-2",
            &body,
        );
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (CONNECTION_HEADER, "internal-external"),
            (MESSAGE_ID_HEADER, "Internal-abc123-2"),
            (TIMESTAMP_HEADER, timestamp.as_str()),
            (SIGNATURE_HEADER, signature.as_str()),
        ] {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        let (status, answer) = receiver.handle(&headers, &body);
        assert_eq!(status.as_u16(), 401, "timestamp {timestamp}: {answer}");
    }
}

#[test]
fn a_message_refused_for_good_holds_only_its_twin() {
    use twinsync_tests::{CONNECTION, Pair, Side, edit, failed, issue};

    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (poisoned_key, poisoned) = pair.create_and_exalate(issue("Poisoned"));
    let (good_key, good) = pair.create_and_exalate(issue("Good"));
    let internal = &pair.internal.node;
    for _ in 0..3 {
        internal.process_ready(10).unwrap();
    }
    // The first message in the outbox becomes one External refuses for good (a version it
    // does not speak): as a node with a bug, or a peer that changed its rules, would make.
    internal
        .store()
        .write(|tx| {
            // Stored compressed on SQLite: written back as text, which reads as it is.
            let (seq, body) = tx
                .row(
                    "SELECT seq, body FROM outbox ORDER BY seq LIMIT 1",
                    &[],
                    |r| Ok((r.get::<i64>(0)?, unpack(r.value(1)?)?)),
                )?
                .expect("a message in the outbox");
            let body = body.unwrap();
            assert!(body.contains("\"version\":1"), "{body}");
            let body = body.replace("\"version\":1", "\"version\":7");
            let changed = tx.execute(
                "UPDATE outbox SET body = ?2 WHERE seq = ?1",
                args![seq, body.as_str()],
            )?;
            assert_eq!(changed, 1);
            Ok(())
        })
        .unwrap();
    pair.run();

    // The good twin syncs, and keeps syncing; the poisoned one is a sync error on Internal.
    assert_eq!(pair.external_issue(&good).unwrap().summary, "Good");
    assert!(pair.external_issue(&poisoned).is_none());
    let errors = failed(internal);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].twin_id, poisoned);
    assert_eq!(errors[0].error_kind.as_deref(), Some("refused-by-peer"));
    assert!(
        errors[0]
            .error
            .as_deref()
            .unwrap()
            .contains("message version 7 is not supported"),
        "{errors:?}"
    );
    edit(&pair.internal, &good_key, |i| {
        i.summary = "Good, edited".into()
    });
    edit(&pair.internal, &poisoned_key, |i| {
        i.summary = "Poisoned, edited".into()
    });
    pair.run();
    assert_eq!(pair.external_issue(&good).unwrap().summary, "Good, edited");
    assert!(pair.external_issue(&poisoned).is_none());
    assert_eq!(internal.outbox(CONNECTION, 10).unwrap(), vec![]);

    // Skipped, the refused message leaves the outbox and the twin goes on with its next
    // change, numbered where the refused one was.
    twinsync::ops::skip(internal.store(), &errors[0].id).unwrap();
    pair.run();
    assert_eq!(
        pair.external_issue(&poisoned).unwrap().summary,
        "Poisoned, edited"
    );
    assert!(failed(internal).is_empty(), "{:?}", failed(internal));
    let external_errors = failed(&pair.external.node);
    assert!(external_errors.is_empty(), "{external_errors:?}");
}
