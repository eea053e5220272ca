//! `twinsync serve` processes for tests: configuration, start, stop, kill, and the admin API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOKEN: &str = "test-admin-token";
pub const SECRET: &str = "test-shared-secret";

/// The `twinsync` binary cargo built for this test run. A macro, so that `env!` is read
/// where the test is compiled (cargo sets it for the tests of the `twinsync` package).
#[macro_export]
macro_rules! twinsync_binary {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_twinsync"))
    };
}

/// The `remote issue key` custom field of an issue as the admin API shows it: what
/// `remote-key` stores on each side.
pub fn remote_key(issue: &Value) -> Option<String> {
    issue["custom_fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["name"] == "remote issue key"))
        .and_then(|f| f["value"]["value"].as_str().map(str::to_string))
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    // The kernel can hand out the same free port to two calls in a row (a node's two
    // listeners then collide): never give a port twice.
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// How one node of a pair is configured.
pub struct NodeSpec {
    pub instance: &'static str,
    pub project: &'static str,
    pub remote: &'static str,
    pub port: u16,
    pub admin_port: u16,
    pub remote_port: u16,
    pub processor: &'static str,
    /// More TOML appended to the configuration (another connection, say).
    pub extra: &'static str,
}

/// A running `twinsync serve`.
pub struct NodeProcess {
    pub spec: NodeSpec,
    binary: PathBuf,
    pub config: PathBuf,
    pub dir: PathBuf,
    child: Option<Child>,
    agent: ureq::Agent,
    /// Environment variables of the next start (a crash point to stop at, say).
    pub env: Vec<(String, String)>,
}

impl NodeProcess {
    /// Write the node's configuration under `dir` and start `binary` on it.
    pub fn start(binary: &Path, dir: &Path, spec: NodeSpec) -> NodeProcess {
        let node_dir = dir.join(spec.instance.to_lowercase());
        let text = format!(
            r#"instance = "{instance}"
data-dir = "data"
log-level = "info"
workers = 2
listen = "127.0.0.1:{port}"

[admin]
listen = "127.0.0.1:{admin_port}"
token = "{TOKEN}"

[tracker]
kind = "reference"
project = "{project}"

[[connection]]
name = "internal-external"
remote-instance = "{remote}"
remote-url = "http://127.0.0.1:{remote_port}"
incoming = "{processor}"
outgoing = "{processor}"
secret = "{SECRET}"
{extra}
"#,
            instance = spec.instance,
            port = spec.port,
            admin_port = spec.admin_port,
            project = spec.project,
            remote = spec.remote,
            remote_port = spec.remote_port,
            processor = spec.processor,
            extra = spec.extra,
        );
        NodeProcess::start_with_config(binary, &node_dir, spec, &text)
    }

    /// Start `binary` on configuration `text`, written to `node_dir/node.toml`; `spec`
    /// says where its admin API listens (its other fields are for the caller).
    pub fn start_with_config(
        binary: &Path,
        node_dir: &Path,
        spec: NodeSpec,
        text: &str,
    ) -> NodeProcess {
        std::fs::create_dir_all(node_dir).unwrap();
        let node_dir = node_dir.to_path_buf();
        let config = node_dir.join("node.toml");
        std::fs::write(&config, text).unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut node = NodeProcess {
            spec,
            binary: binary.to_path_buf(),
            config,
            dir: node_dir,
            child: None,
            agent,
            env: Vec::new(),
        };
        node.restart();
        node
    }

    /// Start the process again (after `stop` or `kill`) and wait until it answers.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .args(["serve", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start twinsync serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.try_get("/v1/queue").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not start; log:\n{}", self.spec.instance, self.log());
    }

    /// SIGTERM, and wait for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_kill(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait up to `timeout` for the process to end by itself; whether it did.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// `twinsync ARGS --config` this node's configuration (not run yet): a command an
    /// operator runs beside the running node.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = crate::cli::command(&self.binary, args);
        command.arg("--config").arg(&self.config);
        command
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.spec.admin_port)
    }

    fn try_get(&self, path: &str) -> Option<Value> {
        let mut response = self
            .agent
            .get(&self.url(path))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .call()
            .ok()?;
        (response.status() == 200).then(|| response.body_mut().read_json().ok())?
    }

    /// GET on the admin API; panics unless 200.
    pub fn get(&self, path: &str) -> Value {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} failed on {}", self.spec.instance))
    }

    /// An issue, or `None` if the tracker does not have it.
    pub fn issue(&self, key: &str) -> Option<Value> {
        self.try_get(&format!("/v1/issues/{key}"))
    }

    /// A request with a JSON body on the admin API; returns status and body.
    pub fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.try_send(method, path, body).expect("admin request")
    }

    /// The `ETag` of a GET on the admin API.
    pub fn etag(&self, path: &str) -> Option<String> {
        let response = self
            .agent
            .get(&self.url(path))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .call()
            .ok()?;
        let tag = response.headers().get("etag")?.to_str().ok()?;
        Some(tag.to_string())
    }

    /// A request with `If-Match: tag`; returns status and body.
    pub fn send_if_match(&self, method: &str, path: &str, tag: &str, body: Value) -> (u16, Value) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .header("if-match", tag)
            .body(body.to_string())
            .unwrap();
        let mut response = self.agent.run(request).expect("admin request");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    /// Like `send`, but `None` when the node cannot be reached.
    pub fn try_send(&self, method: &str, path: &str, body: Value) -> Option<(u16, Value)> {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .unwrap();
        let mut response = self.agent.run(request).ok()?;
        let status = response.status().as_u16();
        Some((
            status,
            response.body_mut().read_json().unwrap_or(Value::Null),
        ))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// Two nodes, Internal and External, connected both ways with the same processor.
pub fn pair(binary: &Path, dir: &Path, processor: &'static str) -> (NodeProcess, NodeProcess) {
    pair_with(binary, dir, processor, "")
}

/// Like `pair`, with `extra` TOML appended to both configurations (after the connection:
/// `[connection.conflicts]`, say).
pub fn pair_with(
    binary: &Path,
    dir: &Path,
    processor: &'static str,
    extra: &'static str,
) -> (NodeProcess, NodeProcess) {
    let (int_port, ext_port) = (free_port(), free_port());
    let internal = NodeProcess::start(
        binary,
        dir,
        NodeSpec {
            instance: "Internal",
            project: "INT",
            remote: "External",
            port: int_port,
            admin_port: free_port(),
            remote_port: ext_port,
            processor,
            extra,
        },
    );
    let external = NodeProcess::start(
        binary,
        dir,
        NodeSpec {
            instance: "External",
            project: "EXT",
            remote: "Internal",
            port: ext_port,
            admin_port: free_port(),
            remote_port: int_port,
            processor,
            extra,
        },
    );
    (internal, external)
}

/// Wait until `check` holds, or panic with `what` after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

/// Run `program ARGS...` when this test binary exits, however it exits (a server it started
/// must not outlive it): a watcher process waits for it to end. The watcher runs in the
/// background of a shell that exits at once, so nothing waits for it.
pub fn when_this_process_ends(program: &std::path::Path, args: &[&std::ffi::OsStr]) {
    let watcher = format!(
        "(while kill -0 {pid} 2>/dev/null; do sleep 1; done; exec \"$0\" \"$@\") &",
        pid = std::process::id()
    );
    let started = std::process::Command::new("sh")
        .arg("-c")
        .arg(watcher)
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("start the watcher");
    assert!(started.success(), "the watcher did not start: {started}");
}
