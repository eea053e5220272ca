//! Sync errors: the list, one error with its input, log and typed failure, and retrying or
//! skipping (each after a confirmation page, so that it works without JavaScript).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::response::Response;
use axum::{Extension, Form};

use super::{Problem, done, now_ms, or_dash, render, twin_link};
use crate::console::View;
use crate::console::auth::Session;
use crate::console::data::{self, EventFilter};
use crate::console::html::{self, PAGE_SIZE, esc, url};
use crate::ops;

/// Bytes of the processor's input shown before "show all".
const INPUT_SHOWN: usize = 2000;
const LOG_SHOWN: usize = 4000;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    connection: String,
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
        let filter = EventFilter {
            connection: query.connection.clone(),
            state: "failed".into(),
            page: query.page,
            ..EventFilter::default()
        };
        let (errors, more) = console
            .node
            .store()
            .read(|db| data::events(db, &filter, PAGE_SIZE))?;
        let rows: Vec<String> = errors
            .iter()
            .map(|e| {
                html::row(&[
                    format!("<a href=\"/console/errors/{}\">{}</a>", url(&e.id), esc(&e.id)),
                    esc(&e.connection),
                    twin_link(&e.twin, e.local_key.as_deref().unwrap_or(&e.twin)),
                    or_dash(e.error_kind.as_deref()),
                    or_dash(e.error.as_deref()),
                    e.attempts.to_string(),
                    e.first_attempt_at.map(|ms| html::time(ms, now)).unwrap_or_default(),
                ])
            })
            .collect();
        let retry_all = if query.connection.is_empty() {
            let links: Vec<String> = console
                .node
                .connections()
                .iter()
                .map(|c| {
                    format!(
                        "<a href=\"/console/errors/retry-all?connection={}\">Retry every error of {}</a>",
                        url(&c.name),
                        esc(&c.name)
                    )
                })
                .collect();
            format!("<p>{}</p>", links.join(" · "))
        } else {
            format!(
                "<p><a href=\"/console/errors/retry-all?connection={}\">Retry every error of {}</a> · <a href=\"/console/errors\">All connections</a></p>",
                url(&query.connection),
                esc(&query.connection)
            )
        };
        let body = format!(
            "{retry_all}{}{}",
            html::table(
                "Sync errors, newest first",
                &["Event", "Connection", "Twin", "Kind", "Reason", "Attempts", "Since"],
                &rows
            ),
            html::pager(
                &format!("/console/errors?connection={}", url(&query.connection)),
                query.page,
                more
            )
        );
        Ok::<_, Problem>(html::page("Errors", "/console/errors", &session.csrf, &body))
    })
    .await
}

pub async fn detail(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    render(console, move |console| {
        let now = now_ms();
        let event = ops::event(console.node.store(), &id).map_err(|e| Problem::not_found(format!("{e:#}")))?;
        let issue = console
            .node
            .store()
            .read(|db| crate::store::twins::get(db, &event.twin_id))?
            .map(|t| t.local_key);
        let state = format!("{:?}", event.state).to_lowercase();
        let actions = if state == "failed" {
            format!(
                "<p><a href=\"/console/errors/{id}/confirm?action=retry\">Retry…</a> · <a href=\"/console/errors/{id}/confirm?action=skip\">Skip…</a></p>",
                id = url(&event.id)
            )
        } else {
            format!("<p>This event is {} now.</p>", esc(&state))
        };
        let body = format!(
            "{actions}<dl class=\"card\">
<dt>Failure</dt><dd><strong class=\"bad\">{kind}</strong>: {error}</dd>
<dt>Direction</dt><dd>{direction}</dd>
<dt>Connection</dt><dd>{connection}</dd>
<dt>Twin</dt><dd>{twin}</dd>
<dt>Reason</dt><dd>{reason} (hop {hop})</dd>
<dt>Attempts</dt><dd>{attempts}</dd>
<dt>Last attempt</dt><dd>{last}</dd>
</dl>
<h2>Processor log</h2>{log}
<h2>What the processor was given</h2>{input}
{message}",
            kind = or_dash(event.error_kind.as_deref()),
            error = or_dash(event.error.as_deref()),
            direction = esc(&format!("{:?}", event.kind).to_lowercase()),
            connection = esc(&event.connection),
            twin = twin_link(&event.twin_id, issue.as_deref().unwrap_or(&event.twin_id)),
            reason = esc(event.reason.as_str()),
            hop = event.hop,
            attempts = event.attempts,
            last = event.last_attempt_at.map(|at| html::time(at, now)).unwrap_or_default(),
            log = match event.log.as_deref() {
                Some(log) => html::long_text(log, LOG_SHOWN),
                None => "<p class=\"empty\">The processor logged nothing.</p>".into(),
            },
            input = match event.input.as_deref() {
                Some(input) => html::long_text(&pretty(input), INPUT_SHOWN),
                None => "<p class=\"empty\">Not kept (the processor did not run).</p>".into(),
            },
            message = match event.message.as_deref() {
                Some(m) => format!("<h2>The message received</h2>{}", html::long_text(&pretty(m), INPUT_SHOWN)),
                None => String::new(),
            },
        );
        Ok::<_, Problem>(html::page(&format!("Error {}", event.id), "/console/errors", &session.csrf, &body))
    })
    .await
}

/// JSON indented for reading; anything else as it is.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
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
        // An event this node does not have (another tenant's, say) is not found.
        if crate::ops::event(console.node.store(), &id).is_err() {
            return Err(Problem::not_found(format!("no event {id}")));
        }
        let (what, label) = match query.action.as_str() {
            "retry" => (
                "put this event back in the queue (fix the processor or the tracker first)",
                "Retry",
            ),
            "skip" => (
                "drop this event: its twin goes on with the next one, this change is never applied",
                "Skip",
            ),
            _ => return Err(Problem::not_found("no such action")),
        };
        Ok(super::confirmation(
            "errors",
            "event",
            &id,
            &query.action,
            (what, label),
            &session.csrf,
        ))
    })
    .await
}

pub async fn retry(Extension(console): Extension<Arc<View>>, Path(id): Path<String>) -> Response {
    render(console, move |console| {
        ops::retry(console.node.store(), &id).map_err(|e| Problem::not_found(format!("{e:#}")))?;
        Ok(done(console, &format!("/console/errors/{}", url(&id))))
    })
    .await
}

pub async fn skip(Extension(console): Extension<Arc<View>>, Path(id): Path<String>) -> Response {
    render(console, move |console| {
        ops::skip(console.node.store(), &id).map_err(|e| Problem::not_found(format!("{e:#}")))?;
        Ok(done(console, "/console/errors"))
    })
    .await
}

pub async fn confirm_retry_all(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    render(console, move |console| {
        let connection = query.get("connection").cloned().unwrap_or_default();
        let count = ops::errors(console.node.store())?
            .iter()
            .filter(|e| e.connection == connection)
            .count();
        let body = format!(
            "<p>Put the {count} sync error(s) of connection <strong>{}</strong> back in the queue?</p>{} <a href=\"/console/errors\">Cancel</a>",
            esc(&connection),
            html::post_form("/console/errors/retry-all", &session.csrf, "Retry all", &[("connection", &connection)], "block"),
        );
        Ok::<_, Problem>(html::page("Retry all?", "/console/errors", &session.csrf, &body))
    })
    .await
}

pub async fn retry_all(
    Extension(console): Extension<Arc<View>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    render(console, move |console| {
        let connection = form.get("connection").cloned().unwrap_or_default();
        for error in ops::errors(console.node.store())? {
            if error.connection == connection {
                ops::retry(console.node.store(), &error.event)?;
            }
        }
        Ok(done(
            console,
            &format!("/console/errors?connection={}", url(&connection)),
        ))
    })
    .await
}
