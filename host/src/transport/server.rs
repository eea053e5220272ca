//! The receiving end of the node-to-node protocol (see `protocol`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::json;

use super::protocol::{
    BATCH_PATH, CONNECTION_HEADER, MAX_BATCH, MAX_BODY_BYTES, MAX_CLOCK_SKEW_SECS,
    MESSAGE_ID_HEADER, MESSAGES_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER, fresh, verify,
};
use crate::clock::Clock;
use crate::config::Secret;
use crate::sync::{Node, Receipt, SyncMessage};

/// Checks and accepts messages for one node.
pub struct Receiver {
    pub node: Arc<Node>,
    /// Shared secret per connection that receives.
    pub secrets: HashMap<String, Secret>,
    pub clock: Arc<dyn Clock>,
    /// Called after a message is accepted, to wake the event workers.
    pub on_accept: Box<dyn Fn() + Send + Sync>,
}

/// The HTTP routes of the node-to-node protocol.
pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(receive))
        .route(BATCH_PATH, post(receive_batch))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(receiver)
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(move || receiver.handle(&headers, &body)).await
}

async fn receive_batch(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(move || receiver.handle_batch(&headers, &body)).await
}

/// Run a receiver's check and store on a blocking thread (SQLite and the signature check are
/// blocking work: they stay off the async threads) and answer with its result.
async fn respond(work: impl FnOnce() -> Answer + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(_) => {
            let (status, body) = refuse(StatusCode::INTERNAL_SERVER_ERROR, "the receiver failed");
            (status, Json(body)).into_response()
        }
    }
}

type Answer = (StatusCode, serde_json::Value);

fn refuse(status: StatusCode, reason: impl Into<String>) -> Answer {
    (status, json!({ "error": reason.into() }))
}

impl Receiver {
    /// The request's connection and message id, if its headers and signature (over
    /// `path` and `body`) pass the checks; the refusal otherwise.
    fn authenticate<'h>(
        &self,
        headers: &'h HeaderMap,
        path: &str,
        body: &[u8],
    ) -> Result<(&'h str, &'h str), Answer> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(connection) = header(CONNECTION_HEADER) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("missing header {CONNECTION_HEADER}"),
            ));
        };
        let Some(secret) = self.secrets.get(connection) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("unknown connection `{connection}`"),
            ));
        };
        let Some(message_id) = header(MESSAGE_ID_HEADER) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("missing header {MESSAGE_ID_HEADER}"),
            ));
        };
        let Some(timestamp) = header(TIMESTAMP_HEADER) else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                format!("missing header {TIMESTAMP_HEADER}"),
            ));
        };
        let now = crate::clock::millis(self.clock.now()) / 1000;
        if !fresh(timestamp, now) {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                format!(
                    "stale or invalid timestamp: more than {MAX_CLOCK_SKEW_SECS} s from this node's clock"
                ),
            ));
        }
        let Some(signature) = header(SIGNATURE_HEADER) else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                format!("missing header {SIGNATURE_HEADER}"),
            ));
        };
        if !verify(secret, "POST", path, timestamp, message_id, body, signature) {
            return Err(refuse(StatusCode::UNAUTHORIZED, "bad signature"));
        }
        Ok((connection, message_id))
    }

    /// Check a request and hand its message to the node. Nothing is stored unless every
    /// check passes.
    pub fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let (connection, message_id) = match self.authenticate(headers, MESSAGES_PATH, body) {
            Ok(checked) => checked,
            Err(refusal) => return refusal,
        };
        let message: SyncMessage = match serde_json::from_slice(body) {
            Ok(message) => message,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed message: {e}")),
        };
        if message.id != message_id || message.connection != connection {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the message's id and connection must match the headers",
            );
        }
        match self.node.receive(&message) {
            Ok(receipt @ (Receipt::Accepted | Receipt::Duplicate)) => {
                if receipt == Receipt::Accepted {
                    (self.on_accept)();
                }
                (
                    StatusCode::OK,
                    serde_json::to_value(&receipt).unwrap_or_default(),
                )
            }
            Ok(receipt @ Receipt::OutOfOrder { .. }) => (
                StatusCode::CONFLICT,
                serde_json::to_value(&receipt).unwrap_or_default(),
            ),
            Ok(Receipt::Refused { reason }) => refuse(StatusCode::UNPROCESSABLE_ENTITY, reason),
            Ok(Receipt::Forbidden { reason }) => {
                tracing::warn!(connection, message = message_id, "refused: {reason}");
                refuse(StatusCode::FORBIDDEN, reason)
            }
            Err(e) => {
                tracing::error!(
                    connection,
                    message = message_id,
                    "cannot store a received message: {e:#}"
                );
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the node cannot store the message now; send it again later",
                )
            }
        }
    }

    /// Check a batch request and every message in it, then hand the messages to the node
    /// in one transaction. Nothing is stored unless every check passes; then the answer is
    /// one receipt per message, in order.
    pub fn handle_batch(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let (connection, batch_id) = match self.authenticate(headers, BATCH_PATH, body) {
            Ok(checked) => checked,
            Err(refusal) => return refusal,
        };
        let messages: Vec<SyncMessage> = match serde_json::from_slice(body) {
            Ok(messages) => messages,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("malformed batch: {e}")),
        };
        if messages.is_empty() || messages.len() > MAX_BATCH {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "a batch holds 1 to {MAX_BATCH} messages, not {}",
                    messages.len()
                ),
            );
        }
        if messages[0].id != batch_id {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the batch's id must be its first message's",
            );
        }
        if messages.iter().any(|m| m.connection != connection) {
            return refuse(
                StatusCode::BAD_REQUEST,
                "every message of a batch must be of the connection in the header",
            );
        }
        match self.node.receive_all(&messages) {
            Ok(receipts) => {
                if receipts.contains(&Receipt::Accepted) {
                    (self.on_accept)();
                }
                for (message, receipt) in messages.iter().zip(&receipts) {
                    if let Receipt::Forbidden { reason } = receipt {
                        tracing::warn!(connection, message = %message.id, "refused: {reason}");
                    }
                }
                (
                    StatusCode::OK,
                    serde_json::to_value(&receipts).unwrap_or_default(),
                )
            }
            Err(e) => {
                tracing::error!(
                    connection,
                    batch = batch_id,
                    "cannot store received messages: {e:#}"
                );
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the node cannot store the messages now; send them again later",
                )
            }
        }
    }
}
