//! Change notifications from the tracker: instead of being polled, the tracker tells the
//! node which issues changed, signed like the node-to-node protocol (see `transport::protocol`)
//! with the secret of `[webhooks]`.
//!
//! ```text
//! POST /v1/changes
//! Content-Type: application/json
//! X-Twinsync-Message-Id: 7c1e...                (the notification's own id, at most 128 bytes)
//! X-Twinsync-Timestamp: 1795896000              (Unix seconds)
//! X-Twinsync-Signature: v1=<hex HMAC-SHA256 of POST \n /v1/changes \n TIMESTAMP \n ID \n BODY>
//!
//! {"issues": ["INT-1", "INT-7"]}
//! ```
//!
//! Checked in this order, nothing queued unless every check passes: size (413, at most
//! 64 KiB), timestamp within the skew window (401), signature (401), id and JSON (400: 1 to
//! 1,000 keys). A notification whose id was taken within the skew window is a replay: 200,
//! `"duplicate": true`, nothing queued again (ids are remembered in memory: after a
//! restart, a replay inside the window queues a resync of issues that exist, which is
//! harmless). Then each issue under sync gets an outgoing event, as a change read from the
//! feed does: 200 with each key's result (`queued`, `already-queued`, `not-synced`, or
//! `unknown`: no such issue in the tracker). If no key names an issue of the tracker: 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::Secret;
use crate::embed::MAX_PUSHED_KEYS;
use crate::sync::Node;
use crate::transport::protocol::{
    MAX_CLOCK_SKEW_SECS, MESSAGE_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, fresh, verify,
};

pub const CHANGES_PATH: &str = "/v1/changes";
/// The largest notification accepted: 1,000 keys of a usual length fit many times over.
pub const MAX_BODY_BYTES: usize = 64 << 10;
/// The longest notification id, and the longest issue key.
const MAX_ID_BYTES: usize = 128;
const MAX_KEY_BYTES: usize = 256;
/// Notification ids remembered at most (those older than the skew window are forgotten
/// first): a flood cannot grow the node's memory without bound.
const MAX_REMEMBERED: usize = 50_000;

/// Checks change notifications and queues their issues' events.
pub struct Webhooks {
    pub node: Arc<Node>,
    pub secret: Secret,
    pub clock: Arc<dyn Clock>,
    /// Called after events were queued, to wake the event loop.
    pub on_change: Box<dyn Fn() + Send + Sync>,
    /// Ids taken within the skew window, with their timestamps.
    pub seen: Mutex<HashMap<String, i64>>,
}

impl Webhooks {
    pub fn new(
        node: Arc<Node>,
        secret: Secret,
        clock: Arc<dyn Clock>,
        on_change: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        Webhooks {
            node,
            secret,
            clock,
            on_change,
            seen: Mutex::default(),
        }
    }
}

/// The route, to merge into the node-to-node protocol's router.
pub fn router(webhooks: Arc<Webhooks>) -> Router {
    Router::new()
        .route(CHANGES_PATH, post(notify))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(webhooks)
}

async fn notify(
    State(webhooks): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // SQLite and the tracker are blocking work: keep them off the async threads.
    let (status, body) =
        match tokio::task::spawn_blocking(move || webhooks.handle(&headers, &body)).await {
            Ok(answer) => answer,
            Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the handler failed"),
        };
    (status, Json(body)).into_response()
}

type Answer = (StatusCode, Value);

fn refuse(status: StatusCode, reason: impl Into<String>) -> Answer {
    (status, json!({ "error": reason.into() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Notification {
    issues: Vec<String>,
}

impl Webhooks {
    /// Check a notification and queue its issues' events.
    pub fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        if body.len() > MAX_BODY_BYTES {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("at most {MAX_BODY_BYTES} bytes"),
            );
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(timestamp) = header(TIMESTAMP_HEADER) else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!("missing header {TIMESTAMP_HEADER}"),
            );
        };
        let now = crate::clock::millis(self.clock.now()) / 1000;
        if !fresh(timestamp, now) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!(
                    "stale or invalid timestamp: more than {MAX_CLOCK_SKEW_SECS} s from this node's clock"
                ),
            );
        }
        let (Some(id), Some(signature)) = (header(MESSAGE_ID_HEADER), header(SIGNATURE_HEADER))
        else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!("missing header {MESSAGE_ID_HEADER} or {SIGNATURE_HEADER}"),
            );
        };
        if !verify(
            &self.secret,
            "POST",
            CHANGES_PATH,
            timestamp,
            id,
            body,
            signature,
        ) {
            return refuse(StatusCode::UNAUTHORIZED, "bad signature");
        }
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("{MESSAGE_ID_HEADER} must have 1 to {MAX_ID_BYTES} bytes"),
            );
        }
        let notification: Notification = match serde_json::from_slice(body) {
            Ok(notification) => notification,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("expected {{\"issues\": [\"KEY\", ...]}}: {e}"),
                );
            }
        };
        let keys = &notification.issues;
        if keys.is_empty() || keys.len() > MAX_PUSHED_KEYS {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("`issues` must name 1 to {MAX_PUSHED_KEYS} issues"),
            );
        }
        if let Some(key) = keys
            .iter()
            .find(|k| k.is_empty() || k.len() > MAX_KEY_BYTES)
        {
            let shown = &key[..key.floor_char_boundary(40)];
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("issue key `{shown}`: 1 to {MAX_KEY_BYTES} bytes"),
            );
        }
        let timestamp: i64 = timestamp.parse().unwrap_or(now);
        if self.seen().contains_key(id) {
            return (StatusCode::OK, json!({ "duplicate": true }));
        }
        let answer = self.queue(keys);
        if answer.0 == StatusCode::OK || answer.0 == StatusCode::NOT_FOUND {
            // Remembered once dealt with: a notification that failed can be sent again.
            if let Err(answer) = self.remember(id, timestamp, now) {
                return answer;
            }
        }
        answer
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember `id` until it leaves the skew window (a replay after that is stale).
    fn remember(&self, id: &str, timestamp: i64, now: i64) -> Result<(), Answer> {
        let mut seen = self.seen();
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, at| now.saturating_sub(*at) <= MAX_CLOCK_SKEW_SECS);
        }
        if seen.len() >= MAX_REMEMBERED {
            tracing::warn!("too many change notifications: refusing until older ones expire");
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many notifications in the last minutes; send it again later",
            ));
        }
        seen.insert(id.to_string(), timestamp);
        Ok(())
    }

    /// Queue the events and say what became of each key.
    fn queue(&self, keys: &[String]) -> Answer {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let results = match self.node.local_changes(&keys) {
            Ok(results) => results,
            Err(e) => {
                tracing::error!("cannot queue notified changes: {e:#}");
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the node cannot store the changes now; send the notification again later",
                );
            }
        };
        if results.iter().any(|(_, events)| *events > 0) {
            (self.on_change)();
        }
        let mut answers = Vec::with_capacity(keys.len());
        let mut known = 0;
        for (key, (twins, events)) in keys.iter().zip(results) {
            let result = match (twins, events) {
                (0, _) => match self.node.tracker().get(key) {
                    Ok(Some(_)) => "not-synced",
                    Ok(None) => "unknown",
                    Err(e) => {
                        return refuse(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("cannot read issue {key} from the tracker: {e}"),
                        );
                    }
                },
                (_, 0) => "already-queued",
                _ => "queued",
            };
            if result != "unknown" {
                known += 1;
            }
            answers.push(json!({ "key": key, "result": result, "events": events }));
        }
        if known == 0 {
            return (
                StatusCode::NOT_FOUND,
                json!({
                    "error": format!("no such issue in the tracker: {}", keys.join(", ")),
                    "issues": answers,
                }),
            );
        }
        (StatusCode::OK, json!({ "issues": answers }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_ids_are_bounded_and_expire_with_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let webhooks = Webhooks {
            node: Arc::new(test_node(dir.path())),
            secret: Secret::new("s"),
            clock: Arc::new(crate::clock::SystemClock),
            on_change: Box::new(|| {}),
            seen: Mutex::default(),
        };
        for i in 0..MAX_REMEMBERED {
            assert!(webhooks.remember(&format!("old-{i}"), 1_000, 1_000).is_ok());
        }
        // Full of fresh ids: refused, for the sender to try again later.
        let refused = webhooks.remember("one-more", 1_000, 1_000).unwrap_err();
        assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE);
        // Once they are older than the window, they make room.
        let later = 1_000 + MAX_CLOCK_SKEW_SECS + 1;
        assert!(webhooks.remember("one-more", later, later).is_ok());
        assert_eq!(webhooks.seen().len(), 1);
    }

    fn test_node(dir: &std::path::Path) -> Node {
        let tracker =
            Arc::new(crate::tracker::ReferenceTracker::new(&dir.join("tracker.db"), "T").unwrap());
        let store = Arc::new(crate::store::NodeStore::open(&dir.join("twinsync.db")).unwrap());
        let runtime = Arc::new(
            crate::runtime::Runtime::new(&crate::runtime::RuntimeConfig {
                pool: None,
                ..Default::default()
            })
            .unwrap(),
        );
        Node::new(
            "T",
            tracker,
            store,
            runtime,
            Vec::new(),
            Arc::new(crate::clock::SystemClock),
        )
        .unwrap()
    }
}
