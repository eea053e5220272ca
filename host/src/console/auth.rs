//! Logging in with the admin token, sessions, and the CSRF check every form goes through.
//!
//! A session is a random id in a cookie (`HttpOnly; SameSite=Strict`, `Secure` when
//! configured), held in memory: a restart logs everybody out. Each session has its own
//! random CSRF token, which every form carries in a hidden `csrf` field; the middleware
//! checks it on every POST before any handler runs. The login form has its own token,
//! bound to a short-lived cookie (double submit), since there is no session yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{self, esc};
use super::{Console, View};

const SESSION_COOKIE: &str = "twinsync_session";
const LOGIN_COOKIE: &str = "twinsync_login";
/// How long a session lasts without logging in again.
const SESSION_LIFE: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once: a flood of logins cannot grow memory without bound.
const MAX_SESSIONS: usize = 1000;
/// How long the answer to a wrong token takes.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(300);
/// Largest form body accepted (forms carry ids and a choice, nothing big).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A logged-in session, as handlers see it.
#[derive(Clone)]
pub struct Session {
    /// The token forms must carry.
    pub csrf: String,
    /// The tenant whose token opened the session; `None` for the host token.
    pub tenant: Option<String>,
}

/// The sessions of the console, in memory.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, (Session, Instant)>>);

impl Sessions {
    fn get(&self, id: &str) -> Option<Session> {
        let sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (session, expires) = sessions.get(id)?;
        (Instant::now() < *expires).then(|| session.clone())
    }

    /// A new session's id, or `None` when too many are open.
    fn open(&self, tenant: Option<String>) -> Option<(String, Session)> {
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, (_, expires)| now < *expires);
        if sessions.len() >= MAX_SESSIONS {
            return None;
        }
        let id = random_token();
        let session = Session {
            csrf: random_token(),
            tenant,
        };
        sessions.insert(id.clone(), (session.clone(), now + SESSION_LIFE));
        Some((id, session))
    }

    fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// 32 random bytes from the operating system's generator, in hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    crate::hex::encode(&bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

fn set_cookie(console: &Console, name: &str, value: &str, max_age: u64) -> String {
    let secure = if console.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The `csrf` field of a URL-encoded form.
fn form_csrf(body: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v)
}

fn forbidden(why: &str) -> Response {
    let body = format!(
        "<p>{}</p><p><a href=\"/console\">Back to the console</a></p>",
        esc(why)
    );
    (StatusCode::FORBIDDEN, html::bare("Refused", &body)).into_response()
}

/// Every page but the login: a session is needed (else to the login page), and every POST
/// must carry the session's CSRF token (else 403, before the handler runs).
pub async fn require_session(
    State(console): State<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let session =
        cookie(request.headers(), SESSION_COOKIE).and_then(|id| console.sessions.get(&id));
    let Some(session) = session else {
        if request.method() == Method::GET {
            return Redirect::to("/console/login").into_response();
        }
        return forbidden("Not logged in (or the session expired): log in again.");
    };
    let request = if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return forbidden("The form is too large.");
        };
        let presented = form_csrf(&bytes).unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), session.csrf.as_bytes()) {
            return forbidden(
                "The form's CSRF token is missing or wrong: reload the page and try again.",
            );
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    // The node the session's pages act on, found again for each request: a tenant
    // restarted since the login is reached as it is now; one removed ends the session.
    let view = match &session.tenant {
        None => console.host.clone(),
        Some(name) => match console.tenants.as_ref().and_then(|t| t.live(name)) {
            Some(live) => Arc::new(View {
                node: live.tenant.node().clone(),
                peers: live.peers.clone(),
                on_change: Box::new(move || live.wake()),
            }),
            None => {
                if let Some(id) = cookie(request.headers(), SESSION_COOKIE) {
                    console.sessions.close(&id);
                }
                return Redirect::to("/console/login").into_response();
            }
        },
    };
    let mut request = request;
    request.extensions_mut().insert(session);
    request.extensions_mut().insert(view);
    next.run(request).await
}

/// Whose token this is: the host's (`Some(None)`), a running tenant's (`Some(Some(name))`),
/// or nobody's.
fn owner(console: &Console, token: &str) -> Option<Option<String>> {
    if constant_time_eq(token.as_bytes(), console.token.expose().as_bytes()) {
        return Some(None);
    }
    match console.tenants.as_ref()?.owner_of(token)? {
        crate::tenants::hosting::TokenOwner::Running(name, _) => Some(Some(name)),
        crate::tenants::hosting::TokenOwner::Stopped(..) => None,
    }
}

fn login_form(
    console: &Console,
    headers: &HeaderMap,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    // The token of a login form still open (another tab, a page loaded twice) stays valid.
    let token = cookie(headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_token);
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/console/login\" class=\"login\">
<input type=\"hidden\" name=\"csrf\" value=\"{token}\">
<label for=\"token\">Admin token</label>
<input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required autofocus>
<button type=\"submit\">Log in</button>
</form>"
    );
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(console, LOGIN_COOKIE, &token, 600),
        )],
        html::bare("Log in", &body),
    )
        .into_response()
}

pub async fn login_page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    login_form(&console, &headers, None, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(form.csrf.as_bytes(), expected.as_bytes()) {
        return login_form(
            &console,
            &headers,
            Some("The login form expired: try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let Some(tenant) = owner(&console, &form.token) else {
        // Slows guessing down a little; nothing waits but this answer.
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return login_form(
            &console,
            &headers,
            Some("Wrong token."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let Some((id, _)) = console.sessions.open(tenant) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many sessions").into_response();
    };
    let mut response = Redirect::to("/console").into_response();
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(&console, SESSION_COOKIE, &id, SESSION_LIFE.as_secs()),
        set_cookie(&console, LOGIN_COOKIE, "", 0),
    ] {
        if let Ok(value) = cookie.parse() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

pub async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        console.sessions.close(&id);
    }
    (
        [(
            header::SET_COOKIE,
            set_cookie(&console, SESSION_COOKIE, "", 0),
        )],
        Redirect::to("/console/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; twinsync_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }

    #[test]
    fn sessions_are_random_bounded_and_closed() {
        let sessions = Sessions::default();
        let (id, session) = sessions.open(None).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert_eq!(sessions.get(&id).unwrap().csrf, session.csrf);
        assert!(sessions.get("guess").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        for _ in 0..MAX_SESSIONS {
            sessions.open(None).unwrap();
        }
        assert!(
            sessions.open(None).is_none(),
            "no more than MAX_SESSIONS at once"
        );
    }

    #[test]
    fn the_csrf_field_is_read_from_a_form() {
        assert_eq!(form_csrf(b"take=local&csrf=x%2By").as_deref(), Some("x+y"));
        assert_eq!(form_csrf(b"take=local"), None);
    }
}
