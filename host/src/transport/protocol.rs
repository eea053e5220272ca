//! The node-to-node protocol over HTTP: one sync message per request, signed.
//!
//! ```text
//! POST /v1/messages
//! Content-Type: application/json
//! X-Twinsync-Connection: internal-external
//! X-Twinsync-Message-Id: Internal-42
//! X-Twinsync-Timestamp: 1795896000            (Unix seconds)
//! X-Twinsync-Signature: v1=<hex HMAC-SHA256>
//!
//! <the SyncMessage as JSON>
//! ```
//!
//! The signature covers `METHOD \n PATH \n TIMESTAMP \n MESSAGE-ID \n BODY` with the
//! connection's shared secret. The receiver checks, in this order, and stores nothing
//! unless every check passes: size (413), connection (404), timestamp within the skew
//! window (401), signature (401), JSON and message (400), then hands the message to the
//! node: accepted or duplicate (200), out of order (409), refused (422).
//!
//! Several messages of a connection, in one request (what a sender with a queue does; an
//! older node without this route answers 404 and gets one message per request):
//!
//! ```text
//! POST /v1/messages/batch
//! X-Twinsync-Message-Id: <the first message's id>
//! (the other headers as above; the signature covers this path)
//!
//! [<SyncMessage>, ...]                         (1 to 64 messages, in the order they were made)
//! ```
//!
//! The same checks, for the request and then for every message (each of the connection in
//! the header, the first with the id in the header); a failed check refuses the whole batch
//! and stores nothing. Then the messages are handed to the node in one transaction, in
//! order, and the answer (200) is one receipt per message, in order: accepted, duplicate,
//! out-of-order, refused or forbidden, as the statuses above.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

pub const MESSAGES_PATH: &str = "/v1/messages";
pub const BATCH_PATH: &str = "/v1/messages/batch";
/// The most messages in one batch.
pub const MAX_BATCH: usize = 64;
pub const CONNECTION_HEADER: &str = "x-twinsync-connection";
pub const MESSAGE_ID_HEADER: &str = "x-twinsync-message-id";
pub const TIMESTAMP_HEADER: &str = "x-twinsync-timestamp";
pub const SIGNATURE_HEADER: &str = "x-twinsync-signature";
/// How far the sender's clock may be from the receiver's, in seconds, either way.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// The largest request body accepted: a replica is limited to 1 MiB of text by default.
pub const MAX_BODY_BYTES: usize = 4 << 20;

type HmacSha256 = Hmac<Sha256>;

fn mac(
    secret: &Secret,
    method: &str,
    path: &str,
    timestamp: &str,
    message_id: &str,
    body: &[u8],
) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any size");
    for part in [method, path, timestamp, message_id] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac.update(body);
    mac
}

/// The `X-Twinsync-Signature` value for a request.
pub fn sign(
    secret: &Secret,
    method: &str,
    path: &str,
    timestamp: &str,
    message_id: &str,
    body: &[u8],
) -> String {
    let tag = mac(secret, method, path, timestamp, message_id, body)
        .finalize()
        .into_bytes();
    format!("v1={}", crate::hex::encode(&tag))
}

/// Check a signature in constant time.
pub fn verify(
    secret: &Secret,
    method: &str,
    path: &str,
    timestamp: &str,
    message_id: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let Some(tag) = signature.strip_prefix("v1=").and_then(crate::hex::decode) else {
        return false;
    };
    mac(secret, method, path, timestamp, message_id, body)
        .verify_slice(&tag)
        .is_ok()
}

/// Whether a timestamp header is within the skew window of `now` (Unix seconds). Checked
/// arithmetic: a hostile timestamp (`i64::MIN`, say) is stale, not an overflow.
pub fn fresh(timestamp: &str, now: i64) -> bool {
    timestamp.parse::<i64>().is_ok_and(|t| {
        now.checked_sub(t)
            .and_then(i64::checked_abs)
            .is_some_and(|skew| skew <= MAX_CLOCK_SKEW_SECS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_what_it_signed() {
        let secret = Secret::new("s3cret");
        let sig = sign(&secret, "POST", MESSAGES_PATH, "100", "A-1", b"{}");
        let other = Secret::new("other");
        let verifies = |secret: &Secret, timestamp: &str, id: &str, body: &[u8], sig: &str| {
            verify(secret, "POST", MESSAGES_PATH, timestamp, id, body, sig)
        };
        assert!(verifies(&secret, "100", "A-1", b"{}", &sig));
        assert!(!verifies(&secret, "101", "A-1", b"{}", &sig));
        assert!(!verifies(&secret, "100", "A-2", b"{}", &sig));
        assert!(!verifies(&secret, "100", "A-1", b"{ }", &sig));
        assert!(!verifies(&other, "100", "A-1", b"{}", &sig));
        assert!(!verifies(
            &secret,
            "100",
            "A-1",
            b"{}",
            &sig[..sig.len() - 2]
        ));
        assert!(!verifies(&secret, "100", "A-1", b"{}", "v1=zz"));
        assert!(!verify(
            &secret,
            "PUT",
            MESSAGES_PATH,
            "100",
            "A-1",
            b"{}",
            &sig
        ));
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        assert!(fresh("1000", 1000 + MAX_CLOCK_SKEW_SECS));
        assert!(!fresh("1000", 1001 + MAX_CLOCK_SKEW_SECS));
        assert!(!fresh("1000", 1000 - 601));
        assert!(!fresh("soon", 1000));
        // Hostile values are stale, not an overflow (a panic in a debug build).
        for hostile in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            assert!(!fresh(&hostile.to_string(), 1000), "{hostile}");
            assert!(!fresh(&hostile.to_string(), -1000), "{hostile}");
        }
        assert!(!fresh("-9223372036854775809", 0));
    }
}
