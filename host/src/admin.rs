//! The admin HTTP API: JSON in and out, on its own listener, behind its own bearer token.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/issues/{key}` | an issue of this node's tracker, with its `ETag` |
//! | `POST /v1/issues` | create an issue (body: issue JSON); `201` with the stored issue |
//! | `PATCH /v1/issues/{key}` | change an issue (body: the fields to change, JSON merge patch); with `If-Match: ETAG`, only if it is still that version (else `412`) |
//! | `POST /v1/exalate` | start syncing issues: `{"connection": "...", "keys": ["INT-1"]}` |
//! | `POST /v1/unexalate` | stop syncing issues (same body); both sides keep the issue |
//! | `GET /v1/twins` | the twins of this node |
//! | `GET /v1/queue` | pending, in-flight, failed, done and skipped events per connection |
//! | `GET /v1/errors` | the sync errors |
//! | `GET /v1/events?twin=T&state=S` | events, oldest first; both filters optional |
//! | `GET /v1/events/{id}` | one event with its message, processor input and log |
//! | `POST /v1/errors/{id}/retry` | retry a sync error |
//! | `POST /v1/errors/retry-all` | retry every sync error |
//! | `POST /v1/errors/{id}/skip` | drop a sync error; its twin goes on |
//! | `GET /v1/conflicts` | conflicts held for review |
//! | `GET /v1/history?key=K` | a twin's history, newest first: `key` (twin id or an issue key on either side), `connection`, `since`, `until` (RFC 3339), `before` (an entry's `seq`, to page), `limit` |
//! | `POST /v1/conflicts/{id}/resolve` | keep a side: `{"take": "local"}` or `{"take": "remote"}` |
//! | `POST /v1/verify` | compare each twin with what was last exchanged and repair what differs: `{}` or `{"connection": "..."}`; answers how many were checked and fixed |
//! | `/v1/plugins...` | the plugin store: see `plugins::api` |
//!
//! Every request needs `Authorization: Bearer <token>`. Errors are `{"error": "..."}` with
//! 400 (bad input), 401 (token), 404 (no such issue or event), 412 (`If-Match` failed) or 500.

mod input;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Secret;
use crate::ops;
use crate::sync::Node;
use crate::tracker::{Origin, TrackerError};

/// What the admin API needs.
pub struct Admin {
    pub node: Arc<Node>,
    pub token: Secret,
    /// Called after a change that the node should act on now.
    pub on_change: Box<dyn Fn() + Send + Sync>,
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/v1/issues", post(create_issue))
        .route("/v1/issues/{key}", get(get_issue).patch(patch_issue))
        .route("/v1/exalate", post(exalate))
        .route("/v1/unexalate", post(unexalate))
        .route("/v1/twins", get(twins))
        .route("/v1/queue", get(queue))
        .route("/v1/errors", get(errors))
        .route("/v1/errors/retry-all", post(retry_all))
        .route("/v1/errors/{id}/retry", post(retry))
        .route("/v1/errors/{id}/skip", post(skip))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(event))
        .route("/v1/conflicts", get(conflicts))
        .route("/v1/history", get(history))
        .route("/v1/conflicts/{id}/resolve", post(resolve_conflict))
        .route("/v1/verify", post(verify))
        .merge(crate::plugins::api::routes())
        .layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

/// An error answer: status and message.
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

async fn authorize(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let expected = admin.token.expose().as_bytes();
    let ok = presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected));
    if !ok {
        return Failure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
        .into_response();
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Run blocking work (SQLite, trackers) off the async threads.
async fn blocking(f: impl FnOnce() -> Result<Value, Failure> + Send + 'static) -> Answer {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map(Json),
        Err(_) => Err(Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed".into(),
        )),
    }
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, Failure> {
    serde_json::to_value(value)
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn not_found(what: String) -> Failure {
    Failure(StatusCode::NOT_FOUND, what)
}

async fn get_issue(State(admin): State<Arc<Admin>>, Path(key): Path<String>) -> Response {
    let answer = blocking(move || {
        match admin
            .node
            .tracker()
            .get(&key)
            .map_err(anyhow::Error::from)?
        {
            Some(issue) => to_json(issue),
            None => Err(not_found(format!("issue {key} does not exist"))),
        }
    })
    .await;
    with_etag(answer)
}

/// An issue's version for `ETag` and `If-Match`: a digest of the issue as stored.
fn etag(issue: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(issue.to_string().as_bytes());
    format!("\"{}\"", crate::hex::encode(&digest[..12]))
}

/// An answer with the issue it carries, with its `ETag`.
fn with_etag(answer: Answer) -> Response {
    match answer {
        Ok(Json(issue)) => {
            let tag = etag(&issue);
            ([(axum::http::header::ETAG, tag)], Json(issue)).into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

async fn create_issue(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Response {
    let answer = blocking(move || {
        let issue = input::new_issue(&body).map_err(|e| Failure(StatusCode::BAD_REQUEST, e))?;
        let created = admin
            .node
            .tracker()
            .create(&issue, Origin::User)
            .map_err(anyhow::Error::from)?;
        (admin.on_change)();
        to_json(created)
    })
    .await;
    match answer {
        Ok(body) => (StatusCode::CREATED, body).into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn patch_issue(
    State(admin): State<Arc<Admin>>,
    Path(key): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let if_match = match headers
        .get(axum::http::header::IF_MATCH)
        .map(|v| v.to_str())
    {
        None => None,
        Some(Ok(tag)) => Some(tag.trim().to_string()),
        Some(Err(_)) => {
            return Failure(StatusCode::BAD_REQUEST, "If-Match is not text".into()).into_response();
        }
    };
    let answer = blocking(move || {
        let patch = input::patch(&body).map_err(|e| Failure(StatusCode::BAD_REQUEST, e))?;
        let tracker = admin.node.tracker();
        // The patch applies to the issue as read; a write in between (twinsync applying a
        // change from the other side, say) makes it read and apply again, never overwrite.
        for _ in 0..5 {
            let current = tracker
                .get(&key)
                .map_err(anyhow::Error::from)?
                .ok_or_else(|| not_found(format!("issue {key} does not exist")))?;
            let mut merged = to_json(&current)?;
            if let Some(tag) = &if_match
                && tag != "*"
                && *tag != etag(&merged)
            {
                return Err(Failure(
                    StatusCode::PRECONDITION_FAILED,
                    format!("issue {key} changed since it was read (If-Match {tag} is not its ETag {}): read it again", etag(&merged)),
                ));
            }
            merge_patch(&mut merged, Value::Object(patch.clone()));
            let mut issue =
                input::patched(merged).map_err(|e| Failure(StatusCode::BAD_REQUEST, e))?;
            issue.key = Some(key.clone());
            match tracker.update_if(&issue, Origin::User, Some(&current)) {
                Ok(updated) => {
                    (admin.on_change)();
                    return to_json(updated);
                }
                Err(TrackerError::Changed(_)) if if_match.is_none() => continue,
                Err(TrackerError::Changed(_)) => {
                    return Err(Failure(
                        StatusCode::PRECONDITION_FAILED,
                        format!("issue {key} changed since it was read: read it again"),
                    ));
                }
                Err(e) => return Err(anyhow::Error::from(e).into()),
            }
        }
        Err(Failure(
            StatusCode::CONFLICT,
            format!("issue {key} kept changing while the patch was applied: try again"),
        ))
    })
    .await;
    with_etag(answer)
}

async fn verify(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Answer {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct VerifyRequest {
        connection: Option<String>,
    }
    blocking(move || {
        let request: VerifyRequest = if body.iter().all(u8::is_ascii_whitespace) {
            VerifyRequest::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                Failure(
                    StatusCode::BAD_REQUEST,
                    format!("expected {{\"connection\": \"...\"}} or nothing: {e}"),
                )
            })?
        };
        let report = admin.node.verify(request.connection.as_deref())?;
        (admin.on_change)();
        to_json(report)
    })
    .await
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge_patch(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

/// The body of `exalate` and `unexalate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExalateRequest {
    connection: String,
    keys: Vec<String>,
}

impl ExalateRequest {
    fn parse(body: &[u8]) -> Result<Self, Failure> {
        serde_json::from_slice(body).map_err(|e| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"connection\": ..., \"keys\": [...]}}: {e}"),
            )
        })
    }
}

async fn exalate(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let request = ExalateRequest::parse(&body)?;
        let mut twins = Vec::new();
        let mut errors = Vec::new();
        for key in &request.keys {
            match admin.node.exalate(&request.connection, key) {
                Ok(twin) => twins.push(json!({ "key": key, "twin": twin })),
                Err(e) => errors.push(json!({ "key": key, "error": format!("{e:#}") })),
            }
        }
        (admin.on_change)();
        Ok(json!({ "twins": twins, "errors": errors }))
    })
    .await
}

async fn unexalate(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let request = ExalateRequest::parse(&body)?;
        for key in &request.keys {
            admin.node.unexalate(&request.connection, key)?;
        }
        (admin.on_change)();
        Ok(json!({ "unexalated": request.keys }))
    })
    .await
}

async fn twins(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(move || to_json(ops::twins(admin.node.store())?)).await
}

async fn queue(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(move || to_json(ops::queue(admin.node.store())?)).await
}

async fn errors(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(move || to_json(ops::errors(admin.node.store())?)).await
}

/// The filters of `GET /v1/events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    twin: Option<String>,
    state: Option<String>,
}

async fn list_events(
    State(admin): State<Arc<Admin>>,
    query: Result<axum::extract::Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let query = query
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.body_text()))?
        .0;
    blocking(move || {
        let state = match query.state.as_deref() {
            None => None,
            Some(state) => Some(
                <ops::EventState as clap::ValueEnum>::from_str(state, false).map_err(|_| {
                    Failure(
                        StatusCode::BAD_REQUEST,
                        format!("state `{state}` is not one of pending, failed, done, skipped"),
                    )
                })?,
            ),
        };
        to_json(ops::events(
            admin.node.store(),
            query.twin.as_deref(),
            state,
        )?)
    })
    .await
}

async fn event(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Answer {
    blocking(move || match ops::event(admin.node.store(), &id) {
        Ok(event) => {
            let mut value = to_json(event)?;
            // Which plugin processed it (name, version, sha256), if a processor ran.
            let plugin = admin
                .node
                .store()
                .read(|db| crate::plugins::store::event_plugin(db, &id))?;
            value["plugin"] = to_json(plugin)?;
            Ok(value)
        }
        Err(e) => Err(not_found(format!("{e:#}"))),
    })
    .await
}

async fn retry(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Answer {
    blocking(move || {
        ops::retry(admin.node.store(), &id).map_err(|e| not_found(format!("{e:#}")))?;
        (admin.on_change)();
        Ok(json!({ "retried": [id] }))
    })
    .await
}

async fn retry_all(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(move || {
        let count = ops::retry_all(admin.node.store())?;
        (admin.on_change)();
        Ok(json!({ "retried": count }))
    })
    .await
}

async fn skip(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Answer {
    blocking(move || {
        ops::skip(admin.node.store(), &id).map_err(|e| not_found(format!("{e:#}")))?;
        (admin.on_change)();
        Ok(json!({ "skipped": id }))
    })
    .await
}

async fn conflicts(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(move || to_json(ops::conflicts(admin.node.store())?)).await
}

/// The query of `GET /v1/history`.
#[derive(Deserialize)]
struct HistoryQuery {
    key: Option<String>,
    connection: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

async fn history(
    State(admin): State<Arc<Admin>>,
    axum::extract::Query(query): axum::extract::Query<HistoryQuery>,
) -> Answer {
    use crate::store::history::{self, Filter, parse_time};
    blocking(move || {
        let filter = Filter {
            since_ms: query.since.as_deref().map(parse_time).transpose()?,
            until_ms: query.until.as_deref().map(parse_time).transpose()?,
            key: query.key,
            connection: query.connection,
            before: query.before,
            limit: query.limit,
        };
        to_json(admin.node.store().read(|db| history::query(db, &filter))?)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    take: crate::sync::Take,
}

async fn resolve_conflict(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Answer {
    blocking(move || {
        let request: ResolveRequest = serde_json::from_slice(&body).map_err(|e| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"take\": \"local\" or \"remote\"}}: {e}"),
            )
        })?;
        admin.node.resolve_conflict(id, request.take)?;
        (admin.on_change)();
        Ok(json!({ "resolved": id }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"summary": "a", "labels": ["x"], "priority": "High"});
        merge_patch(
            &mut target,
            json!({"summary": "b", "priority": null, "status": "Done"}),
        );
        assert_eq!(
            target,
            json!({"summary": "b", "labels": ["x"], "status": "Done"})
        );
    }
}
