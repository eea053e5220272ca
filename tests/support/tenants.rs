//! A `twinsync serve` that hosts tenants, and its admin API called with any token (the
//! host's or a tenant's).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::process::{NodeProcess, NodeSpec, TOKEN, free_port};

/// Start `binary` as a `twinsync serve` to add tenants to, with `extra` TOML appended to
/// its configuration. Its own node, `Host`, syncs with nobody (its remote never answers).
/// With `TWINSYNC_TEST_STORE=postgres` its store is a new PostgreSQL database (`[store]
/// url`), and so are its tenants' registry and states.
pub fn serve(binary: &Path, dir: &Path, extra: &'static str) -> NodeProcess {
    let extra: &'static str = if crate::store::on_postgres() {
        let url = crate::postgres::database().unwrap_or_else(|| {
            panic!(
                "{}=postgres, but PostgreSQL cannot be had here (see above)",
                crate::store::STORE
            )
        });
        // Leaked: the configuration is written again at each restart; a few bytes a test.
        Box::leak(format!("{extra}\n[store]\nurl = \"{url}\"\n").into_boxed_str())
    } else {
        extra
    };
    NodeProcess::start(
        binary,
        dir,
        NodeSpec {
            instance: "Host",
            project: "HOST",
            remote: "Elsewhere",
            port: free_port(),
            admin_port: free_port(),
            remote_port: free_port(),
            processor: "mirror",
            extra,
        },
    )
}

/// A tenant `acme` (instance `Acme`, project `ACME`) added to `host`, connected over HTTP
/// to a plain node started in another process, `External` (project `EXT`), with
/// `remote-key` both ways: it sends to External, External sends to `/t/acme` on `host`.
/// External and the tenant's token.
pub fn acme_and_a_node_of_another_process(
    binary: &Path,
    dir: &Path,
    host: &NodeProcess,
) -> (NodeProcess, String) {
    let external_port = free_port();
    let extra = format!(
        "\n[[connection]]\nname = \"acme-external\"\nremote-instance = \"Acme\"\n\
         remote-url = \"http://127.0.0.1:{}/t/acme\"\n\
         incoming = \"remote-key\"\noutgoing = \"remote-key\"\nsecret = \"acme-secret\"\n",
        host.spec.port
    );
    let external = NodeProcess::start(
        binary,
        dir,
        NodeSpec {
            instance: "External",
            project: "EXT",
            remote: "Nobody",
            port: external_port,
            admin_port: free_port(),
            remote_port: free_port(),
            processor: "mirror",
            extra: Box::leak(extra.into_boxed_str()),
        },
    );
    let token = Api::new(host.spec.admin_port).add_tenant(serde_json::json!({
        "name": "acme",
        "instance": "Acme",
        "tracker": {"kind": "reference", "project": "ACME"},
        "connections": [{
            "name": "acme-external",
            "remote-instance": "External",
            "remote-url": format!("http://127.0.0.1:{external_port}"),
            "secret": "acme-secret",
            "incoming": "remote-key",
            "outgoing": "remote-key",
        }],
    }));
    (external, token)
}

/// The admin API of one serve process, with any token.
pub struct Api {
    pub port: u16,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(port: u16) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Api { port, agent }
    }

    pub fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.port))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .unwrap();
        let mut response = self.agent.run(request).expect("admin request");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Create an issue with `summary` in the tenant of `token` and exalate it on
    /// `connection`, both of which must succeed; the issue's key.
    pub fn create_and_exalate(&self, token: &str, connection: &str, summary: &str) -> String {
        let issue = self.ok(
            token,
            "POST",
            "/v1/issues",
            Some(serde_json::json!({"summary": summary, "status": "Open"})),
        );
        let key = issue["key"].as_str().expect("a key").to_string();
        let exalated = self.ok(
            token,
            "POST",
            "/v1/exalate",
            Some(serde_json::json!({"connection": connection, "keys": [key]})),
        );
        assert_eq!(exalated["errors"], serde_json::json!([]), "{exalated}");
        key
    }

    /// A call that must succeed.
    pub fn ok(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(token, method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// A call that must be refused as bad input: 400, with an error that says `reason`.
    pub fn refused(&self, token: &str, method: &str, path: &str, body: Value, reason: &str) {
        let (status, answer) = self.call(token, method, path, Some(body));
        assert_eq!(status, 400, "{method} {path}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{method} {path}: {answer}");
    }

    /// Register a tenant with the host token; it must be running. The tenant's token.
    pub fn add_tenant(&self, spec: Value) -> String {
        let created = self.ok(TOKEN, "POST", "/v1/tenants", Some(spec));
        assert_eq!(created["running"], true, "{created}");
        created["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {created}"))
            .to_string()
    }
}
