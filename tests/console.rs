//! The operator console of a real `twinsync serve`: off unless configured, login with the
//! admin token, session cookie flags, CSRF refusal, security headers, HTML escaping of
//! tracker data, and every page answering.

use std::time::Duration;

use serde_json::json;
use twinsync_tests::console::ConsoleClient;
use twinsync_tests::process::{NodeProcess, NodeSpec, eventually, free_port};

const WAIT: Duration = Duration::from_secs(30);
const CONSOLE: &str = "[console]\nenabled = true\n";

/// Internal (mirror) and External (`external` processor), both with the console on.
fn pair(dir: &std::path::Path, external: &'static str) -> (NodeProcess, NodeProcess) {
    let (int_port, ext_port) = (free_port(), free_port());
    let spec = |instance, project, remote, port, remote_port, processor| NodeSpec {
        instance,
        project,
        remote,
        port,
        admin_port: free_port(),
        remote_port,
        processor,
        extra: CONSOLE,
    };
    let binary = twinsync_tests::twinsync_binary!();
    let internal = NodeProcess::start(
        binary,
        dir,
        spec("Internal", "INT", "External", int_port, ext_port, "mirror"),
    );
    let external = NodeProcess::start(
        binary,
        dir,
        spec("External", "EXT", "Internal", ext_port, int_port, external),
    );
    (internal, external)
}

/// Create an issue on Internal and exalate it; its key.
fn exalate(internal: &NodeProcess, issue: serde_json::Value) -> String {
    let (status, created) = internal.send("POST", "/v1/issues", issue);
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let (status, body) = internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    assert_eq!(status, 200, "{body}");
    key
}

#[test]
fn the_console_is_off_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, _external) =
        twinsync_tests::process::pair(twinsync_tests::twinsync_binary!(), dir.path(), "mirror");
    let mut client = ConsoleClient::new(internal.spec.admin_port);
    // Nothing there: the admin API's answer to an unknown path without its token.
    for path in ["/console", "/console/login"] {
        let page = client.get(path);
        assert!([401, 404].contains(&page.status), "{path}: {}", page.status);
        assert!(!page.body.contains("<form"), "{path}: {}", page.body);
    }
}

#[test]
fn the_overview_shows_an_unreachable_peer() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        twinsync_tests::twinsync_binary!(),
        dir.path(),
        NodeSpec {
            instance: "Internal",
            project: "INT",
            remote: "External",
            port: free_port(),
            admin_port: free_port(),
            // Nobody there.
            remote_port: free_port(),
            processor: "mirror",
            extra: CONSOLE,
        },
    );
    let mut client = ConsoleClient::new(node.spec.admin_port);
    client.login();
    let overview = client.get("/console");
    assert!(overview.body.contains("healthy"), "{}", overview.body);
    assert!(
        overview
            .body
            .contains("nothing sent since the node started")
    );
    exalate(
        &node,
        json!({"summary": "Nobody listens", "status": "Open"}),
    );
    eventually(
        WAIT,
        "the overview says the other node is unreachable",
        || {
            let overview = client.get("/console");
            overview.body.contains("the other node is unreachable")
                && overview.body.contains("unreachable</span>: ")
        },
    );
}

#[test]
fn login_sessions_csrf_headers_escaping_and_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = pair(dir.path(), twinsync_tests::SCRIPTED);
    let hostile = "<script>alert('summary')</script>";
    let key = exalate(
        &internal,
        json!({"summary": hostile, "status": "Open",
               "comments": [{"body": "<script>alert('comment')</script><img src=x onerror=alert(1)>"}]}),
    );
    // An issue External's processor refuses: a sync error to show.
    let refused = exalate(
        &internal,
        json!({"summary": "Refused", "status": "Open",
               "custom_fields": [{"name": "test behaviour", "value": {"type": "text", "value": "error"}}]}),
    );
    eventually(WAIT, "External has the twin and the sync error", || {
        external
            .get("/v1/twins")
            .as_array()
            .is_some_and(|t| !t.is_empty())
            && external
                .get("/v1/errors")
                .as_array()
                .is_some_and(|e| !e.is_empty())
    });
    let twins = external.get("/v1/twins");
    let twin = twins
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["remote_key"] == key.as_str())
        .expect("the hostile issue's twin")["twin"]
        .as_str()
        .unwrap()
        .to_string();
    let error = external.get("/v1/errors")[0]["event"]
        .as_str()
        .unwrap()
        .to_string();

    let mut client = ConsoleClient::new(external.spec.admin_port);
    // Not logged in: pages send to the login, actions are refused.
    let page = client.get("/console");
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some("/console/login"));
    assert_eq!(
        client
            .post(
                "/console/errors/retry-all",
                &[("connection", "internal-external")]
            )
            .status,
        403
    );
    // The admin API's bearer token is not a session.
    assert_eq!(client.get("/console/queue").status, 303);

    // A wrong token, a login form without its token: refused, no session.
    assert_eq!(client.login_with("wrong-token").status, 401);
    let form = client.get("/console/login");
    assert!(form.csrf().is_some());
    client.cookies.clear();
    assert_eq!(
        client
            .post(
                "/console/login",
                &[
                    ("csrf", &form.csrf().unwrap()),
                    ("token", twinsync_tests::process::TOKEN)
                ]
            )
            .status,
        403,
        "a login form posted without its cookie (from another site) is refused"
    );
    assert!(!client.cookies.iter().any(|(n, _)| n == "twinsync_session"));

    let answer = client.login_with(twinsync_tests::process::TOKEN);
    assert_eq!(answer.status, 303, "{}", answer.body);
    let cookie = answer
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("twinsync_session="))
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no TLS here, no secure-cookie: {cookie}"
    );

    // Every page answers, with the security headers, and escapes what trackers wrote.
    let pages = [
        "/console".to_string(),
        "/console/queue".into(),
        "/console/queue?state=all&key=".to_string() + &key,
        "/console/errors".into(),
        format!("/console/errors/{error}"),
        format!("/console/errors/{error}/confirm?action=retry"),
        "/console/errors/retry-all?connection=internal-external".into(),
        "/console/twins".into(),
        format!("/console/twins?key={key}"),
        format!("/console/twins/{twin}"),
        format!("/console/twins/{twin}/confirm?action=resync"),
        "/console/conflicts".into(),
        "/console/plugins".into(),
    ];
    let mut csrf = String::new();
    for path in &pages {
        let page = client.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert!(page.body.contains("<main>"), "{path}");
        // The only scripts are the console's own file.
        assert_eq!(
            page.body.matches("<script").count(),
            1,
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("<img"), "{path}");
        csrf = page.csrf().expect("every page has the logout form");
    }
    let twin_page = client.get(&format!("/console/twins/{twin}"));
    assert!(
        twin_page
            .body
            .contains("&lt;script&gt;alert(&#39;summary&#39;)&lt;/script&gt;"),
        "{}",
        twin_page.body
    );
    assert!(twin_page.body.contains(
        "&lt;script&gt;alert(&#39;comment&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    ));
    assert!(twin_page.body.contains(&key), "both keys are shown");
    let error_page = client.get(&format!("/console/errors/{error}"));
    assert!(
        error_page.body.contains("processor-error"),
        "{}",
        error_page.body
    );
    assert!(error_page.body.contains("refusing issue on purpose"));
    let plugins = client.get("/console/plugins");
    assert!(
        plugins.body.contains("mirror") || plugins.body.contains("scripted"),
        "{}",
        plugins.body
    );
    assert_eq!(client.get("/console/assets/console.css").status, 200);
    assert_eq!(client.get("/console/twins/no-such-twin").status, 404);

    // A form without the session's CSRF token, or with another, is refused and does nothing.
    let retry = format!("/console/errors/{error}/retry");
    assert_eq!(client.post(&retry, &[]).status, 403);
    assert_eq!(client.post(&retry, &[("csrf", "0000")]).status, 403);
    assert_eq!(external.get("/v1/errors").as_array().unwrap().len(), 1);
    // With it, the retry happens (and fails again: the processor still refuses).
    let answer = client.post(&retry, &[("csrf", &csrf)]);
    assert_eq!(answer.status, 303, "{}", answer.body);
    eventually(WAIT, "the retried event is in the twin's history", || {
        let history = external.get(&format!("/v1/history?key={refused}"));
        history
            .as_array()
            .is_some_and(|h| h.iter().any(|e| e["outcome"] == "retried"))
    });

    // The same history on the command line, by Internal's key.
    let output = std::process::Command::new(twinsync_tests::twinsync_binary!())
        .args(["history", &key, "--config"])
        .arg(&external.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains(&format!("summary: (none) -> {hostile}")),
        "{text}"
    );
    assert!(text.contains("+ comment"), "{text}");
    let output = std::process::Command::new(twinsync_tests::twinsync_binary!())
        .args(["history", &refused, "--json", "--config"])
        .arg(&external.config)
        .output()
        .unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let outcomes: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes[outcomes.len() - 2..],
        ["retried", "failed"],
        "{entries}"
    );

    // Logged out, the session no longer works.
    assert_eq!(
        client.post("/console/logout", &[("csrf", &csrf)]).status,
        303
    );
    assert_eq!(client.get("/console/queue").status, 303);
}
