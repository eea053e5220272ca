//! The admin HTTP API: JSON in and out, on its own listener, behind its own bearer token.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/issues/{key}` | an issue of this node's tracker, with its `ETag` |
//! | `POST /v1/issues` | create an issue (body: issue JSON); `201` with the stored issue |
//! | `PATCH /v1/issues/{key}` | change an issue (body: the fields to change, JSON merge patch); with `If-Match: ETAG`, only if it is still that version (else `412`) |
//! | `POST /v1/exalate` | start syncing issues: `{"connection": "...", "keys": ["INT-1"]}` |
//! | `POST /v1/unexalate` | stop syncing issues (same body); both sides keep the issue |
//! | `GET /v1/twins` | the twins of this node, a page at a time in twin id order: `limit` (1 to 5,000, default 500), `after` (the last twin id of the previous page); header `X-Twinsync-Next` holds the next page's `after`, URL-encoded (absent on the last page) |
//! | `GET /v1/queue` | pending, in-flight, failed, done and skipped events per connection; for a tenant's token also `waiting_for_quota` (the quota its events wait for, or `null`) |
//! | `GET /v1/errors` | the sync errors |
//! | `GET /v1/events` | events, oldest first; filters `twin=T` and `state=S`, both optional |
//! | `GET /v1/events/{id}` | one event with its message, processor input and log |
//! | `POST /v1/errors/{id}/retry` | retry a sync error |
//! | `POST /v1/errors/retry-all` | retry every sync error |
//! | `POST /v1/errors/{id}/skip` | drop a sync error; its twin goes on |
//! | `GET /v1/conflicts` | conflicts held for review |
//! | `GET /v1/history` | a twin's history, newest first: `key` (twin id or an issue key on either side), `connection`, `since`, `until` (RFC 3339), `before` (an entry's `seq`, to page), `limit` |
//! | `POST /v1/conflicts/{id}/resolve` | keep a side: `{"take": "local"}` or `{"take": "remote"}` |
//! | `POST /v1/verify` | compare each twin with what was last exchanged and repair what differs: `{}` or `{"connection": "..."}`; answers how many were checked and fixed |
//! | `/v1/plugins...` | the plugin store: see `plugins::api` |
//! | `/v1/tenants...` | the tenants of this process, for the host token only: see `tenants::api` |
//!
//! Every request needs `Authorization: Bearer <token>`. The `[admin]` token (the host token)
//! acts on this process's own node; a tenant's token (see `tenants`) acts on that tenant's
//! node only, with the same routes, and `/v1/tenants...` does not exist for it. Which node a
//! request acts on is decided once, by `authorize`, from the token: the handlers take the
//! [`Scope`] it puts in the request and can reach no other node. An object of another
//! tenant is therefore not found (404), never forbidden: nothing says it exists.
//!
//! Errors are `{"error": "..."}` with 400 (bad input), 401 (token), 404 (no such issue,
//! event, connection, twin or conflict), 412 (`If-Match` failed), 503 (the tenant of the
//! token is registered but does not run) or 500.

mod input;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Secret;
use crate::ops;
use crate::sync::Node;
use crate::tenants::Tenants;
use crate::tenants::hosting::TokenOwner;
use crate::tracker::{Origin, TrackerError};

/// What the admin API needs.
pub struct Admin {
    pub node: Arc<Node>,
    /// The host token.
    pub token: Secret,
    /// Called after a change that the node should act on now.
    pub on_change: Arc<dyn Fn() + Send + Sync>,
    /// The tenants of this process, whose tokens act on their own nodes.
    pub tenants: Option<Arc<Tenants>>,
}

/// What a request acts on: the node its token gives access to. Put in the request by
/// `authorize`, taken by every handler.
#[derive(Clone)]
pub struct Scope {
    pub node: Arc<Node>,
    /// Wakes the loops of that node after a change.
    pub on_change: Arc<dyn Fn() + Send + Sync>,
    /// The tenant, for a tenant token; `None` for the host token.
    pub tenant: Option<String>,
    /// That tenant in the embedded host (what only the host knows of it: its quotas).
    pub hosted: Option<crate::embed::Tenant>,
}

/// A route of the admin API: method, path and handler. The router is built from these
/// lists, and a test checks that they and the module's table name the same routes.
pub(crate) type Route = (&'static str, &'static str, MethodRouter<Arc<Admin>>);

/// The node routes, for every token.
fn routes() -> Vec<Route> {
    vec![
        ("POST", "/v1/issues", post(create_issue)),
        ("GET", "/v1/issues/{key}", get(get_issue)),
        ("PATCH", "/v1/issues/{key}", patch(patch_issue)),
        ("POST", "/v1/exalate", post(exalate)),
        ("POST", "/v1/unexalate", post(unexalate)),
        ("GET", "/v1/twins", get(twins)),
        ("GET", "/v1/queue", get(queue)),
        ("GET", "/v1/errors", get(errors)),
        ("POST", "/v1/errors/retry-all", post(retry_all)),
        ("POST", "/v1/errors/{id}/retry", post(retry)),
        ("POST", "/v1/errors/{id}/skip", post(skip)),
        ("GET", "/v1/events", get(list_events)),
        ("GET", "/v1/events/{id}", get(event)),
        ("GET", "/v1/conflicts", get(conflicts)),
        ("GET", "/v1/history", get(history)),
        ("POST", "/v1/conflicts/{id}/resolve", post(resolve_conflict)),
        ("POST", "/v1/verify", post(verify)),
    ]
}

/// Every route as (method, path): the node routes, the plugin store's and the tenants'.
#[cfg(test)]
pub(crate) fn route_table() -> Vec<(&'static str, &'static str)> {
    routes()
        .into_iter()
        .chain(crate::plugins::api::routes())
        .chain(crate::tenants::api::routes())
        .map(|(method, path, _)| (method, path))
        .collect()
}

fn build(routes: Vec<Route>) -> Router<Arc<Admin>> {
    routes
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
}

pub fn router(admin: Arc<Admin>) -> Router {
    build(routes())
        .merge(build(crate::plugins::api::routes()))
        .merge(build(crate::tenants::api::routes()).route_layer(middleware::from_fn(host_only)))
        .layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

/// An error answer: status and message.
pub(crate) struct Failure(pub StatusCode, pub String);

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

/// Find the request's scope from its token, or refuse it (401). Tenant tokens are looked
/// up only when the host token does not match.
async fn authorize(State(admin): State<Arc<Admin>>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let scope = match presented {
        Some(token) => admin.scope_of(token),
        None => Err(unauthorized()),
    };
    match scope {
        Ok(scope) => {
            request.extensions_mut().insert(scope);
            next.run(request).await
        }
        Err(failure) => failure.into_response(),
    }
}

fn unauthorized() -> Failure {
    Failure(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token".into(),
    )
}

impl Admin {
    fn scope_of(&self, token: &str) -> Result<Scope, Failure> {
        if constant_time_eq(token.as_bytes(), self.token.expose().as_bytes()) {
            return Ok(Scope {
                node: self.node.clone(),
                on_change: self.on_change.clone(),
                tenant: None,
                hosted: None,
            });
        }
        match self.tenants.as_ref().and_then(|t| t.owner_of(token)) {
            Some(TokenOwner::Running(name, live)) => Ok(Scope {
                node: live.tenant.node().clone(),
                hosted: Some(live.tenant.clone()),
                on_change: Arc::new(move || live.wake()),
                tenant: Some(name),
            }),
            Some(TokenOwner::Stopped(name, why)) => Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("tenant `{name}` is not running: {why}"),
            )),
            None => Err(unauthorized()),
        }
    }
}

/// Routes that administer the host answer a tenant's token as if they did not exist.
async fn host_only(request: Request, next: Next) -> Response {
    let tenant = request
        .extensions()
        .get::<Scope>()
        .is_none_or(|scope| scope.tenant.is_some());
    if tenant {
        return StatusCode::NOT_FOUND.into_response();
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

pub(crate) fn not_found(what: String) -> Failure {
    Failure(StatusCode::NOT_FOUND, what)
}

/// A connection of the scope's node, or 404: another tenant's is not found either.
pub(crate) fn known_connection(node: &Node, name: &str) -> Result<(), Failure> {
    if node.connections().iter().any(|c| c.name == name) {
        Ok(())
    } else {
        Err(not_found(format!("no connection `{name}`")))
    }
}

/// Whether the scope's node has a twin with this id, or with this issue key on either side.
fn knows_twin(node: &Node, key: &str) -> Result<bool, Failure> {
    Ok(node.store().read(|db| {
        db.exists(
            "SELECT 1 FROM twins WHERE twin_id = ?1 OR local_key = ?1 OR remote_key = ?1",
            crate::store::sql::args![key],
        )
    })?)
}

async fn get_issue(Extension(scope): Extension<Scope>, Path(key): Path<String>) -> Response {
    let answer = blocking(move || {
        match scope
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

async fn create_issue(Extension(scope): Extension<Scope>, body: axum::body::Bytes) -> Response {
    let answer = blocking(move || {
        let issue = input::new_issue(&body).map_err(|e| Failure(StatusCode::BAD_REQUEST, e))?;
        let created = scope
            .node
            .tracker()
            .create(&issue, Origin::User)
            .map_err(anyhow::Error::from)?;
        (scope.on_change)();
        to_json(created)
    })
    .await;
    match answer {
        Ok(body) => (StatusCode::CREATED, body).into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn patch_issue(
    Extension(scope): Extension<Scope>,
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
        let tracker = scope.node.tracker();
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
                    (scope.on_change)();
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

async fn verify(Extension(scope): Extension<Scope>, body: axum::body::Bytes) -> Answer {
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
        if let Some(connection) = &request.connection {
            known_connection(&scope.node, connection)?;
        }
        let report = scope.node.verify(request.connection.as_deref())?;
        (scope.on_change)();
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

async fn exalate(Extension(scope): Extension<Scope>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let request = ExalateRequest::parse(&body)?;
        known_connection(&scope.node, &request.connection)?;
        let mut twins = Vec::new();
        let mut errors = Vec::new();
        for key in &request.keys {
            match scope.node.exalate(&request.connection, key) {
                Ok(twin) => twins.push(json!({ "key": key, "twin": twin })),
                Err(e) => errors.push(json!({ "key": key, "error": format!("{e:#}") })),
            }
        }
        (scope.on_change)();
        Ok(json!({ "twins": twins, "errors": errors }))
    })
    .await
}

async fn unexalate(Extension(scope): Extension<Scope>, body: axum::body::Bytes) -> Answer {
    blocking(move || {
        let request = ExalateRequest::parse(&body)?;
        known_connection(&scope.node, &request.connection)?;
        for key in &request.keys {
            scope.node.unexalate(&request.connection, key)?;
        }
        (scope.on_change)();
        Ok(json!({ "unexalated": request.keys }))
    })
    .await
}

/// The query of `GET /v1/twins`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TwinsQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// A query value as it goes in a URL: every byte but letters, digits and `-._~` as `%XX`.
/// A twin id is chosen by the node that exalated it, so it may hold anything.
fn query_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The header that carries the cursor of the next page of `GET /v1/twins`, URL-encoded:
/// the next page is `?after=` followed by it as it is.
pub const NEXT_HEADER: &str = "x-twinsync-next";

async fn twins(
    Extension(scope): Extension<Scope>,
    query: Result<axum::extract::Query<TwinsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(query) => query.0,
        Err(e) => return Failure(StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let limit = query.limit.unwrap_or(ops::TWINS_PAGE);
    if !(1..=ops::MAX_TWINS_PAGE).contains(&limit) {
        return Failure(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {}", ops::MAX_TWINS_PAGE),
        )
        .into_response();
    }
    if query
        .after
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.len() > 256)
    {
        return Failure(
            StatusCode::BAD_REQUEST,
            "after must be a twin id (1 to 256 bytes)".into(),
        )
        .into_response();
    }
    let page = tokio::task::spawn_blocking(move || {
        ops::twins_page(scope.node.store(), query.after.as_deref(), limit)
    })
    .await;
    match page {
        Ok(Ok((rows, next))) => {
            let mut response = Json(rows).into_response();
            if let Some(next) = next
                && let Ok(value) = axum::http::HeaderValue::from_str(&query_encode(&next))
            {
                response.headers_mut().insert(NEXT_HEADER, value);
            }
            response
        }
        Ok(Err(error)) => Failure::from(error).into_response(),
        Err(_) => Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed".into(),
        )
        .into_response(),
    }
}

/// A tenant's rows also say which quota its events wait for (`null`: none).
async fn queue(Extension(scope): Extension<Scope>) -> Answer {
    blocking(move || {
        let mut rows = to_json(ops::queue(scope.node.store())?)?;
        if let Some(tenant) = &scope.hosted {
            let waiting = tenant.queue()?.waiting_for_quota.map(|q| q.as_str());
            for row in rows.as_array_mut().into_iter().flatten() {
                row["waiting_for_quota"] = Value::from(waiting);
            }
        }
        Ok(rows)
    })
    .await
}

async fn errors(Extension(scope): Extension<Scope>) -> Answer {
    blocking(move || to_json(ops::errors(scope.node.store())?)).await
}

/// The filters of `GET /v1/events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    twin: Option<String>,
    state: Option<String>,
}

async fn list_events(
    Extension(scope): Extension<Scope>,
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
        let events = ops::events(scope.node.store(), query.twin.as_deref(), state)?;
        // A twin this node does not know (another tenant's, say) is not found.
        if let Some(twin) = &query.twin
            && events.is_empty()
            && !knows_twin(&scope.node, twin)?
        {
            return Err(not_found(format!("no twin `{twin}`")));
        }
        to_json(events)
    })
    .await
}

async fn event(Extension(scope): Extension<Scope>, Path(id): Path<String>) -> Answer {
    blocking(move || match ops::event(scope.node.store(), &id) {
        Ok(event) => {
            let mut value = to_json(event)?;
            // Which plugin processed it (name, version, sha256), if a processor ran.
            let plugin = scope
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

async fn retry(Extension(scope): Extension<Scope>, Path(id): Path<String>) -> Answer {
    blocking(move || {
        ops::retry(scope.node.store(), &id).map_err(|e| not_found(format!("{e:#}")))?;
        (scope.on_change)();
        Ok(json!({ "retried": [id] }))
    })
    .await
}

async fn retry_all(Extension(scope): Extension<Scope>) -> Answer {
    blocking(move || {
        let count = ops::retry_all(scope.node.store())?;
        (scope.on_change)();
        Ok(json!({ "retried": count }))
    })
    .await
}

async fn skip(Extension(scope): Extension<Scope>, Path(id): Path<String>) -> Answer {
    blocking(move || {
        ops::skip(scope.node.store(), &id).map_err(|e| not_found(format!("{e:#}")))?;
        (scope.on_change)();
        Ok(json!({ "skipped": id }))
    })
    .await
}

async fn conflicts(Extension(scope): Extension<Scope>) -> Answer {
    blocking(move || to_json(ops::conflicts(scope.node.store())?)).await
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
    Extension(scope): Extension<Scope>,
    axum::extract::Query(query): axum::extract::Query<HistoryQuery>,
) -> Answer {
    use crate::store::history::{self, Filter, parse_time};
    blocking(move || {
        if let Some(connection) = &query.connection {
            known_connection(&scope.node, connection)?;
        }
        let filter = Filter {
            since_ms: query.since.as_deref().map(parse_time).transpose()?,
            until_ms: query.until.as_deref().map(parse_time).transpose()?,
            key: query.key,
            connection: query.connection,
            before: query.before,
            limit: query.limit,
        };
        let entries = scope.node.store().read(|db| history::query(db, &filter))?;
        if let Some(key) = &filter.key
            && entries.is_empty()
            && !knows_twin(&scope.node, key)?
        {
            return Err(not_found(format!("no twin or issue `{key}` under sync")));
        }
        to_json(entries)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    take: crate::sync::Take,
}

async fn resolve_conflict(
    Extension(scope): Extension<Scope>,
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
        let open = scope
            .node
            .store()
            .read(|db| crate::store::conflicts::get(db, id))?
            .is_some_and(|c| c.resolved_at.is_none());
        if !open {
            return Err(not_found(format!("there is no open conflict {id}")));
        }
        scope.node.resolve_conflict(id, request.take)?;
        (scope.on_change)();
        Ok(json!({ "resolved": id }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `METHOD /path` rows of a module's doc table.
    fn documented(source: &str) -> Vec<(String, String)> {
        source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .filter_map(|l| l.strip_prefix("//! | `")?.split('`').next())
            .filter_map(|route| {
                let (method, path) = route.split_once(' ')?;
                Some((method.to_string(), path.to_string()))
            })
            .collect()
    }

    /// The routes the router is built from are the ones documented (tests/tenants_serve.rs
    /// tries each documented route with another tenant's token): a route added without its
    /// row in a table fails here.
    #[test]
    fn every_route_is_documented() {
        let mut documented: Vec<(String, String)> = [
            include_str!("admin.rs"),
            include_str!("plugins/api.rs"),
            include_str!("tenants/api.rs"),
        ]
        .into_iter()
        .flat_map(documented)
        .collect();
        let mut routed: Vec<(String, String)> = route_table()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_encode("tw-1_a.b~"), "tw-1_a.b~");
        assert_eq!(query_encode("a b&c=é/"), "a%20b%26c%3D%C3%A9%2F");
    }

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
