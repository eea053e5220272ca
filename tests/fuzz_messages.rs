//! Message decoding never panics: thousands of random and mutated requests, correctly signed
//! so that they reach the decoder, against a node's receiver; mutated headers; and messages
//! that are valid JSON with hostile values, accepted and then processed by the node; and
//! batches of such messages, whose receipts must be those the messages get one at a time.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use twinsync::clock::ManualClock;
use twinsync::config::Secret;
use twinsync::sync::SyncMessage;
use twinsync::transport::protocol::{
    BATCH_PATH, CONNECTION_HEADER, MAX_BATCH, MESSAGE_ID_HEADER, MESSAGES_PATH, SIGNATURE_HEADER,
    TIMESTAMP_HEADER, sign,
};
use twinsync::transport::server::Receiver;
use twinsync_tests::{Pair, Side};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const VALID: &str = r#"{"version":1,"id":"Internal-abc123-1","connection":"internal-external","twin":"Internal-abc123-t1","seq":1,"kind":"update","reason":"manual-exalate","hop":0,"sender_key":"INT-1","replica":{"summary":"x","status":"Open","comments":[{"id":"c1","body":"hi","created":"2026-01-01T00:00:00Z"}],"custom_fields":[{"name":"f","value":{"type":"number","value":1.5}}]}}"#;

const FRAGMENTS: &[&str] = &[
    "null",
    "true",
    "-1",
    "1e999",
    "\"\"",
    "[]",
    "{}",
    "\"\\u0000\"",
    "9223372036854775808",
    "\"kind\"",
    "{\"type\":\"user\",\"value\":{}}",
    "\u{1F600}",
    "\\",
    "\"",
    ",",
    ":",
    "}",
    "]",
];

fn mutate(rng: &mut Rng) -> Vec<u8> {
    let mut body = VALID.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        if body.is_empty() {
            body.push(b'{');
        }
        match rng.below(6) {
            0 => body.truncate(rng.below(body.len())),
            1 => {
                let at = rng.below(body.len());
                body[at] = rng.next() as u8;
            }
            2 => {
                let at = rng.below(body.len());
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())];
                body.splice(at..at, fragment.bytes());
            }
            3 => {
                let (a, b) = (rng.below(body.len()), rng.below(body.len()));
                body.drain(a.min(b)..a.max(b));
            }
            4 => body = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
            _ => {
                let text = String::from_utf8_lossy(&body).into_owned();
                body = text.replacen(':', ":[", 1).into_bytes();
            }
        }
    }
    body
}

#[test]
fn ten_thousand_random_messages_never_panic() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let clock = Arc::new(ManualClock::starting_at(1_767_225_600_000));
    let secret = Secret::new("fuzz-secret");
    let receiver = Receiver {
        node: pair.external.node.clone(),
        secrets: HashMap::from([("internal-external".to_string(), secret.clone())]),
        clock,
        on_accept: Box::new(|| {}),
    };
    let seed = 0x5eed_1234_u64;
    let mut rng = Rng(seed);
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for round in 0..10_000 {
        let body = mutate(&mut rng);
        let id = if rng.below(4) == 0 {
            format!("Internal-abc123-{}", rng.below(5))
        } else {
            "Internal-abc123-1".into()
        };
        let timestamp = "1767225600";
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION_HEADER,
            HeaderValue::from_static("internal-external"),
        );
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static(timestamp));
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(MESSAGE_ID_HEADER, value);
        }
        let signature = sign(&secret, "POST", MESSAGES_PATH, timestamp, &id, &body);
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            receiver.handle(&headers, &body)
        }));
        let Ok((status, _)) = result else {
            panic!(
                "round {round} (seed {seed:#x}) panicked on body {:?}",
                String::from_utf8_lossy(&body)
            );
        };
        assert!(
            [200, 400, 403, 409, 422].contains(&status.as_u16()),
            "round {round}: unexpected status {status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        *statuses.entry(status.as_u16()).or_default() += 1;
    }
    // The mutations reach past the JSON parser too, not only into it.
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 1_000,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 10,
        "{statuses:?}"
    );
}

/// A receiver for External of `pair`, with the fuzz secret on the connection.
fn receiver(pair: &Pair, secret: &Secret) -> Receiver {
    Receiver {
        node: pair.external.node.clone(),
        secrets: HashMap::from([("internal-external".to_string(), secret.clone())]),
        clock: Arc::new(ManualClock::starting_at(1_767_225_600_000)),
        on_accept: Box::new(|| {}),
    }
}

const HOSTILE_HEADERS: &[&str] = &[
    "",
    " ",
    "-9223372036854775808",
    "9223372036854775807",
    "99999999999999999999999",
    "-1",
    "1767225600.5",
    "v1=",
    "v1=zz",
    "internal-external\u{0}",
    "other",
    "Internal-abc123-1",
    "External-abc123-1",
];

#[test]
fn mutated_headers_never_panic() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let secret = Secret::new("fuzz-secret");
    let receiver = receiver(&pair, &secret);
    let mut rng = Rng(0x4ead_e125);
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for round in 0..5_000 {
        let body = VALID.as_bytes();
        let timestamp = "1767225600".to_string();
        let id = "Internal-abc123-1".to_string();
        let signature = sign(&secret, "POST", MESSAGES_PATH, &timestamp, &id, body);
        let mut values = [
            Some("internal-external".to_string()),
            Some(id),
            Some(timestamp),
            Some(signature),
        ];
        // Mutate one to four headers: drop it, replace it with a hostile value, or change
        // one of its bytes.
        for _ in 0..=rng.below(4) {
            let which = rng.below(values.len());
            values[which] = match rng.below(3) {
                0 => None,
                1 => Some(HOSTILE_HEADERS[rng.below(HOSTILE_HEADERS.len())].to_string()),
                _ => values[which].take().map(|value| {
                    let mut bytes = value.into_bytes();
                    if !bytes.is_empty() {
                        let at = rng.below(bytes.len());
                        bytes[at] = rng.next() as u8;
                    }
                    String::from_utf8_lossy(&bytes).into_owned()
                }),
            };
        }
        let mut headers = HeaderMap::new();
        let names = [
            CONNECTION_HEADER,
            MESSAGE_ID_HEADER,
            TIMESTAMP_HEADER,
            SIGNATURE_HEADER,
        ];
        for (name, value) in names.iter().zip(&values) {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(*name, value);
            }
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            receiver.handle(&headers, body)
        }));
        let Ok((status, _)) = result else {
            panic!("round {round} panicked on headers {values:?}");
        };
        assert!(
            [200, 400, 401, 404].contains(&status.as_u16()),
            "round {round}: unexpected status {status} for headers {values:?}"
        );
        *statuses.entry(status.as_u16()).or_default() += 1;
    }
    // Every check was reached.
    for status in [400, 401, 404] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) > 50,
            "{statuses:?}"
        );
    }
}

/// Values of any type: most do not fit the field they land in (refused by the decoder).
fn any_value(rng: &mut Rng) -> Value {
    let values = [
        json!(u32::MAX as u64 + 1),
        json!(i64::MIN),
        json!(-1),
        json!(1e308),
        json!(null),
        json!([]),
        json!({}),
        json!(true),
    ];
    values[rng.below(values.len())].clone()
}

fn strings() -> Vec<Value> {
    vec![
        json!(""),
        json!(" "),
        json!("x".repeat(100_000)),
        json!("\u{0}\u{202e}\u{1F600}\u{FEFF}"),
        json!("EXT-1"),
        json!("../../etc/passwd"),
    ]
}

fn times() -> Vec<Value> {
    vec![
        json!("not a date"),
        json!("9999-12-31T23:59:59Z"),
        json!("0000-01-01T00:00:00Z"),
        json!("2026-02-30T00:00:00Z"),
        json!("2026-01-01T00:00:00+14:00"),
        json!(""),
    ]
}

/// Where a hostile value goes in a valid message, and values of the right type for it.
fn field(rng: &mut Rng) -> (&'static [&'static str], Vec<Value>) {
    let comment = |created: Value| json!({"id": "c1", "body": "hi", "created": created});
    let custom = |value: Value| json!([{"name": "f", "value": value}]);
    let fields: Vec<(&'static [&'static str], Vec<Value>)> = vec![
        (
            &["hop"],
            vec![json!(u32::MAX), json!(u32::MAX - 1), json!(11), json!(0)],
        ),
        (&["seq"], vec![json!(1), json!(2), json!(i64::MAX)]),
        (
            &["reason"],
            vec![json!("sync-back"), json!("retry"), json!("local-change")],
        ),
        (&["kind"], vec![json!("unexalate")]),
        (&["sender_key"], strings()),
        (&["replica", "summary"], strings()),
        (&["replica", "status"], strings()),
        (&["replica", "description"], strings()),
        (&["replica", "key"], strings()),
        (&["replica", "due_date"], times()),
        (&["replica", "created"], times()),
        (&["replica", "updated"], times()),
        (
            &["replica", "labels"],
            vec![json!([""]), json!(vec!["x"; 5_000]), json!(["a", "a"])],
        ),
        (&["replica", "comments", "0", "created"], times()),
        (&["replica", "comments", "0", "body"], strings()),
        (&["replica", "comments", "0", "id"], strings()),
        (
            &["replica", "comments"],
            vec![
                json!([comment(json!("")), comment(json!(""))]),
                json!(vec![comment(json!("2026-01-01T00:00:00Z")); 2_000]),
            ],
        ),
        (
            &["replica", "custom_fields"],
            vec![
                custom(json!({"type": "number", "value": 1e308})),
                custom(json!({"type": "number", "value": -0.0})),
                custom(json!({"type": "date", "value": "soon"})),
                custom(json!({"type": "date-time", "value": "9999-99-99"})),
                custom(json!({"type": "null"})),
                custom(json!({"type": "multi-option", "value": vec![""; 1000]})),
                custom(json!({"type": "user", "value": {"id": "", "display_name": ""}})),
                json!([
                    {"name": "f", "value": {"type": "text", "value": "a"}},
                    {"name": "f", "value": {"type": "text", "value": "b"}}
                ]),
                json!([{"name": "", "value": {"type": "text", "value": "x"}}]),
                json!([{"name": "remote issue key", "value": {"type": "text", "value": "INT-99"}}]),
            ],
        ),
        (
            &["replica", "attachments"],
            vec![json!([{"file_name": "../x", "mime_type": "", "size": u64::MAX, "sha256": "zz"}])],
        ),
        (
            &["stamps", "summary", "at"],
            vec![json!(i64::MIN), json!(i64::MAX), json!(-1), json!(0)],
        ),
        (
            &["stamps", "summary", "replaced_at"],
            vec![json!(i64::MIN), json!(i64::MAX)],
        ),
        (&["stamps", "summary", "by"], strings()),
        (
            &["stamps"],
            vec![
                json!({"nonsense-field": {"at": 1, "by": "X"}}),
                json!({"custom-field:": {"at": i64::MAX, "by": ""}}),
            ],
        ),
    ];
    fields[rng.below(fields.len())].clone()
}

fn set(value: &mut Value, path: &[&str], new: Value) {
    let mut at = value;
    for (i, part) in path.iter().enumerate() {
        let last = i == path.len() - 1;
        let next = match (at, part.parse::<usize>()) {
            (Value::Array(items), Ok(n)) if n < items.len() => &mut items[n],
            (Value::Object(map), _) if last => {
                map.insert(part.to_string(), new);
                return;
            }
            (Value::Object(map), _) => map.entry(part.to_string()).or_insert(json!({})),
            _ => return,
        };
        if last {
            *next = new;
            return;
        }
        at = next;
    }
}

#[test]
fn hostile_values_accepted_and_then_processed_never_panic() {
    // External runs remote-key: it syncs back on first sync, so a hostile `hop` reaches
    // the arithmetic of the sync-back chain.
    let pair = Pair::new(Side::both("remote-key"), Side::both("remote-key"));
    let secret = Secret::new("fuzz-secret");
    let receiver = receiver(&pair, &secret);
    let mut rng = Rng(0x0acc_e9ed);
    let stamp = json!({"at": 1_767_225_600_000_i64, "by": "Internal"});
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut processed = 0;
    for round in 0..400 {
        // Each message starts a twin of its own, so that most are taken and processed.
        let mut message: Value = serde_json::from_str(VALID).unwrap();
        let id = format!("Internal-abc123-{}", round + 10);
        message["id"] = json!(id);
        message["twin"] = json!(format!("Internal-abc123-t{}", round + 10));
        message["stamps"] = json!({ "summary": stamp });
        for _ in 0..=rng.below(3) {
            let (path, values) = field(&mut rng);
            // Now and then a value of the wrong type, for the decoder.
            let value = if rng.below(10) == 0 {
                any_value(&mut rng)
            } else {
                values[rng.below(values.len())].clone()
            };
            set(&mut message, path, value);
        }
        let body = serde_json::to_vec(&message).unwrap();
        let timestamp = "1767225600";
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION_HEADER,
            HeaderValue::from_static("internal-external"),
        );
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static(timestamp));
        headers.insert(MESSAGE_ID_HEADER, HeaderValue::from_str(&id).unwrap());
        let signature = sign(&secret, "POST", MESSAGES_PATH, timestamp, &id, &body);
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            receiver.handle(&headers, &body)
        }));
        let Ok((status, answer)) = handled else {
            panic!("round {round}: receiving panicked on {message}");
        };
        assert!(
            [200, 400, 409, 422].contains(&status.as_u16()),
            "round {round}: {status} {answer} for {message}"
        );
        *statuses.entry(status.as_u16()).or_default() += 1;
        // Process what was taken, and what it led to (sync backs), as a node would.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut done = 0;
            for _ in 0..3 {
                done += pair.external.node.process_ready(64).unwrap().total();
            }
            done
        }));
        match run {
            Ok(done) => processed += done,
            Err(_) => panic!("round {round}: processing panicked on {message}"),
        }
    }
    eprintln!("statuses {statuses:?}, events processed {processed}");
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 200,
        "most hostile values pass the decoder: {statuses:?}"
    );
    assert!(processed > 200, "processed {processed}: {statuses:?}");
    // The node still works: a plain message after all that is applied.
    let mut message: Value = serde_json::from_str(VALID).unwrap();
    message["id"] = json!("Internal-abc123-5000");
    message["twin"] = json!("Internal-abc123-t5000");
    let body = serde_json::to_vec(&message).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        CONNECTION_HEADER,
        HeaderValue::from_static("internal-external"),
    );
    headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static("1767225600"));
    headers.insert(
        MESSAGE_ID_HEADER,
        HeaderValue::from_static("Internal-abc123-5000"),
    );
    let signature = sign(
        &secret,
        "POST",
        MESSAGES_PATH,
        "1767225600",
        "Internal-abc123-5000",
        &body,
    );
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
    assert_eq!(receiver.handle(&headers, &body).0.as_u16(), 200);
    pair.external.node.process_ready(64).unwrap();
    let twin = pair
        .external
        .node
        .store()
        .read(|db| twinsync::store::twins::get(db, "Internal-abc123-t5000"))
        .unwrap();
    assert!(twin.is_some(), "the last message was applied");
}

/// Signed headers for a request to `path` on the fuzz connection.
fn signed_headers(secret: &Secret, path: &str, id: &str, body: &[u8]) -> HeaderMap {
    let timestamp = "1767225600";
    let mut headers = HeaderMap::new();
    headers.insert(
        CONNECTION_HEADER,
        HeaderValue::from_static("internal-external"),
    );
    headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static(timestamp));
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(MESSAGE_ID_HEADER, value);
    }
    let signature = sign(secret, "POST", path, timestamp, id, body);
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());
    headers
}

/// Every event a node holds, as `(id, twin, message seq, state)`: what receiving stored.
fn stored_events(node: &twinsync::sync::Node) -> Vec<(String, String, Option<i64>, String)> {
    node.store()
        .read(|db| {
            db.rows(
                "SELECT id, twin_id, message_seq, state FROM events ORDER BY seq",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
        })
        .unwrap()
}

/// A message of one of a few twins, with a number near the twin's next one and an id that
/// is sometimes reused, so that batches hold duplicates, gaps, conflicts between id and
/// number, and now and then a hostile value that still decodes.
fn batch_message(rng: &mut Rng, next_seq: &mut [i64; 4]) -> Value {
    let twin = rng.below(next_seq.len());
    let seq = match rng.below(6) {
        0 => (next_seq[twin] - 1).max(1),
        1 => next_seq[twin] + 1,
        _ => next_seq[twin],
    };
    if seq == next_seq[twin] {
        next_seq[twin] += 1;
    }
    let mut message: Value = serde_json::from_str(VALID).unwrap();
    let id = if rng.below(8) == 0 {
        format!("Internal-abc123-{}", 1000 + rng.below(4))
    } else {
        format!("Internal-abc123-{}", 100 * (twin + 1) + seq as usize)
    };
    message["id"] = json!(id);
    message["twin"] = json!(format!("Internal-abc123-t{}", twin + 1));
    message["sender_key"] = json!(format!("INT-{}", twin + 1));
    message["seq"] = json!(seq);
    match rng.below(10) {
        // A twin of another instance: not Internal's to name.
        0 => message["twin"] = json!("External-abc123-t1"),
        1 => message["kind"] = json!("unexalate"),
        2 | 3 => {
            let (path, values) = field(rng);
            set(&mut message, path, values[rng.below(values.len())].clone());
        }
        _ => {}
    }
    message
}

#[test]
fn batches_answer_as_their_messages_one_at_a_time_would() {
    // Two identical nodes: one takes each batch on the batch route, the other takes the
    // same messages one request at a time. Their receipts and what they store must agree;
    // a batch refused whole must store nothing.
    let batched = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let single = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let secret = Secret::new("fuzz-secret");
    let (batch_receiver, single_receiver) =
        (receiver(&batched, &secret), receiver(&single, &secret));
    let mut rng = Rng(0x0ba7_c4e5);
    let mut next_seq = [1_i64; 4];
    let (mut kinds, mut refused_whole) = (HashMap::<String, usize>::new(), 0);
    for round in 0..400 {
        // Numbers follow on from what the node took, within the batch too.
        let mut planned = next_seq;
        let mut messages: Vec<Value> = (0..=rng.below(12))
            .map(|_| batch_message(&mut rng, &mut planned))
            .collect();
        // Now and then the batch itself is wrong: each of these is refused whole.
        let whole_refusal = match rng.below(12) {
            0 => {
                messages[0]["connection"] = json!("other-connection");
                true
            }
            1 => {
                messages.clear();
                true
            }
            2 => {
                let first = messages[0].clone();
                messages.resize(MAX_BATCH + 1, first);
                true
            }
            3 => {
                messages.push(json!({"version": 1, "id": "Internal-abc123-7"}));
                true
            }
            _ => false,
        };
        // A hostile value the decoder refuses makes the whole batch malformed too.
        let whole_refusal = whole_refusal
            || messages
                .iter()
                .any(|m| serde_json::from_value::<SyncMessage>(m.clone()).is_err());
        let body = serde_json::to_vec(&messages).unwrap();
        let first_id = messages
            .first()
            .and_then(|m| m["id"].as_str())
            .unwrap_or("Internal-abc123-1")
            .to_string();
        let before = stored_events(&batched.external.node);
        let headers = signed_headers(&secret, BATCH_PATH, &first_id, &body);
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch_receiver.handle_batch(&headers, &body)
        }));
        let Ok((status, answer)) = answered else {
            panic!("round {round}: the batch route panicked on {messages:?}");
        };
        if status.as_u16() != 200 {
            assert!(
                whole_refusal,
                "round {round}: {status} {answer} for a batch that should be taken"
            );
            assert_eq!(status.as_u16(), 400, "round {round}: {answer}");
            assert_eq!(
                stored_events(&batched.external.node),
                before,
                "round {round}: a refused batch stored something"
            );
            refused_whole += 1;
            continue;
        }
        assert!(
            !whole_refusal,
            "round {round}: a wrong batch was taken: {answer}"
        );
        let receipts = answer.as_array().expect("a receipt per message").clone();
        assert_eq!(receipts.len(), messages.len(), "round {round}");
        for (message, receipt) in messages.iter().zip(&receipts) {
            let body = serde_json::to_vec(message).unwrap();
            let id = message["id"].as_str().unwrap();
            let headers = signed_headers(&secret, MESSAGES_PATH, id, &body);
            let (status, answer) = single_receiver.handle(&headers, &body);
            // The single route answers a refusal with a status and `{"error": reason}`;
            // the batch route with the receipt itself.
            let one_at_a_time = match status.as_u16() {
                200 | 409 => answer.clone(),
                422 => json!({"status": "refused", "reason": answer["error"]}),
                403 => json!({"status": "forbidden", "reason": answer["error"]}),
                other => panic!("round {round}: single route answered {other} {answer}"),
            };
            assert_eq!(receipt, &one_at_a_time, "round {round}: message {message}");
            let kind = receipt["status"].as_str().unwrap_or("?");
            if kind == "accepted"
                && let Some(twin) = message["twin"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("Internal-abc123-t"))
                    .and_then(|n| n.parse::<usize>().ok())
            {
                next_seq[twin - 1] = message["seq"].as_i64().unwrap() + 1;
            }
            *kinds.entry(kind.to_string()).or_default() += 1;
        }
        assert_eq!(
            stored_events(&batched.external.node),
            stored_events(&single.external.node),
            "round {round}: the two nodes stored different events"
        );
    }
    eprintln!("receipts compared: {kinds:?}; batches refused whole: {refused_whole}");
    // Every kind of receipt was compared, not only the easy ones.
    for kind in [
        "accepted",
        "duplicate",
        "out-of-order",
        "refused",
        "forbidden",
    ] {
        assert!(kinds.get(kind).copied().unwrap_or(0) > 20, "{kinds:?}");
    }
    assert!(refused_whole > 50);
}
