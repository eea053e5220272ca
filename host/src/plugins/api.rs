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
//! Changes are recorded as made by `admin-api`. Installing takes a file, so it is the CLI's
//! (as removing is): the host's.
//!
//! With a tenant's token, the same routes act on that tenant (see `tenants::plugins`): the
//! list is the host's packages, each with the sides of the tenant's own connections that
//! run it; `use`, `upgrade`, `rollback` and `try` act on its own connections only (another
//! tenant's connection is not found), and restart it on the new version (a version it
//! cannot start with is refused, and it runs on as it was); `changes` lists its own
//! switches (`tenant-api`).

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::manage;
use super::store::{self, Side};
use super::trial::{DEFAULT_LAST, Pick};
use crate::admin::{Admin, Failure, Route, Scope, known_connection, not_found};
use crate::tenants::plugins as tenant;

const BY: &str = "admin-api";

pub(crate) fn routes() -> Vec<Route> {
    vec![
        ("GET", "/v1/plugins", get(list)),
        ("GET", "/v1/plugins/changes", get(changes)),
        ("POST", "/v1/plugins/use", post(use_version)),
        ("POST", "/v1/plugins/upgrade", post(upgrade)),
        ("POST", "/v1/plugins/rollback", post(rollback)),
        ("POST", "/v1/plugins/try", post(try_plugin)),
    ]
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

/// The tenant of a tenant token, with the host's node and the tenants: what its plugin
/// calls act on. `None` for the host token.
fn tenant_of<'a>(
    admin: &'a Admin,
    scope: &'a Scope,
) -> Option<(&'a crate::sync::Node, &'a crate::tenants::Tenants, &'a str)> {
    let name = scope.tenant.as_deref()?;
    let tenants = admin.tenants.as_deref()?;
    Some((&admin.node, tenants, name))
}

async fn list(State(admin): State<Arc<Admin>>, Extension(scope): Extension<Scope>) -> Answer {
    blocking(move || match tenant_of(&admin, &scope) {
        Some((host, tenants, name)) => to_json(tenant::packages(host, tenants, name)?),
        None => to_json(scope.node.store().read(|db| store::all(db))?),
    })
    .await
}

async fn changes(State(admin): State<Arc<Admin>>, Extension(scope): Extension<Scope>) -> Answer {
    blocking(move || match tenant_of(&admin, &scope) {
        Some((_, tenants, name)) => to_json(tenant::changes(tenants, name)?),
        None => to_json(scope.node.store().read(|db| store::changes(db))?),
    })
    .await
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

async fn use_version(
    State(admin): State<Arc<Admin>>,
    Extension(scope): Extension<Scope>,
    body: axum::body::Bytes,
) -> Answer {
    blocking(move || {
        let r: UseRequest = parse(
            &body,
            r#"{"plugin": "NAME@VERSION", "connection": "...", "side": "incoming|outgoing"}"#,
        )?;
        known_connection(&scope.node, &r.connection)?;
        let (name, version) = manage::parse_id(&r.plugin)?;
        if let Some((host, tenants, tenant)) = tenant_of(&admin, &scope) {
            if !r.settings.is_empty() {
                return Err(Failure(
                    StatusCode::BAD_REQUEST,
                    "a tenant's connections take no plugin settings".into(),
                ));
            }
            tenant::use_version(host, tenants, tenant, &r.connection, r.side, name, version)?;
            return Ok(json!({ "connection": r.connection, "side": r.side, "plugin": r.plugin }));
        }
        installed(&scope, name, Some(version))?;
        manage::use_version(
            &scope.node,
            &r.connection,
            r.side,
            name,
            version,
            &r.settings,
            BY,
        )?;
        (scope.on_change)();
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

async fn upgrade(
    State(admin): State<Arc<Admin>>,
    Extension(scope): Extension<Scope>,
    body: axum::body::Bytes,
) -> Answer {
    blocking(move || {
        let r: UpgradeRequest = parse(&body, r#"{"name": "...", "to": "VERSION"}"#)?;
        if let Some((host, tenants, tenant)) = tenant_of(&admin, &scope) {
            let moved = tenant::upgrade(host, tenants, tenant, &r.name, r.to.as_deref())?;
            let moved: Vec<String> = moved
                .iter()
                .map(|c| format!("{}/{}", c.connection, c.side))
                .collect();
            return Ok(json!({ "upgraded": moved }));
        }
        installed(&scope, &r.name, None)?;
        let moved = manage::upgrade(&scope.node, &r.name, r.to.as_deref(), BY)?;
        (scope.on_change)();
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

async fn rollback(
    State(admin): State<Arc<Admin>>,
    Extension(scope): Extension<Scope>,
    body: axum::body::Bytes,
) -> Answer {
    blocking(move || {
        let r: RollbackRequest = parse(&body, r#"{"connection": "...", "side": "outgoing"}"#)?;
        known_connection(&scope.node, &r.connection)?;
        if let Some((_, tenants, tenant)) = tenant_of(&admin, &scope) {
            let done = tenant::rollback(tenants, tenant, &r.connection, r.side)?;
            let done: Vec<String> = done
                .iter()
                .map(|c| {
                    let to = c.processor.as_deref().unwrap_or("the default processor");
                    format!("{}/{}: {to}", c.connection, c.side)
                })
                .collect();
            return Ok(json!({ "rolled_back": done }));
        }
        let done = manage::rollback(&scope.node, &r.connection, r.side, BY)?;
        (scope.on_change)();
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

async fn try_plugin(
    State(admin): State<Arc<Admin>>,
    Extension(scope): Extension<Scope>,
    body: axum::body::Bytes,
) -> Answer {
    blocking(move || {
        let r: TryRequest = parse(
            &body,
            r#"{"plugin": "NAME@VERSION", "connection": "...", "last": 50}"#,
        )?;
        known_connection(&scope.node, &r.connection)?;
        let (name, version) = manage::parse_id(&r.plugin)?;
        // A tenant tries a package of the host's store on its own node's events.
        let store_node = match tenant_of(&admin, &scope) {
            Some((host, ..)) => host,
            None => &*scope.node,
        };
        if store_node
            .store()
            .read(|db| store::get(db, name, version))?
            .is_none()
        {
            return Err(not_found(format!("no plugin {name}@{version} installed")));
        }
        let candidate = manage::load(store_node, name, version)?;
        let pick = if r.events.is_empty() {
            Pick::Last(r.last.unwrap_or(DEFAULT_LAST))
        } else {
            Pick::Events(r.events)
        };
        to_json(scope.node.try_plugin(&candidate, &r.connection, &pick)?)
    })
    .await
}

/// A package of the scope's plugin store (a version of it, if given), or 404: another
/// tenant's is not found either.
fn installed(scope: &Scope, name: &str, version: Option<&str>) -> Result<(), Failure> {
    let all = scope.node.store().read(|db| store::all(db))?;
    if all
        .iter()
        .any(|p| p.name == name && version.is_none_or(|v| p.version == v))
    {
        Ok(())
    } else {
        Err(not_found(format!(
            "no plugin {name}{} installed",
            version.map(|v| format!("@{v}")).unwrap_or_default()
        )))
    }
}
