//! Twins: search by key on either side; a twin's page with both keys, its history as a
//! timeline with what each event changed, its open conflicts, and resync / unexalate.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query};
use axum::response::Response;

use super::{Problem, done, now_ms, or_dash, render, twin_link};
use crate::console::View;
use crate::console::auth::Session;
use crate::console::data;
use crate::console::html::{self, PAGE_SIZE, esc, url};
use crate::model::SyncReason;
use crate::ops;
use crate::store::events::Kind;
use crate::store::history::{self, Entry, Filter};
use crate::store::twins;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    key: String,
    #[serde(default)]
    page: usize,
}

pub async fn list(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
    Query(query): Query<ListQuery>,
) -> Response {
    render(console, move |console| {
        let now = now_ms();
        let (twins, more) =
            console.node.store().read(|db| data::twins(db, &query.key, query.page, PAGE_SIZE))?;
        let rows: Vec<String> = twins
            .iter()
            .map(|t| {
                html::row(&[
                    twin_link(&t.twin, &t.local_key),
                    or_dash(t.remote_key.as_deref()),
                    esc(&t.connection),
                    esc(&t.twin),
                    html::time(t.created_at, now),
                ])
            })
            .collect();
        let body = format!(
            "<form method=\"get\" action=\"/console/twins\" class=\"filters\" role=\"search\"><label for=\"key\">Issue key (either side) or twin id</label> <input id=\"key\" name=\"key\" value=\"{}\"> <button type=\"submit\">Search</button></form>{}{}",
            esc(&query.key),
            html::table("Twins", &["Local issue", "Remote issue", "Connection", "Twin", "Since"], &rows),
            html::pager(&format!("/console/twins?key={}", url(&query.key)), query.page, more),
        );
        Ok::<_, Problem>(html::page("Twins", "/console/twins", &session.csrf, &body))
    })
    .await
}

#[derive(serde::Deserialize, Default)]
pub struct HistoryQuery {
    /// Entries older than this one (paging the timeline).
    before: Option<i64>,
}

/// One history entry as a timeline item.
fn entry(e: &Entry, now: i64) -> String {
    let changes: Vec<String> = e
        .changes
        .iter()
        .map(|c| {
            format!(
                "<tr><th scope=\"row\">{}</th><td class=\"old\">{}</td><td class=\"new\">{}</td></tr>",
                esc(&c.field),
                or_dash(c.old.as_deref()),
                or_dash(c.new.as_deref())
            )
        })
        .collect();
    let changes = if changes.is_empty() {
        String::new()
    } else {
        format!(
            "<table class=\"diff\"><caption>Changed in the local issue</caption><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Before</th><th scope=\"col\">After</th></tr></thead><tbody>{}</tbody></table>",
            changes.concat()
        )
    };
    let comments: String = e
        .comments
        .iter()
        .map(|c| {
            format!(
                "<li>Comment added by {}: <q>{}</q></li>",
                or_dash(c.author.as_deref()),
                esc(&c.body)
            )
        })
        .collect();
    let comments = if comments.is_empty() {
        String::new()
    } else {
        format!("<ul>{comments}</ul>")
    };
    let processor = match (&e.processor, &e.processor_sha256) {
        (Some(name), Some(sha)) => format!(
            " · processor {} <code title=\"{}\">{}</code>",
            esc(name),
            esc(sha),
            esc(sha.get(..12).unwrap_or(sha))
        ),
        _ => String::new(),
    };
    let event = if e.outcome == "failed" {
        format!(
            "<a href=\"/console/errors/{}\">{}</a>",
            url(&e.event),
            esc(&e.event)
        )
    } else {
        esc(&e.event)
    };
    format!(
        "<li class=\"{outcome}\"><p>{time} · <strong>{outcome}</strong> · {direction} {event} · {reason} (hop {hop}){processor}</p><p>{note}</p>{changes}{comments}</li>",
        outcome = esc(&e.outcome),
        time = html::time(e.at_ms, now),
        direction = esc(&e.direction),
        reason = esc(&e.reason),
        hop = e.hop,
        note = esc(&e.note),
    )
}

pub async fn page(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    render(console, move |console| {
        let now = now_ms();
        let store = console.node.store();
        let twin = store.read(|db| twins::get(db, &id))?;
        let filter = Filter {
            key: Some(id.clone()),
            before: query.before,
            limit: Some(PAGE_SIZE + 1),
            ..Filter::default()
        };
        let mut entries = store.read(|db| history::query(db, &filter))?;
        if twin.is_none() && entries.is_empty() && query.before.is_none() {
            return Err(Problem::not_found(format!("there is no twin `{id}` on this node")));
        }
        let more = entries.len() > PAGE_SIZE;
        entries.truncate(PAGE_SIZE);
        let search = |key: &str| format!("<a href=\"/console/twins?key={}\">{}</a>", url(key), esc(key));
        let (keys, actions) = match &twin {
            Some(t) => (
                format!(
                    "<dt>Local issue</dt><dd>{}</dd><dt>Remote issue</dt><dd>{}</dd><dt>Connection</dt><dd>{}</dd><dt>Queue</dt><dd><a href=\"/console/queue?twin={}&state=all\">this twin's events</a></dd>",
                    search(&t.local_key),
                    t.remote_key.as_deref().map(search).unwrap_or_else(|| or_dash(None)),
                    esc(&t.connection),
                    url(&t.twin_id),
                ),
                format!(
                    "<p><a href=\"/console/twins/{id}/confirm?action=resync\">Resync…</a> · <a href=\"/console/twins/{id}/confirm?action=unexalate\">Unexalate…</a></p>",
                    id = url(&t.twin_id)
                ),
            ),
            None => {
                let last = entries.first();
                (
                    format!(
                        "<dt>Local issue</dt><dd>{}</dd><dt>Remote issue</dt><dd>{}</dd><dt>Status</dt><dd>no longer under sync</dd>",
                        or_dash(last.and_then(|e| e.local_key.as_deref())),
                        or_dash(last.and_then(|e| e.remote_key.as_deref())),
                    ),
                    String::new(),
                )
            }
        };
        let conflicts: Vec<String> = ops::conflicts(store)?
            .into_iter()
            .filter(|c| c.twin == id)
            .map(|c| {
                html::row(&[
                    esc(&c.field),
                    esc(&c.local_value),
                    esc(&c.remote_value),
                    format!("<a href=\"/console/conflicts#conflict-{}\">resolve</a>", c.id),
                ])
            })
            .collect();
        let timeline: String = entries.iter().map(|e| entry(e, now)).collect();
        let older = match (more, entries.last()) {
            (true, Some(last)) => format!(
                "<nav class=\"pager\" aria-label=\"Pages\"><a rel=\"next\" href=\"/console/twins/{}?before={}\">Older entries</a></nav>",
                url(&id),
                last.seq
            ),
            _ => String::new(),
        };
        let body = format!(
            "<dl class=\"card\"><dt>Twin</dt><dd><code>{}</code></dd>{keys}</dl>{actions}{}<h2>History</h2><ol class=\"timeline\">{timeline}</ol>{older}",
            esc(&id),
            html::table("Open conflicts", &["Field", "Local value", "Remote value", ""], &conflicts),
        );
        let title = match &twin {
            Some(t) => format!("Twin {}", t.local_key),
            None => format!("Twin {id}"),
        };
        Ok(html::page(&title, "/console/twins", &session.csrf, &body))
    })
    .await
}

#[derive(serde::Deserialize)]
pub struct ConfirmQuery {
    action: String,
}

pub async fn confirm(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(query): Query<ConfirmQuery>,
) -> Response {
    render(console, move |console| {
        // A twin this node does not have (another tenant's, say) is not found.
        twin_of(console, &id)?;
        let (what, label) = match query.action.as_str() {
            "resync" => ("send the local issue to the other side again", "Resync"),
            "unexalate" => (
                "stop syncing: both sides keep their issue and forget the link",
                "Unexalate",
            ),
            _ => return Err(Problem::not_found("no such action")),
        };
        Ok(super::confirmation(
            "twins",
            "twin",
            &id,
            &query.action,
            (what, label),
            &session.csrf,
        ))
    })
    .await
}

fn twin_of(console: &View, id: &str) -> Result<twins::Twin, Problem> {
    console
        .node
        .store()
        .read(|db| twins::get(db, id))?
        .ok_or_else(|| {
            Problem::not_found(format!("there is no twin `{id}` under sync on this node"))
        })
}

pub async fn resync(Extension(console): Extension<Arc<View>>, Path(id): Path<String>) -> Response {
    render(console, move |console| {
        let twin = twin_of(console, &id)?;
        let node = &console.node;
        node.store().write(|tx| {
            node.queue(
                tx,
                Kind::Outgoing,
                &twin.connection,
                &twin.twin_id,
                SyncReason::ManualExalate,
                0,
                now_ms(),
            )
        })?;
        Ok(done(console, &format!("/console/twins/{}", url(&id))))
    })
    .await
}

pub async fn unexalate(
    Extension(console): Extension<Arc<View>>,
    Path(id): Path<String>,
) -> Response {
    render(console, move |console| {
        let twin = twin_of(console, &id)?;
        console.node.unexalate(&twin.connection, &twin.local_key)?;
        Ok(done(console, &format!("/console/twins/{}", url(&id))))
    })
    .await
}
