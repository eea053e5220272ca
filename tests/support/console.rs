//! A client for the console of a `twinsync serve` process: logs in with the admin token
//! and keeps the session cookie and CSRF token, as a browser would.

use std::time::Duration;

use crate::process::TOKEN;

/// An answer: status, headers (lower-case names) and body.
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        let end = self.body[at..].find('"')?;
        Some(self.body[at..at + end].to_string())
    }
}

pub struct ConsoleClient {
    base: String,
    agent: ureq::Agent,
    /// `name=value` of the cookies set so far.
    pub cookies: Vec<(String, String)>,
}

impl ConsoleClient {
    pub fn new(admin_port: u16) -> ConsoleClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        ConsoleClient {
            base: format!("http://127.0.0.1:{admin_port}"),
            agent,
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn request(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let body = form
            .map(|fields| {
                fields
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .unwrap();
        let mut response = self.agent.run(request).expect("console request");
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        for (name, value) in &headers {
            if name == "set-cookie"
                && let Some((pair, _)) = value.split_once(';')
                && let Some((n, v)) = pair.split_once('=')
            {
                self.cookies.retain(|(c, _)| c != n);
                if !v.is_empty() {
                    self.cookies.push((n.to_string(), v.to_string()));
                }
            }
        }
        Page {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, None)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.request("POST", path, Some(form))
    }

    /// Log in with `token`; the answer to the login form.
    pub fn login_with(&mut self, token: &str) -> Page {
        let form = self.get("/console/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf().expect("the login form has a CSRF token");
        self.post("/console/login", &[("csrf", &csrf), ("token", token)])
    }

    /// Log in with the admin token, and check it worked.
    pub fn login(&mut self) {
        let answer = self.login_with(TOKEN);
        assert_eq!(answer.status, 303, "{}", answer.body);
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
