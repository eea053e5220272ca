//! The plugin store in the admin API (merged into `admin::router`, behind its token):
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/plugins` | installed packages (manifest, hash, who installed them, which sides use them) |
//! | `GET /v1/plugins/changes` | every change to the store: action, who, when, what ran before |
//! | `POST /v1/plugins/use` | `{"plugin": "NAME@VERSION", "connection": "...", "side": "incoming"}` |
//! | `POST /v1/plugins/upgrade` | `{"name": "...", "to": "VERSION"}` (`to` optional: the highest installed) |
//! | `POST /v1/plugins/rollback` | `{"connection": "...", "side": "outgoing"}` (`side` optional: both) |
//! | `POST /v1/plugins/try` | `{"plugin": "NAME@VERSION", "connection": "...", "last": 50}` or `"events": [...]`: what `plugin try` prints, as JSON; writes nothing |
//!
//! Changes are recorded as made by `admin-api`. Installing takes a file, so it is the CLI's.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::manage;
use super::store::{self, Side};
use super::trial::{DEFAULT_LAST, Pick};
use crate::admin::Admin;

const BY: &str = "admin-api";

pub fn routes() -> Router<Arc<Admin>> {
    Router::new()
        .route("/v1/plugins", get(list))
        .route("/v1/plugins/changes", get(changes))
        .route("/v1/plugins/use", post(use_version))
        .route("/v1/plugins/upgrade", post(upgrade))
        .route("/v1/plugins/rollback", post(rollback))
        .route("/v1/plugins/try", post(try_plugin))
}

struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure(StatusCode::BAD_REQUEST, format!("{error:#}"))
    }
}

type Answer = Result<Json<Value>, Failure>;

async fn blocking(f: impl FnOnce() -> Result<Value, Failure> + Send + 'static) -> Answer {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map(Json),
        Err(_) => Err(Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed".into(),
        )),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> Result<T, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("expected {shape}: {e}")))
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, Failure> {
    serde_json::to_value(value)
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn list(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(move || to_json(admin.node.store().read(store::all)?)).await
}

async fn changes(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(move || to_json(admin.node.store().read(store::changes)?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UseRequest {
    plugin: String,
    connection: String,
    side: Side,
    #[serde(default)]
    settings: std::collections::BTreeMap<String, String>,
}

async fn use_version(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let r: UseRequest = parse(
            &body,
            r#"{"plugin": "NAME@VERSION", "connection": "...", "side": "incoming|outgoing"}"#,
        )?;
        let (name, version) = manage::parse_id(&r.plugin)?;
        manage::use_version(
            &admin.node,
            &r.connection,
            r.side,
            name,
            version,
            &r.settings,
            BY,
        )?;
        (admin.on_change)();
        Ok(json!({ "connection": r.connection, "side": r.side, "plugin": r.plugin }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeRequest {
    name: String,
    #[serde(default)]
    to: Option<String>,
}

async fn upgrade(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let r: UpgradeRequest = parse(&body, r#"{"name": "...", "to": "VERSION"}"#)?;
        let moved = manage::upgrade(&admin.node, &r.name, r.to.as_deref(), BY)?;
        (admin.on_change)();
        Ok(json!({ "upgraded": moved }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    connection: String,
    #[serde(default)]
    side: Option<Side>,
}

async fn rollback(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let r: RollbackRequest = parse(&body, r#"{"connection": "...", "side": "outgoing"}"#)?;
        let done = manage::rollback(&admin.node, &r.connection, r.side, BY)?;
        (admin.on_change)();
        Ok(json!({ "rolled_back": done }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TryRequest {
    plugin: String,
    connection: String,
    #[serde(default)]
    last: Option<usize>,
    #[serde(default)]
    events: Vec<String>,
}

async fn try_plugin(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let r: TryRequest = parse(
            &body,
            r#"{"plugin": "NAME@VERSION", "connection": "...", "last": 50}"#,
        )?;
        let (name, version) = manage::parse_id(&r.plugin)?;
        let candidate = manage::load(&admin.node, name, version)?;
        let pick = if r.events.is_empty() {
            Pick::Last(r.last.unwrap_or(DEFAULT_LAST))
        } else {
            Pick::Events(r.events)
        };
        to_json(admin.node.try_plugin(&candidate, &r.connection, &pick)?)
    })
    .await
}
