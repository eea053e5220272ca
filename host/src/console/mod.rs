//! The operator console: server-rendered HTML pages on the admin listener, under
//! `/console`. Off unless `[console] enabled = true`. Reading works without JavaScript;
//! one small embedded script refreshes the overview. Assets are compiled into the binary.
//!
//! A login with the host's admin token sees serve's own node; a login with a tenant's
//! token (see `tenants`) sees that tenant's node only: the session remembers which, and
//! `auth::require_session` hands the pages that node's [`View`], the only one they can reach.
//!
//! Security: a login with a token gives a session cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` when configured), every form carries the session's CSRF
//! token, every page is sent with a strict Content-Security-Policy, and everything from
//! trackers and processors is HTML-escaped (`html::esc`).

mod assets;
mod auth;
mod chart;
mod data;
mod html;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use crate::config::Secret;
use crate::sync::Node;

pub use auth::Sessions;

/// What the console needs.
pub struct Console {
    /// What sessions of the host token see: serve's own node.
    pub host: Arc<View>,
    /// The host's admin token: logging in means presenting it (or a tenant's token).
    pub token: Secret,
    /// Set the cookie's `Secure` flag (the console is reached over HTTPS, through a proxy).
    pub secure_cookie: bool,
    pub sessions: Sessions,
    /// The tenants of this process, whose tokens open sessions on their own nodes.
    pub tenants: Option<Arc<crate::tenants::Tenants>>,
}

/// What a session's pages act on: one node, with its senders' view of the other nodes.
pub struct View {
    pub node: Arc<Node>,
    /// What the senders last saw of the other nodes.
    pub peers: Arc<crate::service::Peers>,
    /// Called after a change that the node should act on now.
    pub on_change: Box<dyn Fn() + Send + Sync>,
}

/// The console's routes, to merge with the admin API's.
pub fn router(console: Arc<Console>) -> Router {
    use pages::{conflicts, errors, overview, plugins, queue, twins};
    let pages = Router::new()
        .route("/console", get(overview::page))
        .route("/console/queue", get(queue::page))
        .route("/console/errors", get(errors::list))
        .route(
            "/console/errors/retry-all",
            get(errors::confirm_retry_all).post(errors::retry_all),
        )
        .route("/console/errors/{id}", get(errors::detail))
        .route("/console/errors/{id}/confirm", get(errors::confirm))
        .route("/console/errors/{id}/retry", post(errors::retry))
        .route("/console/errors/{id}/skip", post(errors::skip))
        .route("/console/twins", get(twins::list))
        .route("/console/twins/{id}", get(twins::page))
        .route("/console/twins/{id}/confirm", get(twins::confirm))
        .route("/console/twins/{id}/resync", post(twins::resync))
        .route("/console/twins/{id}/unexalate", post(twins::unexalate))
        .route("/console/conflicts", get(conflicts::list))
        .route("/console/conflicts/{id}/resolve", post(conflicts::resolve))
        .route("/console/plugins", get(plugins::page))
        .route("/console/logout", post(auth::logout))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            auth::require_session,
        ));
    Router::new()
        .merge(pages)
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/assets/{name}", get(assets::serve))
        .layer(middleware::from_fn(html::security_headers))
        .with_state(console)
}
