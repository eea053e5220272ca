//! Message decoding never panics: thousands of random and mutated requests, correctly signed
//! so that they reach the decoder, against a node's receiver.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use twinsync::clock::ManualClock;
use twinsync::config::Secret;
use twinsync::transport::protocol::{
    CONNECTION_HEADER, MESSAGE_ID_HEADER, MESSAGES_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign,
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

const VALID: &str = r#"{"version":1,"id":"Internal-1","connection":"internal-external","twin":"Internal-t1","seq":1,"kind":"update","reason":"manual-exalate","hop":0,"sender_key":"INT-1","replica":{"summary":"x","status":"Open","comments":[{"id":"c1","body":"hi","created":"2026-01-01T00:00:00Z"}],"custom_fields":[{"name":"f","value":{"type":"number","value":1.5}}]}}"#;

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
            format!("Internal-{}", rng.below(5))
        } else {
            "Internal-1".into()
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
            [200, 400, 409, 422].contains(&status.as_u16()),
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
