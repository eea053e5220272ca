//! The queue: events waiting, failed or finished, filtered by connection, twin and state,
//! searched by key.

use std::sync::Arc;

use axum::Extension;
use axum::extract::Query;
use axum::response::Response;

use super::{Problem, now_ms, or_dash, render, twin_link};
use crate::console::View;
use crate::console::auth::Session;
use crate::console::data::{self, EventFilter};
use crate::console::html::{self, PAGE_SIZE, esc, url};
use crate::ops;

const STATES: &[(&str, &str)] = &[
    ("open", "pending and failed"),
    ("pending", "pending"),
    ("failed", "failed"),
    ("done", "done"),
    ("skipped", "skipped"),
    ("all", "all"),
];

fn select(name: &str, label: &str, options: &[(String, String)], current: &str) -> String {
    let options: String = options
        .iter()
        .map(|(value, text)| {
            let selected = if value == current { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                esc(value),
                esc(text)
            )
        })
        .collect();
    format!(
        "<label for=\"{name}\">{label}</label> <select id=\"{name}\" name=\"{name}\">{options}</select>"
    )
}

pub async fn page(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
    Query(filter): Query<EventFilter>,
) -> Response {
    render(console, move |console| {
        let node = &console.node;
        let now = now_ms();
        let counts: Vec<String> = ops::queue(node.store())?
            .into_iter()
            .map(|r| {
                html::row(&[
                    esc(&r.connection),
                    r.pending.to_string(),
                    r.in_flight.to_string(),
                    r.failed.to_string(),
                    r.done.to_string(),
                    r.skipped.to_string(),
                ])
            })
            .collect();
        let (events, more) = node.store().read(|db| data::events(db, &filter, PAGE_SIZE))?;
        let rows: Vec<String> = events
            .iter()
            .map(|e| {
                let state = match (e.state.as_str(), &e.error_kind) {
                    ("failed", kind) => format!(
                        "<a class=\"bad\" href=\"/console/errors/{}\">failed: {}</a>",
                        url(&e.id),
                        esc(kind.as_deref().unwrap_or("?"))
                    ),
                    ("pending", Some(kind)) => format!(
                        "pending (retrying after {}{})",
                        esc(kind),
                        e.next_attempt_at
                            .map(|at| format!(", next at {}", crate::clock::rfc3339(crate::clock::from_millis(at))))
                            .unwrap_or_default()
                    ),
                    (state, _) => esc(state),
                };
                html::row(&[
                    esc(&e.id),
                    esc(&e.direction),
                    esc(&e.connection),
                    twin_link(&e.twin, e.local_key.as_deref().unwrap_or(&e.twin)),
                    format!("{} (hop {})", esc(&e.reason), e.hop),
                    state,
                    e.attempts.to_string(),
                    html::time(e.created_at, now),
                    or_dash(e.error.as_deref()),
                ])
            })
            .collect();
        let mut connections = vec![(String::new(), "all".to_string())];
        connections.extend(node.connections().iter().map(|c| (c.name.clone(), c.name.clone())));
        let states: Vec<(String, String)> =
            STATES.iter().map(|(v, t)| (v.to_string(), t.to_string())).collect();
        let state = if filter.state.is_empty() { "open" } else { filter.state.as_str() };
        let form = format!(
            "<form method=\"get\" action=\"/console/queue\" class=\"filters\" role=\"search\">{} {} <label for=\"twin\">Twin</label> <input id=\"twin\" name=\"twin\" value=\"{}\"> <label for=\"key\">Key or event</label> <input id=\"key\" name=\"key\" value=\"{}\"> <button type=\"submit\">Filter</button></form>",
            select("connection", "Connection", &connections, &filter.connection),
            select("state", "State", &states, state),
            esc(&filter.twin),
            esc(&filter.key),
        );
        let base = format!(
            "/console/queue?connection={}&state={}&twin={}&key={}",
            url(&filter.connection),
            url(state),
            url(&filter.twin),
            url(&filter.key)
        );
        let body = format!(
            "{}{form}{}{}",
            html::table(
                "Events per connection",
                &["Connection", "Pending", "In flight", "Failed", "Done", "Skipped"],
                &counts
            ),
            html::table(
                "Events, newest first",
                &["Event", "Direction", "Connection", "Twin", "Reason", "State", "Attempts", "Queued", "Last error"],
                &rows
            ),
            html::pager(&base, filter.page, more),
        );
        Ok::<_, Problem>(html::page("Queue", "/console/queue", &session.csrf, &body))
    })
    .await
}
