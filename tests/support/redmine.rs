//! A real Redmine for tests, run by `scripts/redmine`: one server per test binary, started
//! on first use and stopped when the test binary exits. Where Redmine cannot be installed
//! (not Debian, not root), the tests that need it print a loud SKIPPED and pass; CI installs
//! it and sets `TWINSYNC_REQUIRE_REDMINE`, so there they always run.
//!
//! Every server of the machine shares one database that outlives the tests: tests make
//! unique subjects and look only at the issues they made.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use twinsync::config::Secret;
use twinsync::tracker::{DEFAULT_EVENT_FIELD, RedmineSettings, RedmineTracker};

use crate::process::free_port;

/// Set (by CI) to fail instead of skipping where Redmine cannot be had.
const REQUIRED: &str = "TWINSYNC_REQUIRE_REDMINE";

/// `scripts/redmine`, from this crate's folder.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/redmine")
}

/// One Redmine server, and the keys of its users `admin` (a person, in tests) and
/// `twinsync` (what the nodes write as).
pub struct Redmine {
    pub url: String,
    pub port: u16,
    state: PathBuf,
    pub admin_key: String,
    pub twinsync_key: String,
    agent: ureq::Agent,
}

/// The Redmine of this test binary, or `None` where Redmine cannot be had (said loudly).
pub fn redmine() -> Option<&'static Redmine> {
    static SERVER: OnceLock<Option<Redmine>> = OnceLock::new();
    SERVER.get_or_init(|| Redmine::start(free_port())).as_ref()
}

/// For a test that needs Redmine: the server, or return from the test.
#[macro_export]
macro_rules! redmine_or_skip {
    () => {
        match $crate::redmine::redmine() {
            Some(redmine) => redmine,
            None => return,
        }
    };
}

impl Redmine {
    /// Start a server on `port` (seconds: Rails boots). `None` when the script says Redmine
    /// cannot be installed here; any other failure panics with the script's output.
    pub fn start(port: u16) -> Option<Redmine> {
        let state = std::env::temp_dir().join(format!("twinsync-redmine-test-{port}"));
        let output = Command::new(script())
            .arg("start")
            .arg(port.to_string())
            .arg(&state)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/redmine");
        if output.status.code() == Some(3) && std::env::var_os(REQUIRED).is_none() {
            // Straight to stderr: the test harness captures `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!! SKIPPED: the Redmine tests did not run: {}!!!!!!!!\n",
                String::from_utf8_lossy(&output.stderr)
            );
            return None;
        }
        assert!(
            output.status.success(),
            "scripts/redmine start {port} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        crate::process::when_this_process_ends(
            &script(),
            &[
                "stop".as_ref(),
                port.to_string().as_ref(),
                state.as_os_str(),
            ],
        );
        let read = |name: &str| {
            std::fs::read_to_string(state.join(name))
                .unwrap_or_else(|e| panic!("{}/{name}: {e}", state.display()))
                .trim()
                .to_string()
        };
        Some(Redmine {
            url: read("url"),
            port,
            admin_key: read("api_key"),
            twinsync_key: read("twinsync_api_key"),
            state,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        })
    }

    /// Stop the server (the data stays).
    pub fn stop(&self) {
        self.script("stop");
    }

    /// Start the server again after `stop`.
    pub fn restart(&self) {
        self.script("start");
    }

    fn script(&self, command: &str) {
        let output = Command::new(script())
            .arg(command)
            .arg(self.port.to_string())
            .arg(&self.state)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/redmine");
        assert!(
            output.status.success(),
            "scripts/redmine {command} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// How a node reaches `project` as user `twinsync`, polling without a pause.
    pub fn settings(&self, project: &str) -> RedmineSettings {
        RedmineSettings {
            url: self.url.clone(),
            api_key: Secret::new(&self.twinsync_key),
            project: project.into(),
            event_field: DEFAULT_EVENT_FIELD.into(),
            poll_interval: Duration::ZERO,
        }
    }

    pub fn tracker(&self, project: &str) -> Arc<RedmineTracker> {
        Arc::new(RedmineTracker::connect(&self.settings(project)).expect("connect to Redmine"))
    }

    /// A request as the administrator, a person using Redmine; the status and JSON answer.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("X-Redmine-API-Key", &self.admin_key)
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let mut response = self.agent.run(request).expect("Redmine answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Create an issue as the administrator; its id.
    pub fn create_issue(&self, project: &str, subject: &str) -> u64 {
        let (status, answer) = self.call(
            "POST",
            "/issues.json",
            Some(json!({"issue": {"project_id": project, "subject": subject}})),
        );
        assert_eq!(status, 201, "{answer}");
        answer["issue"]["id"].as_u64().unwrap()
    }

    /// Change an issue as the administrator: `fields` as in Redmine's `PUT /issues/N.json`.
    pub fn update_issue(&self, id: u64, fields: Value) {
        let (status, answer) = self.call(
            "PUT",
            &format!("/issues/{id}.json"),
            Some(json!({ "issue": fields })),
        );
        assert_eq!(status, 204, "{answer}");
    }

    /// An issue with its journals, as Redmine's JSON.
    pub fn issue(&self, id: u64) -> Value {
        let (status, answer) =
            self.call("GET", &format!("/issues/{id}.json?include=journals"), None);
        assert_eq!(status, 200, "{answer}");
        answer["issue"].clone()
    }

    /// Ids of the issues of `project` with exactly this subject.
    pub fn issues_with_subject(&self, project: &str, subject: &str) -> Vec<u64> {
        let query = format!(
            "/issues.json?project_id={project}&status_id=*&limit=100&subject=~{}",
            subject.replace(' ', "%20")
        );
        let (status, answer) = self.call("GET", &query, None);
        assert_eq!(status, 200, "{answer}");
        answer["issues"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["subject"] == subject)
            .map(|i| i["id"].as_u64().unwrap())
            .collect()
    }

    /// The id of Redmine status, priority or custom field `name` (`kind`:
    /// `issue_statuses`, `enumerations/issue_priorities` or `custom_fields`).
    pub fn id_of(&self, kind: &str, name: &str) -> u64 {
        let (_, answer) = self.call("GET", &format!("/{kind}.json"), None);
        let list = answer.as_object().unwrap().values().next().unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["id"].as_u64())
            .unwrap_or_else(|| panic!("Redmine has no {kind} `{name}`"))
    }
}

/// A subject no other test run has used: the database is shared and kept.
pub fn unique(subject: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{subject} [{}-{nanos:x}-{}]",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
