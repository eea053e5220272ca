//! Messages in batches (`POST /v1/messages/batch`): a batch is checked whole before anything
//! is stored, each message gets its own receipt, and a sender falls back to one message per
//! request for a node without the route.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use twinsync::clock::ManualClock;
use twinsync::config::Secret;
use twinsync::store::events;
use twinsync::sync::SyncMessage;
use twinsync::tracker::Tracker;
use twinsync::transport::client::Sender;
use twinsync::transport::protocol::{
    BATCH_PATH, CONNECTION_HEADER, MAX_BATCH, MESSAGE_ID_HEADER, MESSAGES_PATH, SIGNATURE_HEADER,
    TIMESTAMP_HEADER, sign,
};
use twinsync::transport::server::Receiver;
use twinsync_tests::{Pair, Side};

const NOW: &str = "1767225600";

fn secret() -> Secret {
    Secret::new("batch-test-secret".to_string())
}

/// A receiver for External of `pair`.
fn receiver(pair: &Pair) -> Receiver {
    Receiver {
        node: pair.external.node.clone(),
        secrets: HashMap::from([("internal-external".to_string(), secret())]),
        clock: Arc::new(ManualClock::starting_at(1_767_225_600_000)),
        on_accept: Box::new(|| {}),
    }
}

/// Message `seq` of Internal's twin `twin`, as Internal would send it.
fn message(twin: u32, seq: i64) -> Value {
    json!({
        "version": 1,
        "id": format!("Internal-abc123-{twin}{seq:03}"),
        "connection": "internal-external",
        "twin": format!("Internal-abc123-t{twin}"),
        "seq": seq,
        "kind": "update",
        "reason": "manual-exalate",
        "hop": 0,
        "sender_key": format!("INT-{twin}"),
        "replica": {"summary": format!("issue {twin} rev {seq}"), "status": "Open"}
    })
}

/// Headers of a request to `path` signed with the connection's secret.
fn signed(path: &str, id: &str, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONNECTION_HEADER,
        HeaderValue::from_static("internal-external"),
    );
    headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static(NOW));
    headers.insert(MESSAGE_ID_HEADER, HeaderValue::from_str(id).unwrap());
    let signature = sign(&secret(), "POST", path, NOW, id, body);
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
    headers
}

fn stored(pair: &Pair) -> usize {
    pair.external
        .node
        .store()
        .read(|db| events::all(db))
        .unwrap()
        .len()
}

fn statuses(answer: &Value) -> Vec<&str> {
    answer
        .as_array()
        .unwrap_or_else(|| panic!("receipts: {answer}"))
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect()
}

#[test]
fn a_batch_is_stored_in_order_with_a_receipt_per_message() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let receiver = receiver(&pair);
    let batch = json!([message(1, 1), message(2, 1), message(1, 2)]);
    let body = serde_json::to_vec(&batch).unwrap();
    let (status, answer) =
        receiver.handle_batch(&signed(BATCH_PATH, "Internal-abc123-1001", &body), &body);
    assert_eq!(status.as_u16(), 200, "{answer}");
    assert_eq!(statuses(&answer), ["accepted", "accepted", "accepted"]);
    assert_eq!(stored(&pair), 3);

    // Sent again (the sender did not get the answer): duplicates, nothing stored twice.
    let (status, answer) =
        receiver.handle_batch(&signed(BATCH_PATH, "Internal-abc123-1001", &body), &body);
    assert_eq!(status.as_u16(), 200, "{answer}");
    assert_eq!(statuses(&answer), ["duplicate", "duplicate", "duplicate"]);
    assert_eq!(stored(&pair), 3);

    // The node processes them, each twin's in order.
    while pair.external.node.process_ready(64).unwrap().total() > 0 {}
    let done: Vec<(String, String)> = pair
        .external
        .node
        .store()
        .read(|db| events::all(db))
        .unwrap()
        .into_iter()
        .map(|e| (e.id, format!("{:?}", e.state)))
        .collect();
    let ids: Vec<&str> = done.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "Internal-abc123-1001",
            "Internal-abc123-2001",
            "Internal-abc123-1002"
        ]
    );
    assert!(done.iter().all(|(_, state)| state == "Done"), "{done:?}");
    let twin = pair
        .external
        .node
        .store()
        .read(|db| twinsync::store::twins::get(db, "Internal-abc123-t1"))
        .unwrap()
        .expect("twin 1 exists");
    assert!(
        pair.external
            .tracker
            .get(&twin.local_key)
            .unwrap()
            .is_some()
    );
}

#[test]
fn each_message_of_a_batch_gets_its_own_answer() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let receiver = receiver(&pair);
    let mut unsupported = message(2, 1);
    unsupported["version"] = json!(7);
    // Twin 3's message 2 arrives without its message 1.
    let batch = json!([message(1, 1), unsupported, message(3, 2)]);
    let body = serde_json::to_vec(&batch).unwrap();
    let (status, answer) =
        receiver.handle_batch(&signed(BATCH_PATH, "Internal-abc123-1001", &body), &body);
    assert_eq!(status.as_u16(), 200, "{answer}");
    assert_eq!(statuses(&answer), ["accepted", "refused", "out-of-order"]);
    assert!(
        answer[1]["reason"]
            .as_str()
            .unwrap()
            .contains("message version 7 is not supported"),
        "{answer}"
    );
    assert_eq!(answer[2]["expected"], 1, "{answer}");
    assert_eq!(stored(&pair), 1);
}

#[test]
fn a_batch_that_fails_a_check_stores_nothing() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let receiver = receiver(&pair);
    let good = json!([message(1, 1), message(2, 1)]);
    let good_body = serde_json::to_vec(&good).unwrap();
    let mut other_connection = message(2, 1);
    other_connection["connection"] = json!("internal-other");
    let too_many: Vec<Value> = (0..=MAX_BATCH as u32).map(|n| message(n + 10, 1)).collect();
    let cases: Vec<(&str, HeaderMap, Vec<u8>, u16, &str)> = vec![
        (
            "a single message's signature on the batch route",
            signed(MESSAGES_PATH, "Internal-abc123-1001", &good_body),
            good_body.clone(),
            401,
            "bad signature",
        ),
        (
            "an id header that is not the first message's",
            signed(BATCH_PATH, "Internal-abc123-2001", &good_body),
            good_body.clone(),
            400,
            "first message",
        ),
        (
            "a message of another connection",
            {
                let body = serde_json::to_vec(&json!([message(1, 1), other_connection])).unwrap();
                signed(BATCH_PATH, "Internal-abc123-1001", &body)
            },
            serde_json::to_vec(&json!([message(1, 1), other_connection])).unwrap(),
            400,
            "of the connection in the header",
        ),
        (
            "no message",
            signed(BATCH_PATH, "Internal-abc123-1001", b"[]"),
            b"[]".to_vec(),
            400,
            "1 to 64 messages",
        ),
        (
            "more than the most a batch holds",
            {
                let body = serde_json::to_vec(&too_many).unwrap();
                signed(BATCH_PATH, too_many[0]["id"].as_str().unwrap(), &body)
            },
            serde_json::to_vec(&too_many).unwrap(),
            400,
            "1 to 64 messages",
        ),
        (
            "one message, not a list",
            {
                let body = serde_json::to_vec(&message(1, 1)).unwrap();
                signed(BATCH_PATH, "Internal-abc123-1001", &body)
            },
            serde_json::to_vec(&message(1, 1)).unwrap(),
            400,
            "malformed batch",
        ),
    ];
    for (what, headers, body, expected, reason) in cases {
        let (status, answer) = receiver.handle_batch(&headers, &body);
        assert_eq!(status.as_u16(), expected, "{what}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{what}: {answer}"
        );
        assert_eq!(stored(&pair), 0, "{what}: nothing stored");
    }
}

#[test]
fn a_sender_posts_one_message_per_request_to_a_node_without_batches() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let receiver = Arc::new(receiver(&pair));
    // An older node: only the single-message route.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        MESSAGES_PATH,
        axum::routing::post(
            move |headers: HeaderMap, body: axum::body::Bytes| async move {
                let receiver = receiver.clone();
                let (status, answer) =
                    tokio::task::spawn_blocking(move || receiver.handle(&headers, &body))
                        .await
                        .unwrap();
                (status, axum::Json(answer))
            },
        ),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });

    let sender = Sender::new(
        "internal-external",
        &format!("http://{address}"),
        secret(),
        None,
    )
    .unwrap();
    let messages: Vec<SyncMessage> = [message(1, 1), message(2, 1)]
        .into_iter()
        .map(|m| serde_json::from_value(m).unwrap())
        .collect();
    let now = NOW.parse().unwrap();
    assert!(
        sender.send_batches(&messages, now).is_none(),
        "the older node has no batch route"
    );
    for message in &messages {
        let receipt = sender.send(message, now).unwrap();
        assert!(receipt.is_acknowledgement(), "{receipt:?}");
    }
    assert_eq!(stored(&pair), 2);
    // It is not asked again.
    assert!(sender.send_batches(&messages, now).is_none());
}
