//! The tenants in the admin API (merged into `admin::router`), for the host token only: a
//! tenant's token gets 404 for each, as for a route that does not exist.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/tenants` | every registered tenant: spec (secrets hidden), revision, `state` (`running`, `failed` or `starting`), for a failed one `error` (why) and `next_try_ms` (when it is tried again: `[tenants] retry-after-secs`) |
//! | `POST /v1/tenants` | register a tenant (body: its spec) and start it; `201` with its token, shown this once (one that cannot start is not kept: `400` with the reason) |
//! | `GET /v1/tenants/{name}` | one tenant |
//! | `PUT /v1/tenants/{name}` | replace its spec (same name); it restarts with it (or, if it cannot start with it, `400` and it runs on as it was) |
//! | `DELETE /v1/tenants/{name}` | stop it and forget it; its directory (`DATA_DIR/tenants/NAME`) stays |
//! | `POST /v1/tenants/{name}/token` | a new token for it, shown this once; the old one stops working |
//!
//! A spec is `{"name": "acme", "instance": "Acme", "tracker": {"kind": "reference",
//! "project": "ACME"}, "connections": [{"name": "...", "remote-instance": "...",
//! "remote-url": "http://...", "secret": "...", "direction": "bidirectional", "incoming":
//! "mirror", "outgoing": "plugin:NAME@VERSION", "limits": {...}, "conflicts": {...}}],
//! "webhook-secret": "...", "quota": {"events-per-second": 50, "fuel-per-second": N,
//! "stored-bytes": N}}` (`webhook-secret` optional: see `routing`; `quota` and each of its
//! fields optional: past one the tenant's events wait, which `GET /v1/queue` with its token
//! shows as `waiting_for_quota`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post, put};
use serde_json::{Value, json};

use super::Tenants;
use super::registry::Entry;
use super::spec::TenantSpec;
use super::token;
use crate::admin::{Admin, Failure, Route, not_found};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        ("GET", "/v1/tenants", get(list)),
        ("POST", "/v1/tenants", post(add)),
        ("GET", "/v1/tenants/{name}", get(show)),
        ("PUT", "/v1/tenants/{name}", put(replace)),
        ("DELETE", "/v1/tenants/{name}", delete(remove)),
        ("POST", "/v1/tenants/{name}/token", post(rotate)),
    ]
}

type Answer = Result<Json<Value>, Failure>;

/// Run registry work (SQLite, starting tenants) off the async threads.
async fn blocking(
    admin: Arc<Admin>,
    f: impl FnOnce(&Tenants) -> Result<Value, Failure> + Send + 'static,
) -> Answer {
    let work = move || match &admin.tenants {
        Some(tenants) => f(tenants),
        None => Err(not_found("this process hosts no tenants".into())),
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map(Json),
        Err(_) => Err(Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed".into(),
        )),
    }
}

/// How a tenant is shown: never its token or its secrets.
pub fn describe(tenants: &Tenants, entry: &Entry) -> Value {
    let state = tenants.state(&entry.spec.name);
    json!({
        "name": entry.spec.name,
        "spec": entry.spec.redacted(),
        "revision": entry.revision,
        "running": state.state == "running",
        "state": state.state,
        "error": state.reason,
        "next_try_ms": state.next_try_ms,
        "created_ms": entry.created_ms,
        "updated_ms": entry.updated_ms,
    })
}

fn unknown(name: &str) -> Failure {
    not_found(format!("no tenant `{name}`"))
}

async fn list(State(admin): State<Arc<Admin>>) -> Answer {
    blocking(admin, |tenants| {
        let all = tenants.registry().list()?;
        Ok(Value::from(
            all.iter().map(|e| describe(tenants, e)).collect::<Vec<_>>(),
        ))
    })
    .await
}

async fn add(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Response {
    let answer = blocking(admin, move |tenants| {
        let spec = TenantSpec::from_json(&body)?;
        tenants.check(&spec)?;
        let token = token::new_token();
        let entry = tenants.registry().add(&spec, &token::hash(&token))?;
        tenants.reconcile()?;
        // One that cannot start is not kept: the caller gets the reason, nothing is left.
        if let Some(Err(why)) = tenants.status(&spec.name) {
            tenants.registry().remove(&spec.name)?;
            tenants.reconcile()?;
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("tenant `{}` cannot start: {why}", spec.name),
            ));
        }
        let mut shown = describe(tenants, &entry);
        shown["token"] = Value::from(token);
        Ok(shown)
    })
    .await;
    match answer {
        Ok(body) => (StatusCode::CREATED, body).into_response(),
        Err(failure) => failure.into_response(),
    }
}

async fn show(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Answer {
    blocking(admin, move |tenants| {
        let entry = tenants
            .registry()
            .get(&name)?
            .ok_or_else(|| unknown(&name))?;
        Ok(describe(tenants, &entry))
    })
    .await
}

async fn replace(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    blocking(admin, move |tenants| {
        let spec = TenantSpec::from_json(&body)?;
        if spec.name != name {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "the spec names tenant `{}`, the path `{name}`: a tenant cannot be renamed",
                    spec.name
                ),
            ));
        }
        tenants.check(&spec)?;
        let old = tenants
            .registry()
            .get(&name)?
            .ok_or_else(|| unknown(&name))?;
        let entry = tenants
            .registry()
            .replace(&spec)?
            .ok_or_else(|| unknown(&name))?;
        tenants.reconcile()?;
        // A spec it cannot start with is undone: it runs on as it was.
        if let Some(Err(why)) = tenants.status(&name) {
            tenants.registry().replace(&old.spec)?;
            tenants.reconcile()?;
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("tenant `{name}` cannot start with this spec, kept as it was: {why}"),
            ));
        }
        Ok(describe(tenants, &entry))
    })
    .await
}

async fn remove(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Answer {
    blocking(admin, move |tenants| {
        if !tenants.registry().remove(&name)? {
            return Err(unknown(&name));
        }
        tenants.reconcile()?;
        Ok(json!({ "removed": name }))
    })
    .await
}

async fn rotate(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Answer {
    blocking(admin, move |tenants| {
        let token = token::new_token();
        if !tenants.registry().set_token(&name, &token::hash(&token))? {
            return Err(unknown(&name));
        }
        tenants.reconcile()?;
        Ok(json!({ "name": name, "token": token }))
    })
    .await
}
