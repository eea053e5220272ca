//! The overview: each connection's health at a glance.

use std::sync::Arc;

use axum::Extension;
use axum::response::Response;

use super::{Problem, now_ms, render};
use crate::console::auth::Session;
use crate::console::html::{self, esc};
use crate::console::{View, chart, data};
use crate::ops;
use crate::service::Link;
use crate::store::history;
use crate::sync::Flow;

/// Whether the other node takes this node's messages, as its sender last saw.
fn reachable(link: &Link, sends: bool, now: i64) -> String {
    match (sends, link.reachable(), &link.last_error) {
        (false, _, _) => "<span class=\"muted\">this side does not send</span>".into(),
        (true, None, _) => {
            "<span class=\"muted\">nothing sent since the node started</span>".into()
        }
        (true, Some(true), _) => format!(
            "<span class=\"ok\">reachable</span> (took a message {})",
            link.last_ok
                .map(|at| html::time(at, now))
                .unwrap_or_default()
        ),
        (true, Some(false), error) => format!(
            "<span class=\"bad\">unreachable</span>: {}",
            error.as_ref().map(|(_, why)| esc(why)).unwrap_or_default()
        ),
    }
}

pub async fn page(
    Extension(console): Extension<Arc<View>>,
    Extension(session): Extension<Session>,
) -> Response {
    render(console, move |console| {
        let node = &console.node;
        let now = now_ms();
        let queue = ops::queue(node.store())?;
        let mut cards = String::new();
        for connection in node.connections() {
            let name = &connection.name;
            let row = queue.iter().find(|r| &r.connection == name).cloned().unwrap_or_default();
            let (conflicts, retrying, last_out, last_in, per_minute) = node.store().read(|db| {
                Ok((
                    data::open_conflicts(db, name)?,
                    data::retrying(db, name)?,
                    history::last_done(db, name, "outgoing")?,
                    history::last_done(db, name, "incoming")?,
                    history::per_minute(db, Some(name), now, 60)?,
                ))
            })?;
            let link = console.peers.get(name);
            let unreachable = connection.can_send() && link.reachable() == Some(false);
            let health = match (row.failed, retrying, unreachable) {
                (0, 0, false) => "<span class=\"ok\">healthy</span>".to_string(),
                (0, _, true) => "<span class=\"bad\">the other node is unreachable</span>".into(),
                (0, n, false) => format!(
                    "<span class=\"bad\">{n} event(s) retrying (the tracker is unavailable)</span>"
                ),
                (n, _, _) => format!("<span class=\"bad\">{n} sync error(s)</span>"),
            };
            let last = |at: Option<i64>, applies: bool| match (at, applies) {
                (_, false) => "<span class=\"muted\">not on this connection</span>".into(),
                (Some(at), true) => html::time(at, now),
                (None, true) => "<span class=\"muted\">never</span>".into(),
            };
            let flow = match connection.flow {
                Flow::Bidirectional => "both ways",
                Flow::SendOnly => "send only",
                Flow::ReceiveOnly => "receive only",
            };
            let q = html::url(name);
            cards.push_str(&format!(
                "<section class=\"card\" aria-labelledby=\"c-{id}\"><h2 id=\"c-{id}\">{n}</h2>
<dl>
<dt>Health</dt><dd>{health}</dd>
<dt>Other side</dt><dd>{remote} ({flow}): {reachable}</dd>
<dt>Last sent</dt><dd>{sent}</dd>
<dt>Last received</dt><dd>{received}</dd>
<dt>Queue</dt><dd><a href=\"/console/queue?connection={q}\">{pending} pending</a>, {in_flight} in flight (not acknowledged by the other side yet)</dd>
<dt>Errors</dt><dd><a href=\"/console/errors?connection={q}\">{failed}</a></dd>
<dt>Conflicts</dt><dd><a href=\"/console/conflicts\">{conflicts}</a></dd>
</dl>
<p>Events per minute, last hour</p>{chart}
</section>",
                id = esc(&html::url(name)),
                n = esc(name),
                remote = esc(&connection.remote_instance),
                reachable = reachable(&link, connection.can_send(), now),
                sent = last(last_out, connection.can_send()),
                received = last(last_in, connection.flow != Flow::SendOnly),
                pending = row.pending,
                in_flight = row.in_flight,
                failed = row.failed,
                chart = chart::bars(&per_minute, "events per minute over the last hour"),
            ));
        }
        let body = format!(
            "<p>Node <strong>{}</strong>. This page refreshes itself every 15 seconds.</p><div class=\"cards\">{cards}</div>",
            esc(node.instance())
        );
        Ok::<_, Problem>(html::page("Overview", "/console", &session.csrf, &body))
    })
    .await
}
