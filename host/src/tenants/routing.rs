//! The node-to-node protocol for tenants, on serve's `listen` address beside its own
//! node's: messages for tenant NAME arrive at `/t/NAME/v1/messages` and
//! `/t/NAME/v1/messages/batch`, checked with that tenant's connection secrets (the other
//! node's `remote-url` is `http://HOST:PORT/t/NAME`; signatures cover the protocol's path,
//! so the prefix changes nothing for the sender). An unknown tenant is 404; a registered
//! one that does not run is 503, which the sender retries.
//!
//! A tenant's tracker may also tell it which issues changed: `POST /t/NAME/v1/changes`,
//! signed like serve's own `POST /v1/changes` (see `webhooks`; the signature covers
//! `/v1/changes`) with the `webhook-secret` of the tenant's spec. A tenant without one
//! answers 404 there.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::json;

use super::Tenants;
use crate::transport::protocol::{BATCH_PATH, MAX_BODY_BYTES, MESSAGES_PATH};
use crate::transport::server::Receiver;
use crate::webhooks::{self, CHANGES_PATH};

pub fn router(tenants: Arc<Tenants>) -> Router {
    Router::new()
        .route(&format!("/t/{{tenant}}{MESSAGES_PATH}"), post(message))
        .route(&format!("/t/{{tenant}}{BATCH_PATH}"), post(batch))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(
            Router::new()
                .route(&format!("/t/{{tenant}}{CHANGES_PATH}"), post(changes))
                .layer(DefaultBodyLimit::max(webhooks::MAX_BODY_BYTES)),
        )
        .with_state(tenants)
}

async fn changes(
    State(tenants): State<Arc<Tenants>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let live = match running(&tenants, &tenant) {
        Ok(live) => live,
        Err((status, why)) => return refuse(status, why),
    };
    let Some(webhooks) = live.webhooks.clone() else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("tenant `{tenant}` takes no change notifications (no webhook-secret)"),
        );
    };
    match tokio::task::spawn_blocking(move || webhooks.handle(&headers, &body)).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the handler failed".into(),
        ),
    }
}

/// A running tenant, or why not: not running (503) or unknown (404).
fn running(tenants: &Tenants, tenant: &str) -> Result<super::hosting::Live, (StatusCode, String)> {
    tenants
        .live(tenant)
        .ok_or_else(|| match tenants.status(tenant) {
            Some(Err(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("tenant `{tenant}` is not running"),
            ),
            _ => (StatusCode::NOT_FOUND, format!("no tenant `{tenant}`")),
        })
}

async fn message(
    State(tenants): State<Arc<Tenants>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(&tenants, &tenant, move |r| r.handle(&headers, &body)).await
}

async fn batch(
    State(tenants): State<Arc<Tenants>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(&tenants, &tenant, move |r| r.handle_batch(&headers, &body)).await
}

/// Hand the request to the tenant's receiver (its checks and store are blocking work).
async fn respond(
    tenants: &Tenants,
    tenant: &str,
    work: impl FnOnce(&Receiver) -> (StatusCode, serde_json::Value) + Send + 'static,
) -> Response {
    let live = match running(tenants, tenant) {
        Ok(live) => live,
        Err((status, why)) => return refuse(status, why),
    };
    let receiver = live.receiver.clone();
    match tokio::task::spawn_blocking(move || work(&receiver)).await {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the receiver failed".into(),
        ),
    }
}

fn refuse(status: StatusCode, reason: String) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}
