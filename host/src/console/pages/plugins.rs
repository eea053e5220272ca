//! The processors of each connection, with their hashes.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;

use super::{Problem, render};
use crate::console::Console;
use crate::console::auth::Session;
use crate::console::html::{self, esc};

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Response {
    render(console, move |console| {
        let mut rows = Vec::new();
        for connection in console.node.connections() {
            for (direction, plugin) in [
                ("incoming", &connection.incoming),
                ("outgoing", &connection.outgoing),
            ] {
                let Some(plugin) = plugin else { continue };
                rows.push(html::row(&[
                    esc(&connection.name),
                    direction.to_string(),
                    esc(&plugin.info.name),
                    format!("<code>{}</code>", esc(&plugin.info.sha256)),
                    plugin.info.size.to_string(),
                    esc(&plugin.info.worlds.join(", ")),
                ]));
            }
        }
        let body = html::table(
            "Processors per connection",
            &[
                "Connection",
                "Direction",
                "Processor",
                "SHA-256",
                "Bytes",
                "Implements",
            ],
            &rows,
        );
        Ok::<_, Problem>(html::page(
            "Plugins",
            "/console/plugins",
            &session.csrf,
            &body,
        ))
    })
    .await
}
