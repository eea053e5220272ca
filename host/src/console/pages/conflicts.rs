//! Conflicts held for review: both values side by side, and keeping one of them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::response::Response;
use axum::{Extension, Form};

use super::{Problem, done, render, twin_link};
use crate::console::View;
use crate::console::auth::Session;
use crate::console::data::page_of;
use crate::console::html::{self, PAGE_SIZE, esc};
use crate::ops;
use crate::sync::Take;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    page: usize,
}

pub async fn list(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
    Query(query): Query<ListQuery>,
) -> Response {
    render(console, move |console| {
        let (conflicts, more) = page_of(ops::conflicts(console.node.store())?, query.page, PAGE_SIZE);
        let items: String = conflicts
            .iter()
            .map(|c| {
                let action = format!("/console/conflicts/{}/resolve", c.id);
                format!(
                    "<section class=\"card\" id=\"conflict-{id}\" aria-labelledby=\"conflict-{id}-title\"><h2 id=\"conflict-{id}-title\">{field} of {twin}</h2>
<p class=\"muted\">Connection {connection}, held since {since}</p>
<div class=\"sides\"><div><h3>Local value</h3><pre tabindex=\"0\">{local}</pre>{take_local}</div><div><h3>Remote value</h3><pre tabindex=\"0\">{remote}</pre>{take_remote}</div></div></section>",
                    id = c.id,
                    field = esc(&c.field),
                    twin = twin_link(&c.twin, c.issue.as_deref().unwrap_or(&c.twin)),
                    connection = esc(&c.connection),
                    since = esc(&c.since),
                    local = esc(&c.local_value),
                    remote = esc(&c.remote_value),
                    take_local = html::post_form(&action, &session.csrf, "Keep the local value", &[("take", "local")], "block"),
                    take_remote = html::post_form(&action, &session.csrf, "Keep the remote value", &[("take", "remote")], "block"),
                )
            })
            .collect();
        let body = if items.is_empty() {
            "<p class=\"empty\">No conflicts held for review.</p>".to_string()
        } else {
            format!("<div class=\"cards\">{items}</div>{}", html::pager("/console/conflicts", query.page, more))
        };
        Ok::<_, Problem>(html::page("Conflicts", "/console/conflicts", &session.csrf, &body))
    })
    .await
}

pub async fn resolve(
    Extension(console): Extension<Arc<View>>,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    render(console, move |console| {
        let take = match form.get("take").map(String::as_str) {
            Some("local") => Take::Local,
            Some("remote") => Take::Remote,
            _ => {
                return Err(Problem::from(anyhow::anyhow!(
                    "choose the local or the remote value"
                )));
            }
        };
        // A conflict this node does not have open (another tenant's, say) is not found.
        let open = console
            .node
            .store()
            .read(|db| crate::store::conflicts::get(db, id))?
            .is_some_and(|c| c.resolved_at.is_none());
        if !open {
            return Err(Problem::not_found(format!("no open conflict {id}")));
        }
        console.node.resolve_conflict(id, take)?;
        Ok(done(console, "/console/conflicts"))
    })
    .await
}
