//! Tenants in a real `twinsync serve`: registered through the admin API with the host
//! token, each with a token of its own that reaches its own node only. Every documented
//! admin route is tried with another tenant's token on a tenant's objects: 404, and nothing
//! changes; with the tenant's own token, the same calls work.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use twinsync::runtime::CONTRACT_VERSION;
use twinsync_tests::cli::ok;
use twinsync_tests::console::ConsoleClient;
use twinsync_tests::process::{NodeProcess, TOKEN, eventually, remote_key};
use twinsync_tests::tenants::{Api, acme_and_a_node_of_another_process, serve};
use twinsync_tests::twinsync;

const WAIT: Duration = Duration::from_secs(30);
const PLUGIN: &str = "scripted-test@1.0.0";

/// Package the scripted test processor and install it in serve's plugin store: tenants name
/// it as `plugin:scripted-test@1.0.0`.
fn install_scripted(dir: &Path, node: &NodeProcess) {
    install_scripted_version(dir, node, "1.0.0")
}

fn install_scripted_version(dir: &Path, node: &NodeProcess, version: &str) {
    let component = dir.join("scripted.wasm");
    std::fs::write(
        &component,
        twinsync_tests::processor_wasm("scripted").unwrap(),
    )
    .unwrap();
    let manifest = dir.join("plugin.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"scripted-test\"\nvendor = \"Tests\"\nversion = \"{version}\"\n\
             description = \"test\"\ncontract = \"{CONTRACT_VERSION}\"\n\
             worlds = [\"incoming-processor\", \"outgoing-processor\"]\n"
        ),
    )
    .unwrap();
    let package = dir.join(format!("scripted-test-{version}.wasm"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    ok(twinsync!(&[
        "plugin",
        "pack",
        &path(&component),
        "--manifest",
        &path(&manifest),
        "-o",
        &path(&package),
    ]));
    ok(node.command(&["plugin", "install", &path(&package)]));
}

/// A tenant and the peer it syncs with (another tenant of the same process), and what the
/// test made on it: a twin, a sync error, events and a conflict.
struct Setup {
    name: &'static str,
    token: String,
    peer_token: String,
    link: String,
    key: String,
    twin: String,
    error: String,
    conflict: i64,
    spare_key: String,
}

fn tenant_spec(
    name: &str,
    instance: &str,
    project: &str,
    link: &str,
    remote: &str,
    incoming: &str,
) -> Value {
    json!({
        "name": name,
        "instance": instance,
        "tracker": {"kind": "reference", "project": project},
        "connections": [{
            "name": link,
            "remote-instance": remote,
            "incoming": incoming,
            "conflicts": {"default": "hold-for-review"},
        }],
    })
}

/// Register `name` and its peer, and make a twin, a sync error and a conflict on `name`.
/// `fields`: the fields edited on both sides at once (one conflict each).
fn set_up(api: &Api, name: &'static str, project: &str, fields: &[&str]) -> Setup {
    let instance = format!("{name}-instance");
    let peer = format!("{name}-peer");
    let peer_instance = format!("{name}-peer-instance");
    let link = format!("{name}-link");
    let plugin = format!("plugin:{PLUGIN}");
    let token = api.add_tenant(tenant_spec(
        name,
        &instance,
        project,
        &link,
        &peer_instance,
        &plugin,
    ));
    assert!(token.len() >= 64, "{token}");
    let peer_token = api.add_tenant(tenant_spec(
        &peer,
        &peer_instance,
        &format!("{project}P"),
        &link,
        &instance,
        "mirror",
    ));

    // A twin.
    let issue = api.ok(
        &token,
        "POST",
        "/v1/issues",
        Some(json!({"summary": format!("{name} one"), "description": "d", "status": "Open"})),
    );
    let key = issue["key"].as_str().unwrap().to_string();
    let exalated = api.ok(
        &token,
        "POST",
        "/v1/exalate",
        Some(json!({"connection": link, "keys": [key]})),
    );
    assert_eq!(exalated["errors"], json!([]), "{exalated}");
    let twin = exalated["twins"][0]["twin"].as_str().unwrap().to_string();
    // Its issue on the peer's side.
    eventually(WAIT, "the twin reaches the peer", || {
        api.ok(&peer_token, "GET", "/v1/twins", None)[0]["local_key"].is_string()
    });
    let remote_key = api.ok(&peer_token, "GET", "/v1/twins", None)[0]["local_key"]
        .as_str()
        .unwrap()
        .to_string();

    // A sync error: the peer sends an issue the tenant's processor refuses.
    let bad = api.ok(&peer_token, "POST", "/v1/issues", Some(json!({"summary": "refused", "status": "Open",
        "custom_fields": [{"name": "test behaviour", "value": {"type": "text", "value": "error"}}]})));
    api.ok(
        &peer_token,
        "POST",
        "/v1/exalate",
        Some(json!({"connection": link, "keys": [bad["key"]]})),
    );
    eventually(WAIT, "a sync error on the tenant", || {
        !api.ok(&token, "GET", "/v1/errors", None)
            .as_array()
            .unwrap()
            .is_empty()
    });
    let error = api.ok(&token, "GET", "/v1/errors", None)[0]["event"]
        .as_str()
        .unwrap()
        .to_string();

    // A conflict: both sides change the same fields before either hears of the other's
    // change (tried again in the rare case where one side's change arrived first).
    let mut round = 0;
    let conflicts = loop {
        round += 1;
        let edit = |token: &str, key: &str, side: &str| {
            let patch: serde_json::Map<String, Value> = fields
                .iter()
                .map(|f| (f.to_string(), Value::from(format!("{side} {round}"))))
                .collect();
            api.ok(
                token,
                "PATCH",
                &format!("/v1/issues/{key}"),
                Some(Value::Object(patch)),
            );
        };
        edit(&peer_token, &remote_key, "peer");
        edit(&token, &key, "tenant");
        let idle = |token: &str| {
            let queue = api.ok(token, "GET", "/v1/queue", None);
            queue
                .as_array()
                .unwrap()
                .iter()
                .all(|row| row["pending"] == 0 && row["in_flight"] == 0)
        };
        let settled = || idle(&token) && idle(&peer_token);
        eventually(WAIT, "the edits are exchanged", settled);
        std::thread::sleep(Duration::from_millis(500));
        let conflicts = api.ok(&token, "GET", "/v1/conflicts", None);
        if conflicts.as_array().unwrap().len() >= fields.len() || round == 5 {
            break conflicts;
        }
    };
    let conflict = conflicts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .max()
        .unwrap_or_else(|| panic!("no conflict on {name}: {conflicts}"));
    let spare = api.ok(
        &token,
        "POST",
        "/v1/issues",
        Some(json!({"summary": "spare", "status": "Open"})),
    );
    Setup {
        name,
        token,
        peer_token,
        link,
        key,
        twin,
        error,
        conflict,
        spare_key: spare["key"].as_str().unwrap().to_string(),
    }
}

/// What a tenant's node holds, to see that a call changed nothing.
fn state(api: &Api, s: &Setup) -> Value {
    let events: Vec<Value> = api
        .ok(&s.token, "GET", "/v1/events", None)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["id"], e["state"]]))
        .collect();
    json!({
        "issue": api.ok(&s.token, "GET", &format!("/v1/issues/{}", s.key), None),
        "spare": api.ok(&s.token, "GET", &format!("/v1/issues/{}", s.spare_key), None),
        "twins": api.ok(&s.token, "GET", "/v1/twins", None),
        "errors": api.ok(&s.token, "GET", "/v1/errors", None).as_array().unwrap().iter().map(|e| e["event"].clone()).collect::<Vec<_>>(),
        "conflicts": api.ok(&s.token, "GET", "/v1/conflicts", None),
        "events": events,
        "plugins": api.ok(&s.token, "GET", "/v1/plugins", None),
    })
}

/// The `METHOD /path` rows of a module's doc table.
fn documented(source: &str) -> Vec<(String, String)> {
    source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .filter_map(|l| l.strip_prefix("//! | `")?.split('`').next())
        .filter_map(|route| {
            let (method, path) = route.split_once(' ')?;
            Some((method.to_string(), path.to_string()))
        })
        .collect()
}

/// How a call with another tenant's token must be answered.
enum Expect {
    /// 404: the object is the other tenant's.
    NotFound,
    /// The call acts on the caller's own node (a list, a creation): it succeeds, and its
    /// answer names nothing of the other tenant.
    OwnNode,
}

/// A request on `s`'s objects for each documented route. A route without one fails the
/// test: a route added later must be added here.
fn probes(s: &Setup, method: &str, path: &str) -> Vec<(String, Option<Value>, Expect)> {
    use Expect::*;
    let plugin = json!({"plugin": PLUGIN, "connection": s.link, "side": "incoming"});
    let one = |path: String, body: Option<Value>, expect| vec![(path, body, expect)];
    match (method, path) {
        ("GET", "/v1/issues/{key}") => one(format!("/v1/issues/{}", s.key), None, NotFound),
        ("PATCH", "/v1/issues/{key}") => one(
            format!("/v1/issues/{}", s.key),
            Some(json!({"summary": "taken over"})),
            NotFound,
        ),
        ("POST", "/v1/issues") => one(
            "/v1/issues".into(),
            Some(json!({"summary": "mine", "status": "Open"})),
            OwnNode,
        ),
        ("POST", "/v1/exalate") => one(
            path.into(),
            Some(json!({"connection": s.link, "keys": [s.spare_key]})),
            NotFound,
        ),
        ("POST", "/v1/unexalate") => one(
            path.into(),
            Some(json!({"connection": s.link, "keys": [s.key]})),
            NotFound,
        ),
        (
            "GET",
            "/v1/twins"
            | "/v1/queue"
            | "/v1/errors"
            | "/v1/conflicts"
            | "/v1/plugins"
            | "/v1/plugins/changes",
        ) => one(path.into(), None, OwnNode),
        ("POST", "/v1/errors/retry-all") => one(path.into(), None, OwnNode),
        ("POST", "/v1/errors/{id}/retry") => {
            one(format!("/v1/errors/{}/retry", s.error), None, NotFound)
        }
        ("POST", "/v1/errors/{id}/skip") => {
            one(format!("/v1/errors/{}/skip", s.error), None, NotFound)
        }
        ("GET", "/v1/events") => vec![
            (path.into(), None, OwnNode),
            (format!("/v1/events?twin={}", s.twin), None, NotFound),
        ],
        ("GET", "/v1/events/{id}") => one(format!("/v1/events/{}", s.error), None, NotFound),
        ("GET", "/v1/history") => vec![
            (format!("/v1/history?key={}", s.twin), None, NotFound),
            (format!("/v1/history?key={}", s.key), None, NotFound),
            (format!("/v1/history?connection={}", s.link), None, NotFound),
        ],
        ("POST", "/v1/conflicts/{id}/resolve") => one(
            format!("/v1/conflicts/{}/resolve", s.conflict),
            Some(json!({"take": "local"})),
            NotFound,
        ),
        ("POST", "/v1/verify") => one(path.into(), Some(json!({"connection": s.link})), NotFound),
        ("POST", "/v1/plugins/use") => one(path.into(), Some(plugin), NotFound),
        // An upgrade acts on the caller's own connections (none of acme's).
        ("POST", "/v1/plugins/upgrade") => {
            one(path.into(), Some(json!({"name": "scripted-test"})), OwnNode)
        }
        ("POST", "/v1/plugins/rollback") => {
            one(path.into(), Some(json!({"connection": s.link})), NotFound)
        }
        ("POST", "/v1/plugins/try") => one(
            path.into(),
            Some(json!({"plugin": PLUGIN, "connection": s.link})),
            NotFound,
        ),
        // The host's routes do not exist for a tenant.
        (_, p) if p.starts_with("/v1/tenants") => {
            let p = p.replace("{name}", s.name);
            let body = json!({"name": s.name, "instance": "x"});
            one(p, Some(body), NotFound)
        }
        _ => panic!("no probe for {method} {path}: add one to tests/tenants_serve.rs"),
    }
}

#[test]
fn a_tenant_token_reaches_its_own_node_only() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve(
        twinsync_tests::twinsync_binary!(),
        dir.path(),
        "\n[console]\nenabled = true\n",
    );
    install_scripted(dir.path(), &node);
    let api = Api::new(node.spec.admin_port);

    let acme = set_up(&api, "acme", "ACME", &["summary", "description"]);
    let beta = set_up(&api, "beta", "BETA", &["summary"]);
    // The probes use ids of acme's that must not exist on beta (conflict ids are numbers
    // per tenant database: acme has more of them).
    let beta_conflicts = api.ok(&beta.token, "GET", "/v1/conflicts", None);
    assert!(
        beta_conflicts
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != acme.conflict),
        "{beta_conflicts}"
    );

    // An unknown token is refused; the host token still reaches serve's own node.
    assert_eq!(api.call("nope", "GET", "/v1/twins", None).0, 401);
    assert_eq!(
        api.call(&format!("{}x", acme.token), "GET", "/v1/twins", None)
            .0,
        401
    );
    assert_eq!(api.ok(TOKEN, "GET", "/v1/twins", None), json!([]));
    assert_eq!(
        api.call(TOKEN, "GET", &format!("/v1/issues/{}", acme.key), None)
            .0,
        404
    );

    let routes: Vec<(String, String)> = [
        include_str!("../host/src/admin.rs"),
        include_str!("../host/src/plugins/api.rs"),
        include_str!("../host/src/tenants/api.rs"),
    ]
    .into_iter()
    .flat_map(documented)
    .collect();
    assert!(routes.len() >= 29, "{routes:?}");

    // Every route, with beta's token, on acme's objects.
    let acme_ids = [
        acme.key.clone(),
        acme.twin.clone(),
        acme.error.clone(),
        acme.link.clone(),
    ];
    let before = state(&api, &acme);
    for (method, path) in &routes {
        for (request, body, expect) in probes(&acme, method, path) {
            let (status, answer) = api.call(&beta.token, method, &request, body);
            match expect {
                Expect::NotFound => assert_eq!(
                    status, 404,
                    "{method} {request} with beta's token: {answer}"
                ),
                Expect::OwnNode => {
                    assert!(
                        (200..300).contains(&status),
                        "{method} {request}: {status} {answer}"
                    );
                    for id in &acme_ids {
                        assert!(
                            !answer.to_string().contains(id.as_str()),
                            "{method} {request} shows {id}: {answer}"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(state(&api, &acme), before, "beta's calls changed acme");

    // The console: a login with beta's token shows beta's node; acme's pages are not found.
    let mut console = ConsoleClient::new(node.spec.admin_port);
    assert_eq!(console.login_with(&beta.token).status, 303);
    let twins = console.get("/console/twins");
    assert_eq!(twins.status, 200);
    assert!(
        twins.body.contains(&beta.twin) && !twins.body.contains(&acme.twin),
        "{}",
        twins.body
    );
    for page in [
        format!("/console/twins/{}", acme.twin),
        format!("/console/errors/{}", acme.error),
        format!("/console/errors/{}/confirm?action=skip", acme.error),
        format!("/console/twins/{}/confirm?action=unexalate", acme.twin),
    ] {
        assert_eq!(console.get(&page).status, 404, "{page}");
    }
    let errors = console.get("/console/errors");
    assert!(!errors.body.contains(&acme.error), "{}", errors.body);
    let csrf = errors.csrf().expect("a form on the errors page");
    for action in [
        format!("/console/errors/{}/skip", acme.error),
        format!("/console/errors/{}/retry", acme.error),
        format!("/console/twins/{}/unexalate", acme.twin),
        format!("/console/twins/{}/resync", acme.twin),
    ] {
        assert_eq!(
            console.post(&action, &[("csrf", &csrf)]).status,
            404,
            "{action}"
        );
    }
    let resolve = format!("/console/conflicts/{}/resolve", acme.conflict);
    assert_eq!(
        console
            .post(&resolve, &[("csrf", &csrf), ("take", "local")])
            .status,
        404
    );
    assert_eq!(state(&api, &acme), before, "beta's console changed acme");
    // Acme's token sees acme's twin; the host token serve's own node.
    let mut console = ConsoleClient::new(node.spec.admin_port);
    assert_eq!(console.login_with(&acme.token).status, 303);
    assert_eq!(
        console.get(&format!("/console/twins/{}", acme.twin)).status,
        200
    );
    let mut console = ConsoleClient::new(node.spec.admin_port);
    console.login();
    let twins = console.get("/console/twins");
    assert!(!twins.body.contains(&acme.twin) && !twins.body.contains(&beta.twin));
    assert_eq!(
        ConsoleClient::new(node.spec.admin_port)
            .login_with("nope")
            .status,
        401
    );

    // The same calls with acme's own token work (read-only ones first).
    let own =
        |method: &str, path: String, body: Option<Value>| api.ok(&acme.token, method, &path, body);
    assert_eq!(
        own("GET", format!("/v1/issues/{}", acme.key), None)["key"],
        acme.key.as_str()
    );
    assert!(
        !own("GET", format!("/v1/events?twin={}", acme.twin), None)
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        own("GET", format!("/v1/events/{}", acme.error), None)["id"],
        acme.error.as_str()
    );
    own("GET", format!("/v1/history?key={}", acme.key), None);
    own("GET", format!("/v1/history?connection={}", acme.link), None);
    own(
        "POST",
        "/v1/verify".into(),
        Some(json!({"connection": acme.link})),
    );
    own(
        "PATCH",
        format!("/v1/issues/{}", acme.key),
        Some(json!({"description": "mine"})),
    );
    let exalated = own(
        "POST",
        "/v1/exalate".into(),
        Some(json!({"connection": acme.link, "keys": [acme.spare_key]})),
    );
    assert_eq!(exalated["errors"], json!([]), "{exalated}");
    own(
        "POST",
        format!("/v1/conflicts/{}/resolve", acme.conflict),
        Some(json!({"take": "local"})),
    );
    own("POST", format!("/v1/errors/{}/retry", acme.error), None);
    eventually(WAIT, "the retried event fails again", || {
        !api.ok(&acme.token, "GET", "/v1/errors", None)
            .as_array()
            .unwrap()
            .is_empty()
    });
    own("POST", format!("/v1/errors/{}/skip", acme.error), None);
    own(
        "POST",
        "/v1/unexalate".into(),
        Some(json!({"connection": acme.link, "keys": [acme.key]})),
    );
    // The plugin store's routes reach acme's node: its connection is found (it switched
    // nothing yet: nothing to roll back, which is a 400, not a 404).
    let (status, answer) = api.call(
        &acme.token,
        "POST",
        "/v1/plugins/rollback",
        Some(json!({"connection": acme.link})),
    );
    assert_ne!(status, 404, "{answer}");
    // Beta was not touched by acme's calls either.
    assert_eq!(
        api.ok(&beta.token, "GET", "/v1/errors", None)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!beta.peer_token.is_empty());
}

#[test]
fn tenants_are_added_changed_and_removed_while_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    // One worker, shared by every tenant.
    let node = serve(
        twinsync_tests::twinsync_binary!(),
        dir.path(),
        "\n[tenants]\nworkers = 1\n",
    );
    let api = Api::new(node.spec.admin_port);
    let spec = |instance: &str| json!({"name": "acme", "instance": instance, "tracker": {"kind": "reference", "project": "ACME"}});

    // Bad specs are refused with the reason, and nothing is registered.
    let refused =
        |spec: Value, reason: &str| api.refused(TOKEN, "POST", "/v1/tenants", spec, reason);
    refused(
        json!({"name": "../etc", "instance": "X"}),
        "letters, digits",
    );
    refused(
        json!({"name": "x", "instance": "Host"}),
        "serving node's own",
    );
    refused(
        json!({"name": "x", "instance": "X",
        "connections": [{"name": "c", "remote-instance": "Y", "incoming": "plugin:nothing@1.0.0"}]}),
        "no nothing@1.0.0 in the plugin store",
    );
    assert_eq!(api.ok(TOKEN, "GET", "/v1/tenants", None), json!([]));

    let token = api.add_tenant(spec("Acme"));
    refused(spec("Acme2"), "exists already");
    let issue = api.ok(
        &token,
        "POST",
        "/v1/issues",
        Some(json!({"summary": "kept", "status": "Open"})),
    );
    assert_eq!(issue["key"], "ACME-1");
    let shown = api.ok(TOKEN, "GET", "/v1/tenants/acme", None);
    assert_eq!(
        (shown["running"].clone(), shown["revision"].clone()),
        (json!(true), json!(1))
    );
    assert!(shown.get("token").is_none() && !shown.to_string().contains(&token));

    // Changed: it restarts with the new spec, its data kept, its token still valid.
    let changed = api.ok(TOKEN, "PUT", "/v1/tenants/acme", Some(spec("AcmeRenamed")));
    assert_eq!(changed["revision"], 2);
    assert_eq!(
        api.ok(&token, "GET", "/v1/issues/ACME-1", None)["summary"],
        "kept"
    );
    let refused_change =
        |spec: Value, reason: &str| api.refused(TOKEN, "PUT", "/v1/tenants/acme", spec, reason);
    refused_change(
        json!({"name": "other", "instance": "Z"}),
        "cannot be renamed",
    );
    // A spec it cannot start with is undone, with the reason.
    let mut too_big = spec("AcmeTooBig");
    too_big["connections"] =
        json!([{"name": "c", "remote-instance": "Y", "limits": {"memory-bytes": 1u64 << 40}}]);
    refused_change(too_big, "kept as it was");
    let shown = api.ok(TOKEN, "GET", "/v1/tenants/acme", None);
    assert_eq!(
        (shown["spec"]["instance"].clone(), shown["running"].clone()),
        (json!("AcmeRenamed"), json!(true))
    );
    assert_eq!(
        api.ok(&token, "GET", "/v1/issues/ACME-1", None)["summary"],
        "kept"
    );
    // A tenant that cannot start (a plain file where its directory must be) is refused
    // with the reason, and not kept.
    let in_the_way = node.dir.join("data/tenants/beta");
    std::fs::write(&in_the_way, "not a directory").unwrap();
    refused(json!({"name": "beta", "instance": "Beta"}), "cannot create");
    assert_eq!(
        api.ok(TOKEN, "GET", "/v1/tenants", None)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Its cause removed, it is added: tenants share the workers, none is refused for want
    // of room.
    std::fs::remove_file(&in_the_way).unwrap();
    let beta = api.add_tenant(json!({"name": "beta", "instance": "Beta"}));
    let made = api.ok(
        &beta,
        "POST",
        "/v1/issues",
        Some(json!({"summary": "beside acme", "status": "Open"})),
    );
    assert_eq!(made["key"], "TS-1");
    assert_eq!(
        api.ok(TOKEN, "GET", "/v1/tenants/acme", None)["running"],
        true
    );
    api.ok(TOKEN, "DELETE", "/v1/tenants/beta", None);

    // A new token: the old one stops working at once.
    let rotated = api.ok(TOKEN, "POST", "/v1/tenants/acme/token", None);
    let new_token = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(api.call(&token, "GET", "/v1/twins", None).0, 401);
    api.ok(&new_token, "GET", "/v1/twins", None);

    // Durable: serve restarted finds it again.
    let mut node = node;
    node.stop();
    node.restart();
    assert_eq!(
        api.ok(&new_token, "GET", "/v1/issues/ACME-1", None)["summary"],
        "kept"
    );

    // Removed: its token is refused, it is gone from the list; its directory stays.
    api.ok(TOKEN, "DELETE", "/v1/tenants/acme", None);
    assert_eq!(api.call(&new_token, "GET", "/v1/twins", None).0, 401);
    assert_eq!(api.ok(TOKEN, "GET", "/v1/tenants", None), json!([]));
    assert_eq!(api.call(TOKEN, "DELETE", "/v1/tenants/acme", None).0, 404);
    assert!(node.dir.join("data/tenants/acme/tracker.db").exists());
}

/// A tenant of one serve process syncs with a plain node in another over HTTP: it sends to
/// the node's `remote-url`, the node sends to `/t/acme` on the first process.
#[test]
fn a_tenant_syncs_with_a_node_of_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let host = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    let api = Api::new(host.spec.admin_port);
    let (external, token) =
        acme_and_a_node_of_another_process(twinsync_tests::twinsync_binary!(), dir.path(), &host);

    // Acme's issue reaches External, which syncs back its key.
    assert_eq!(
        api.create_and_exalate(&token, "acme-external", "over HTTP"),
        "ACME-1"
    );
    eventually(WAIT, "acme stores External's key", || {
        remote_key(&api.ok(&token, "GET", "/v1/issues/ACME-1", None)).is_some()
    });
    let external_key = remote_key(&api.ok(&token, "GET", "/v1/issues/ACME-1", None)).unwrap();
    assert_eq!(
        external.issue(&external_key).unwrap()["summary"],
        "over HTTP"
    );

    // A change on External comes back to the tenant.
    let (status, answer) = external.send(
        "PATCH",
        &format!("/v1/issues/{external_key}"),
        json!({"summary": "changed outside"}),
    );
    assert_eq!(status, 200, "{answer}");
    eventually(WAIT, "the change reaches acme", || {
        api.ok(&token, "GET", "/v1/issues/ACME-1", None)["summary"] == "changed outside"
    });
    // Serve's own node saw none of it.
    assert_eq!(host.get("/v1/twins"), json!([]));

    // An unknown tenant is 404; a known one checks the request (here: no signature).
    let post = |path: &str| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .post(&format!("http://127.0.0.1:{}{path}", host.spec.port))
            .send("{}")
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("/t/nobody/v1/messages"), 404);
    assert_eq!(post("/t/nobody/v1/messages/batch"), 404);
    assert_eq!(post("/t/acme/v1/messages"), 400);
}

/// Tenants changed (so restarted) again and again while their events flow: every issue
/// still reaches the other side, and every key comes back, with no sync error.
#[test]
fn tenants_restarted_while_events_flow_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    let api = Api::new(node.spec.admin_port);
    let spec = |name: &str, instance: &str, project: &str, remote: &str, timeout: u64| {
        json!({
            "name": name,
            "instance": instance,
            "tracker": {"kind": "reference", "project": project},
            "connections": [{
                "name": "link",
                "remote-instance": remote,
                "incoming": "remote-key",
                "outgoing": "remote-key",
                "limits": {"timeout-ms": timeout},
            }],
        })
    };
    let token = api.add_tenant(spec("acme", "Acme", "ACME", "Globex", 2000));
    let peer = api.add_tenant(spec("globex", "Globex", "GLO", "Acme", 2000));

    let mut keys = Vec::new();
    for round in 0..4u64 {
        let mut batch = Vec::new();
        for i in 0..10 {
            let issue = api.ok(
                &token,
                "POST",
                "/v1/issues",
                Some(json!({"summary": format!("issue {round}-{i}"), "status": "Open"})),
            );
            batch.push(issue["key"].as_str().unwrap().to_string());
        }
        let exalated = api.ok(
            &token,
            "POST",
            "/v1/exalate",
            Some(json!({"connection": "link", "keys": batch})),
        );
        assert_eq!(exalated["errors"], json!([]), "{exalated}");
        keys.extend(batch);
        // Each change restarts the tenant, with events queued and under way.
        let changed = api.ok(
            TOKEN,
            "PUT",
            "/v1/tenants/acme",
            Some(spec("acme", "Acme", "ACME", "Globex", 2001 + round)),
        );
        assert_eq!(changed["running"], true, "{changed}");
        api.ok(
            TOKEN,
            "PUT",
            "/v1/tenants/globex",
            Some(spec("globex", "Globex", "GLO", "Acme", 2001 + round)),
        );
    }
    eventually(Duration::from_secs(60), "every key comes back", || {
        let twins = api.ok(&token, "GET", "/v1/twins", None);
        let twins = twins.as_array().unwrap();
        twins.len() == keys.len() && twins.iter().all(|t| t["remote_key"].is_string())
    });
    let peer_twins = api.ok(&peer, "GET", "/v1/twins", None);
    assert_eq!(peer_twins.as_array().unwrap().len(), keys.len());
    for twin in peer_twins.as_array().unwrap() {
        let key = twin["local_key"].as_str().unwrap();
        let issue = api.ok(&peer, "GET", &format!("/v1/issues/{key}"), None);
        assert!(
            issue["summary"].as_str().unwrap().starts_with("issue "),
            "{issue}"
        );
    }
    assert_eq!(api.ok(&token, "GET", "/v1/errors", None), json!([]));
    assert_eq!(api.ok(&peer, "GET", "/v1/errors", None), json!([]));
}

/// A tenant whose tracker is a Redmine project syncs with a tenant on the reference
/// tracker (skipped, loudly, where Redmine cannot be installed).
#[test]
fn a_redmine_tenant_syncs() {
    let redmine = twinsync_tests::redmine_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let node = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    let api = Api::new(node.spec.admin_port);
    let connection = |remote: &str| json!([{"name": "link", "remote-instance": remote, "incoming": "remote-key", "outgoing": "remote-key"}]);
    // A wrong key: refused with Redmine's reason, nothing kept.
    let wrong_key = json!({
        "name": "rm", "instance": "RedmineSide", "connections": connection("ReferenceSide"),
        "tracker": {"kind": "redmine", "url": redmine.url, "api-key": "wrong", "project": "internal"},
    });
    api.refused(
        TOKEN,
        "POST",
        "/v1/tenants",
        wrong_key,
        "cannot use the tenant's Redmine",
    );
    let created = api.ok(
        TOKEN,
        "POST",
        "/v1/tenants",
        Some(json!({
            "name": "rm", "instance": "RedmineSide", "connections": connection("ReferenceSide"),
            "tracker": {"kind": "redmine", "url": redmine.url, "api-key": redmine.twinsync_key,
                        "project": "internal", "poll-interval-ms": 200},
        })),
    );
    assert!(
        !created.to_string().contains(&redmine.twinsync_key),
        "{created}"
    );
    let rm = created["token"].as_str().unwrap().to_string();
    let reference = api.add_tenant(json!({
        "name": "ref", "instance": "ReferenceSide", "connections": connection("RedmineSide"),
        "tracker": {"kind": "reference", "project": "REF"},
    }));

    let subject = twinsync_tests::redmine::unique("Tenant on Redmine");
    let id = redmine.create_issue("internal", &subject);
    let exalated = api.ok(
        &rm,
        "POST",
        "/v1/exalate",
        Some(json!({"connection": "link", "keys": [format!("#{id}")]})),
    );
    assert_eq!(exalated["errors"], json!([]), "{exalated}");
    eventually(WAIT, "the Redmine issue reaches the other tenant", || {
        api.ok(&reference, "GET", "/v1/twins", None)
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    let key = api.ok(&reference, "GET", "/v1/twins", None)[0]["local_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.ok(&reference, "GET", &format!("/v1/issues/{key}"), None)["summary"],
        json!(subject)
    );
    // The key comes back into Redmine (remote-key's sync back).
    eventually(WAIT, "Redmine stores the other side's key", || {
        redmine.issue(id).to_string().contains(&key)
    });
}

/// With its token, a tenant sees the host's packages and which of its connection sides run
/// each, and switches its own connections between installed versions: use, rollback,
/// upgrade, try. It restarts on the new version; another tenant and the host's own plugin
/// view are untouched.
#[test]
fn a_tenant_switches_its_own_connections_between_installed_versions() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    install_scripted_version(dir.path(), &node, "1.0.0");
    install_scripted_version(dir.path(), &node, "1.1.0");
    let api = Api::new(node.spec.admin_port);
    let v1 = format!("plugin:{PLUGIN}");
    let spec = |name: &str, instance: &str, remote: &str, incoming: &str| {
        tenant_spec(name, instance, "P", "link", remote, incoming)
    };
    let acme = api.add_tenant(spec("acme", "Acme", "Beta", &v1));
    let beta = api.add_tenant(spec("beta", "Beta", "Acme", &v1));
    let used_by = |token: &str, version: &str| {
        let all = api.ok(token, "GET", "/v1/plugins", None);
        let package = all
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["version"] == version)
            .unwrap_or_else(|| panic!("no {version} in {all}"))
            .clone();
        assert_eq!(package["installed_by"], "the host", "{package}");
        package["used_by"].clone()
    };
    let incoming = |name: &str| {
        api.ok(TOKEN, "GET", &format!("/v1/tenants/{name}"), None)["spec"]["connections"][0]
            ["incoming"]
            .clone()
    };
    assert_eq!(used_by(&acme, "1.0.0"), json!(["link/incoming"]));
    assert_eq!(used_by(&acme, "1.1.0"), json!([]));
    let host_view = api.ok(TOKEN, "GET", "/v1/plugins", None);

    // Use: acme's incoming side runs 1.1.0; acme restarted on it, beta did not move.
    let used = api.ok(
        &acme,
        "POST",
        "/v1/plugins/use",
        Some(json!({"plugin": "scripted-test@1.1.0", "connection": "link", "side": "incoming"})),
    );
    assert_eq!(used["plugin"], "scripted-test@1.1.0");
    assert_eq!(incoming("acme"), "plugin:scripted-test@1.1.0");
    let shown = api.ok(TOKEN, "GET", "/v1/tenants/acme", None);
    assert_eq!(
        (shown["state"].clone(), shown["revision"].clone()),
        (json!("running"), json!(2))
    );
    assert_eq!(used_by(&acme, "1.1.0"), json!(["link/incoming"]));
    assert_eq!(used_by(&beta, "1.0.0"), json!(["link/incoming"]));
    assert_eq!(incoming("beta"), v1.as_str());
    // The next issue beta sends acme is processed by 1.1.0 (its history names it).
    let issue = api.ok(
        &beta,
        "POST",
        "/v1/issues",
        Some(json!({"summary": "after the switch", "status": "Open"})),
    );
    api.ok(
        &beta,
        "POST",
        "/v1/exalate",
        Some(json!({"connection": "link", "keys": [issue["key"]]})),
    );
    let processors = || -> Vec<String> {
        let twins = api.ok(&acme, "GET", "/v1/twins", None);
        let Some(key) = twins[0]["local_key"].as_str() else {
            return vec![];
        };
        api.ok(&acme, "GET", &format!("/v1/history?key={key}"), None)
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["processor"].as_str().map(str::to_string))
            .collect()
    };
    eventually(WAIT, "acme processes beta's issue", || {
        !processors().is_empty()
    });
    assert!(
        processors().iter().all(|p| p == "scripted-test@1.1.0"),
        "{:?}",
        processors()
    );

    // Rollback: back on 1.0.0. Upgrade: to the highest installed, 1.1.0 again.
    let rolled = api.ok(
        &acme,
        "POST",
        "/v1/plugins/rollback",
        Some(json!({"connection": "link", "side": "incoming"})),
    );
    assert_eq!(
        rolled["rolled_back"],
        json!([format!("link/incoming: {v1}")])
    );
    assert_eq!(incoming("acme"), v1.as_str());
    let upgraded = api.ok(
        &acme,
        "POST",
        "/v1/plugins/upgrade",
        Some(json!({"name": "scripted-test"})),
    );
    assert_eq!(upgraded["upgraded"], json!(["link/incoming"]));
    assert_eq!(incoming("acme"), "plugin:scripted-test@1.1.0");
    assert_eq!(incoming("beta"), v1.as_str());
    let changes = api.ok(&acme, "GET", "/v1/plugins/changes", None);
    let actions: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["use", "rollback", "upgrade"], "{changes}");
    assert_eq!(api.ok(&beta, "GET", "/v1/plugins/changes", None), json!([]));

    // Try: a package of the host's store on acme's own events; writes nothing.
    api.ok(
        &acme,
        "POST",
        "/v1/plugins/try",
        Some(json!({"plugin": "scripted-test@1.0.0", "connection": "link"})),
    );
    // Not installed, another tenant's connection, settings: refused, nothing changed.
    for (body, status) in [
        (
            json!({"plugin": "scripted-test@9.0.0", "connection": "link", "side": "incoming"}),
            404,
        ),
        (
            json!({"plugin": "scripted-test@1.0.0", "connection": "nope", "side": "incoming"}),
            404,
        ),
        (
            json!({"plugin": "scripted-test@1.0.0", "connection": "link", "side": "incoming",
                "settings": {"a": "b"}}),
            400,
        ),
    ] {
        let (got, answer) = api.call(&acme, "POST", "/v1/plugins/use", Some(body.clone()));
        assert_eq!(got, status, "{body}: {answer}");
    }
    assert_eq!(
        api.call(
            &acme,
            "POST",
            "/v1/plugins/upgrade",
            Some(json!({"name": "nothing"}))
        )
        .0,
        404
    );
    assert_eq!(incoming("acme"), "plugin:scripted-test@1.1.0");
    // The host's own view and store did not change.
    assert_eq!(api.ok(TOKEN, "GET", "/v1/plugins", None), host_view);
    assert_eq!(
        api.ok(TOKEN, "GET", "/v1/plugins/changes", None)
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["by"] == "tenant-api")
            .count(),
        0
    );
}

/// A tenant's tracker tells it which issues changed: `POST /t/NAME/v1/changes`, signed with
/// the tenant's own webhook secret like serve's `POST /v1/changes`.
#[test]
fn a_tenant_takes_change_notifications_signed_with_its_own_secret() {
    use twinsync::config::Secret;
    use twinsync::transport::protocol::sign;

    let dir = tempfile::tempdir().unwrap();
    let node = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    let api = Api::new(node.spec.admin_port);
    let mut acme = tenant_spec("acme", "Acme", "ACME", "link", "Beta", "mirror");
    acme["webhook-secret"] = json!("acme-hook");
    let token = api.add_tenant(acme);
    api.add_tenant(tenant_spec(
        "beta", "Beta", "BETA", "link", "Acme", "mirror",
    ));
    assert_eq!(
        api.ok(TOKEN, "GET", "/v1/tenants/acme", None)["spec"]["webhook-secret"],
        "(set)"
    );
    api.refused(
        TOKEN,
        "POST",
        "/v1/tenants",
        json!({"name": "x", "instance": "X", "webhook-secret": " "}),
        "the webhook secret is empty",
    );
    for summary in ["synced", "not synced"] {
        api.ok(
            &token,
            "POST",
            "/v1/issues",
            Some(json!({"summary": summary, "status": "Open"})),
        );
    }
    let exalated = api.ok(
        &token,
        "POST",
        "/v1/exalate",
        Some(json!({"connection": "link", "keys": ["ACME-1"]})),
    );
    assert_eq!(exalated["errors"], json!([]), "{exalated}");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let body = json!({"issues": ["ACME-1", "ACME-2", "ACME-99"]}).to_string();
    let post = |tenant: &str, secret: &str, id: &str| {
        let signature = sign(
            &Secret::new(secret),
            "POST",
            "/v1/changes",
            &now,
            id,
            body.as_bytes(),
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(&format!(
                "http://127.0.0.1:{}/t/{tenant}/v1/changes",
                node.spec.port
            ))
            .header("content-type", "application/json")
            .header("x-twinsync-message-id", id)
            .header("x-twinsync-timestamp", &now)
            .header("x-twinsync-signature", &signature)
            .send(body.as_bytes())
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response
                .body_mut()
                .read_json::<Value>()
                .unwrap_or(Value::Null),
        )
    };
    // Each issue's result: under sync (an event queued), not synced, not in its tracker.
    let (status, answer) = post("acme", "acme-hook", "n-1");
    assert_eq!(status, 200, "{answer}");
    let results: Vec<(&str, &str)> = answer["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap(), i["result"].as_str().unwrap()))
        .collect();
    assert_eq!(results.len(), 3, "{answer}");
    assert!(
        matches!(results[0], ("ACME-1", "queued" | "already-queued")),
        "{answer}"
    );
    assert_eq!(
        &results[1..],
        [("ACME-2", "not-synced"), ("ACME-99", "unknown")]
    );
    // A replay queues nothing; another secret, or a tenant without one, is refused.
    assert_eq!(
        post("acme", "acme-hook", "n-1"),
        (200, json!({"duplicate": true}))
    );
    assert_eq!(post("acme", "wrong", "n-2").0, 401);
    assert_eq!(post("acme", twinsync_tests::process::SECRET, "n-3").0, 401);
    assert_eq!(post("beta", "acme-hook", "n-4").0, 404);
    assert_eq!(post("nobody", "acme-hook", "n-5").0, 404);
}

/// A tenant's spec may carry quotas: past its events-per-second its events wait (none
/// fails), and its queue says which quota they wait for.
#[test]
fn a_tenant_past_its_events_quota_waits_and_its_queue_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    let api = Api::new(node.spec.admin_port);
    let linked = |name: &str, instance: &str, remote: &str| {
        json!({"name": name, "instance": instance,
            "connections": [{"name": "link", "remote-instance": remote}]})
    };
    let mut slow = linked("acme", "Acme", "Beta");
    slow["quota"] = json!({"events-per-second": 0});
    api.refused(
        TOKEN,
        "POST",
        "/v1/tenants",
        slow.clone(),
        "`events-per-second` must be more than 0",
    );
    // Two events at once, then one every half second.
    slow["quota"] = json!({"events-per-second": 2.0});
    let acme = api.add_tenant(slow);
    let beta = api.add_tenant(linked("beta", "Beta", "Acme"));

    const ISSUES: usize = 8;
    let keys: Vec<Value> = (0..ISSUES)
        .map(|i| {
            api.ok(
                &acme,
                "POST",
                "/v1/issues",
                Some(json!({"summary": format!("issue {i}"), "status": "Open"})),
            )["key"]
                .clone()
        })
        .collect();
    let started = std::time::Instant::now();
    let exalated = api.ok(
        &acme,
        "POST",
        "/v1/exalate",
        Some(json!({"connection": "link", "keys": keys})),
    );
    assert_eq!(exalated["errors"], json!([]), "{exalated}");
    eventually(WAIT, "acme's queue says it waits for its quota", || {
        let queue = api.ok(&acme, "GET", "/v1/queue", None);
        queue[0]["waiting_for_quota"] == "events per second" && queue[0]["pending"] != 0
    });
    let twins = |token: &str| {
        api.ok(token, "GET", "/v1/twins", None)
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["remote_key"].is_string() || t["local_key"].is_string())
            .count()
    };
    eventually(WAIT, "every issue reaches beta", || twins(&beta) == ISSUES);
    // 8 events at 2 a second (2 at once): the last one could not start before 3 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "took only {took:?}");
    // Nothing failed, and once through it waits for nothing.
    assert_eq!(api.ok(&acme, "GET", "/v1/errors", None), json!([]));
    eventually(WAIT, "acme's queue is empty and waits for nothing", || {
        let queue = api.ok(&acme, "GET", "/v1/queue", None);
        queue[0]["pending"] == 0 && queue[0]["waiting_for_quota"].is_null()
    });
    // The host token's queue (serve's own node) has no such field.
    let own = api.ok(TOKEN, "GET", "/v1/queue", None);
    assert!(!own.to_string().contains("waiting_for_quota"), "{own}");
}
