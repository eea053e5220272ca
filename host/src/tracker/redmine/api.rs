//! A small client for Redmine's REST API: JSON over HTTP with the API key in a header,
//! timeouts, and answers sorted into what the tracker can act on.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Secret;
use crate::tracker::TrackerError;

const KEY_HEADER: &str = "X-Redmine-API-Key";
/// Redmine on SQLite answers a write in seconds at worst; well beyond that, something hangs.
const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request failed, by what the caller does about it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Failure {
    /// No answer (refused, timed out, not HTTP) or a server error (5xx): try again later.
    Unreachable(String),
    /// 401: Redmine does not accept the API key.
    WrongKey,
    /// 403: the key's user may not do this, or the REST API is off.
    Forbidden,
    /// 404.
    NotFound,
    /// 422 with Redmine's validation messages. An empty list is Redmine's answer to a
    /// concurrent update of the same issue (optimistic locking): worth repeating.
    Invalid(Vec<String>),
    /// Any other status, with the body.
    Unexpected(u16, String),
}

/// A failed request and what it was, for messages.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiError {
    pub request: String,
    pub failure: Failure,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let request = &self.request;
        match &self.failure {
            Failure::Unreachable(reason) => {
                write!(f, "{request}: Redmine did not answer: {reason}")
            }
            Failure::WrongKey => write!(
                f,
                "{request}: Redmine refused the API key (401): the key is wrong or was reset"
            ),
            Failure::Forbidden => write!(
                f,
                "{request}: Redmine forbids this to the API key's user (403), or its REST API is off"
            ),
            Failure::NotFound => write!(f, "{request}: not found (404)"),
            Failure::Invalid(errors) if errors.is_empty() => write!(
                f,
                "{request}: Redmine refused the change (422) without a reason: someone else changed the issue at the same moment"
            ),
            Failure::Invalid(errors) => {
                write!(
                    f,
                    "{request}: Redmine refused it (422): {}",
                    errors.join("; ")
                )
            }
            Failure::Unexpected(status, body) => {
                write!(f, "{request}: unexpected answer {status}: {body}")
            }
        }
    }
}

impl From<ApiError> for TrackerError {
    fn from(error: ApiError) -> Self {
        match error.failure {
            // A wrong key is the tracker's state, not the event's fault: the events wait
            // until an operator fixes the key, instead of all becoming sync errors.
            Failure::Unreachable(_) | Failure::WrongKey => {
                TrackerError::Unavailable(error.to_string())
            }
            Failure::Invalid(ref errors) if errors.is_empty() => {
                TrackerError::Unavailable(error.to_string())
            }
            // Reads answer a missing issue with `None` before this; a write to an issue
            // deleted meanwhile is refused, with the request in the message.
            Failure::NotFound
            | Failure::Forbidden
            | Failure::Invalid(_)
            | Failure::Unexpected(..) => TrackerError::Rejected(error.to_string()),
        }
    }
}

/// Talks to one Redmine with one API key.
pub(super) struct Client {
    agent: ureq::Agent,
    base: String,
    key: Secret,
}

impl Client {
    pub fn new(base_url: &str, key: Secret) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            agent,
            base: base_url.trim_end_matches('/').to_string(),
            key,
        }
    }

    /// `GET path?query` and decode the JSON answer.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let request = format!("GET {path}");
        let mut builder = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in query {
            builder = builder.query(name, value);
        }
        let answer = builder
            .header(KEY_HEADER, self.key.expose())
            .call()
            .map_err(|e| no_answer(&request, e))?;
        let body = read(&request, answer)?;
        serde_json::from_str(&body).map_err(|e| ApiError {
            request,
            failure: Failure::Unexpected(200, format!("unreadable JSON ({e}): {}", clip(&body))),
        })
    }

    /// `POST` or `PUT` a JSON body; the answer's JSON, if it has one (`PUT` answers 204).
    pub fn send(&self, method: &str, path: &str, body: &Value) -> Result<Option<Value>, ApiError> {
        let request = format!("{method} {path}");
        let url = format!("{}{path}", self.base);
        let builder = match method {
            "POST" => self.agent.post(url),
            "PUT" => self.agent.put(url),
            other => unreachable!("no {other} requests to Redmine"),
        };
        let answer = builder
            .header(KEY_HEADER, self.key.expose())
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| no_answer(&request, e))?;
        let body = read(&request, answer)?;
        if body.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&body).map(Some).map_err(|e| ApiError {
            request,
            failure: Failure::Unexpected(200, format!("unreadable JSON ({e}): {}", clip(&body))),
        })
    }
}

fn no_answer(request: &str, error: ureq::Error) -> ApiError {
    let reason = match &error {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        ureq::Error::Timeout(_) => format!("timed out ({error})"),
        _ => error.to_string(),
    };
    ApiError {
        request: request.to_string(),
        failure: Failure::Unreachable(reason),
    }
}

/// The body of a 2xx answer, or the failure the status means.
fn read(request: &str, mut answer: ureq::http::Response<ureq::Body>) -> Result<String, ApiError> {
    let status = answer.status().as_u16();
    let body = answer.body_mut().read_to_string().map_err(|e| ApiError {
        request: request.to_string(),
        failure: Failure::Unreachable(format!("reading the answer: {e}")),
    })?;
    let failure = match status {
        200..=299 => return Ok(body),
        401 => Failure::WrongKey,
        403 => Failure::Forbidden,
        404 => Failure::NotFound,
        422 => Failure::Invalid(
            serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| serde_json::from_value(v["errors"].clone()).ok())
                .unwrap_or_else(|| vec![clip(&body)]),
        ),
        500.. => Failure::Unreachable(format!("server error {status}: {}", clip(&body))),
        _ => Failure::Unexpected(status, clip(&body)),
    };
    Err(ApiError {
        request: request.to_string(),
        failure,
    })
}

/// The start of a long answer (an HTML error page, say), for messages.
fn clip(text: &str) -> String {
    const MAX: usize = 300;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
