//! The console's pages, one file each. Handlers read the node's database off the async
//! threads (`render`) and build HTML with `super::html`.

pub mod conflicts;
pub mod errors;
pub mod overview;
pub mod plugins;
pub mod queue;
pub mod twins;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::View;
use super::html::{self, esc};

/// Why a page cannot be shown.
pub struct Problem(StatusCode, String);

impl Problem {
    pub fn not_found(what: impl Into<String>) -> Problem {
        Problem(StatusCode::NOT_FOUND, what.into())
    }
}

impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Self {
        Problem(StatusCode::BAD_REQUEST, format!("{error:#}"))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = format!(
            "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/console\">Back to the overview</a></p>",
            esc(&self.1)
        );
        (self.0, html::bare("Cannot do that", &body)).into_response()
    }
}

/// Run `f` on a blocking thread (SQLite, trackers) and answer with what it gives.
pub async fn render<R: IntoResponse + Send + 'static>(
    console: Arc<View>,
    f: impl FnOnce(&View) -> Result<R, Problem> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || f(&console)).await {
        Ok(Ok(response)) => response.into_response(),
        Ok(Err(problem)) => problem.into_response(),
        Err(_) => Problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed".into(),
        )
        .into_response(),
    }
}

/// After a change: tell the node, and go to `to` (303, so a reload does not post again).
pub fn done(console: &View, to: &str) -> Redirect {
    (console.on_change)();
    Redirect::to(to)
}

pub fn now_ms() -> i64 {
    crate::clock::millis(std::time::SystemTime::now())
}

/// `text`, or a muted dash when there is none.
pub fn or_dash(text: Option<&str>) -> String {
    match text {
        Some(text) if !text.is_empty() => esc(text),
        _ => "<span class=\"muted\">–</span>".into(),
    }
}

/// A link to a twin's page, showing `label`.
pub fn twin_link(twin: &str, label: &str) -> String {
    format!(
        "<a href=\"/console/twins/{}\">{}</a>",
        html::url(twin),
        esc(label)
    )
}

/// The page that asks before an action on one object (an event, a twin): what it does,
/// a form that posts it to `/console/{section}/{id}/{action}`, and a way back. Works
/// without JavaScript.
pub fn confirmation(
    section: &str,
    object: &str,
    id: &str,
    action: &str,
    (what, label): (&str, &str),
    csrf: &str,
) -> axum::response::Html<String> {
    let body = format!(
        "<p>{label} {object} <strong>{}</strong>: {what}?</p>{} <a href=\"/console/{section}/{}\">Cancel</a>",
        esc(id),
        html::post_form(
            &format!("/console/{section}/{}/{action}", html::url(id)),
            csrf,
            label,
            &[],
            "block"
        ),
        html::url(id),
    );
    html::page(
        &format!("{label} {id}?"),
        &format!("/console/{section}"),
        csrf,
        &body,
    )
}
