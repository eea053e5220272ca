//! Tenants of a real `twinsync serve` that fail: one whose sender panics is stopped with the
//! reason (never left running without sending), and a tenant that is not running is tried
//! again after `[tenants] retry-after-secs`, its state and next try shown by
//! `GET /v1/tenants`.

use std::time::Duration;

use serde_json::{Value, json};
use twinsync_tests::cli::ok;
use twinsync_tests::process::{TOKEN, eventually, free_port};
use twinsync_tests::tenants::{Api, serve};

const WAIT: Duration = Duration::from_secs(30);

/// A tenant with a connection that sends to `remote-url` (nobody listens there).
fn sending_tenant(name: &str, instance: &str) -> Value {
    json!({
        "name": name,
        "instance": instance,
        "tracker": {"kind": "reference", "project": "ACME"},
        "connections": [{
            "name": "out",
            "remote-instance": "Elsewhere2",
            "remote-url": format!("http://127.0.0.1:{}", free_port()),
            "secret": "s3cret",
            "incoming": "mirror",
            "outgoing": "mirror",
        }],
    })
}

#[test]
fn a_tenant_whose_sender_panics_is_stopped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    let api = Api::new(node.spec.admin_port);
    let token = api.add_tenant(sending_tenant("acme", "Acme"));
    api.add_tenant(sending_tenant("beta", "Beta"));
    api.ok(&token, "GET", "/v1/twins", None);

    // Started again with a fault in acme's sender.
    node.stop();
    node.env = vec![("TWINSYNC_TEST_PANIC_TENANT_SENDER".into(), "acme".into())];
    node.restart();
    let why =
        "the sender of connection `out` panicked: injected by TWINSYNC_TEST_PANIC_TENANT_SENDER";
    eventually(WAIT, "acme is shown stopped, with the reason", || {
        let shown = api.ok(TOKEN, "GET", "/v1/tenants/acme", None);
        shown["running"] == false && shown["error"].as_str().is_some_and(|e| e.contains(why))
    });
    // Its token says why; the log too; the other tenant runs on.
    let (status, answer) = api.call(&token, "GET", "/v1/twins", None);
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    assert!(node.log().contains(why), "{}", node.log());
    assert_eq!(
        api.ok(TOKEN, "GET", "/v1/tenants/beta", None)["running"],
        true
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_tenant_that_cannot_start_is_tried_again_and_starts_when_its_cause_passes() {
    let dir = tempfile::tempdir().unwrap();
    // A failed tenant is tried again every second.
    let node = serve(
        twinsync_tests::twinsync_binary!(),
        dir.path(),
        "\n[tenants]\nretry-after-secs = 1\n",
    );
    let api = Api::new(node.spec.admin_port);
    api.add_tenant(json!({"name": "acme", "instance": "Acme"}));
    // A plain file where beta's directory must be; the CLI writes the registry behind
    // serve's back (the admin API would refuse a tenant that cannot start): serve cannot
    // start this one.
    let in_the_way = node.dir.join("data/tenants/beta");
    std::fs::create_dir_all(in_the_way.parent().unwrap()).unwrap();
    std::fs::write(&in_the_way, "not a directory").unwrap();
    let added = ok(node.command(&["tenants", "add", "beta", "--instance", "Beta"]));
    let token = added
        .split_whitespace()
        .find(|w| w.len() >= 64)
        .expect("the token is printed")
        .to_string();

    let failed = |shown: &Value| {
        shown["state"] == "failed"
            && shown["running"] == false
            && shown["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot create") && e.contains("tenants/beta"))
    };
    eventually(WAIT, "beta is shown failed, with the reason", || {
        failed(&api.ok(TOKEN, "GET", "/v1/tenants/beta", None))
    });
    let first = api.ok(TOKEN, "GET", "/v1/tenants", None);
    let beta = first
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "beta")
        .unwrap()
        .clone();
    let next = beta["next_try_ms"].as_i64().expect("a next try");
    assert!(
        next > now_ms() - 1_500 && next <= now_ms() + 1_000,
        "next try {next} is not about a second after the last one ({})",
        now_ms()
    );
    let acme = first
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme")
        .unwrap();
    assert_eq!(
        (acme["state"].clone(), acme["next_try_ms"].clone()),
        (json!("running"), Value::Null)
    );
    // It is tried again (and fails again): its next try moves on.
    eventually(WAIT, "beta is tried again", || {
        let shown = api.ok(TOKEN, "GET", "/v1/tenants/beta", None);
        failed(&shown) && shown["next_try_ms"].as_i64().unwrap() > next
    });
    let (status, answer) = api.call(&token, "GET", "/v1/twins", None);
    assert_eq!(status, 503, "{answer}");
    // The cause removed: it starts at its next try, with no call to make it.
    std::fs::remove_file(&in_the_way).unwrap();
    eventually(Duration::from_secs(10), "beta starts", || {
        api.ok(TOKEN, "GET", "/v1/tenants/beta", None)["state"] == "running"
    });
    assert_eq!(api.ok(&token, "GET", "/v1/twins", None), json!([]));
    assert!(node.log().contains("cannot start the tenant"));
}
