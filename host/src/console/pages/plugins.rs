//! The packages installed in the node's plugin store and where each is used, then the
//! processors each connection runs now, with their hashes (a connection may name a file or
//! a built-in instead of a stored package).

use std::sync::Arc;

use axum::Extension;
use axum::response::Response;

use super::{Problem, render};
use crate::console::View;
use crate::console::auth::Session;
use crate::console::html::{self, esc};

pub async fn page(
    Extension(console): Extension<Arc<View>>,
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
        let now = crate::clock::millis(std::time::SystemTime::now());
        let installed = console
            .node
            .store()
            .read(|db| crate::plugins::store::all(db))
            .map_err(Problem::from)?;
        let packages: Vec<String> = installed
            .iter()
            .map(|p| {
                html::row(&[
                    esc(&p.name),
                    esc(&p.version),
                    esc(&p.manifest.vendor),
                    format!("<code>{}</code>", esc(&p.sha256)),
                    format!(
                        "{} by {}",
                        html::time(p.installed_at, now),
                        esc(&p.installed_by)
                    ),
                    if p.used_by.is_empty() {
                        "not in use".into()
                    } else {
                        esc(&p.used_by.join(", "))
                    },
                ])
            })
            .collect();
        let mut body = html::table(
            "Installed plugins",
            &[
                "Plugin",
                "Version",
                "Vendor",
                "SHA-256",
                "Installed",
                "Used by",
            ],
            &packages,
        );
        body.push_str(&html::table(
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
        ));
        Ok::<_, Problem>(html::page(
            "Plugins",
            "/console/plugins",
            &session.csrf,
            &body,
        ))
    })
    .await
}
