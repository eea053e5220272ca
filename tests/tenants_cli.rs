//! `twinsync tenants` and `--tenant NAME`, run as an operator would, beside a running
//! `twinsync serve` that applies the registry the commands write.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use twinsync_tests::cli::{fails, ok, run};
use twinsync_tests::process::{NodeProcess, TOKEN, eventually};
use twinsync_tests::tenants::{Api, serve};

const WAIT: Duration = Duration::from_secs(30);

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The subcommands `twinsync ARGS --help` lists.
fn commands(node: &NodeProcess, args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--help");
    let help = ok(node.command(&all));
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The token `tenants add` / `tenants token` printed (the last line).
fn token_in(text: &str) -> String {
    text.lines().last().unwrap().trim().to_string()
}

fn spec(dir: &Path, name: &str, instance: &str, project: &str, remote: &str) -> String {
    let path = dir.join(format!("{name}.json"));
    let spec = json!({
        "name": name,
        "instance": instance,
        "tracker": {"kind": "reference", "project": project},
        "connections": [{"name": "link", "remote-instance": remote, "secret": "hush-hush"}],
    });
    std::fs::write(&path, spec.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn tenants_are_managed_from_the_command_line_while_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    let api = Api::new(node.spec.admin_port);

    // Bad input: a clear error, nothing registered.
    let error = fails(node.command(&["tenants", "add", "../x", "--instance", "X"]));
    assert!(error.contains("use 1 to 64 letters"), "{error}");
    let error = fails(node.command(&["tenants", "add", "x", "--instance", "Host"]));
    assert!(error.contains("serving node's own"), "{error}");
    assert!(ok(node.command(&["tenants", "list"])).contains("no tenants"));

    // Two tenants connected to each other, added while serve runs.
    let acme = token_in(&ok(node.command(&[
        "tenants",
        "add",
        "--spec",
        &spec(dir.path(), "acme", "Acme", "ACME", "Beta"),
    ])));
    let beta = token_in(&ok(node.command(&[
        "tenants",
        "add",
        "--spec",
        &spec(dir.path(), "beta", "Beta", "BETA", "Acme"),
    ])));
    assert!(acme.len() >= 64, "{acme}");
    let error = fails(node.command(&[
        "tenants",
        "add",
        "--spec",
        &spec(dir.path(), "acme", "Other", "O", "Beta"),
    ]));
    assert!(error.contains("exists already"), "{error}");
    eventually(WAIT, "serve starts the tenants", || {
        api.call(&acme, "GET", "/v1/twins", None).0 == 200
            && api.call(&beta, "GET", "/v1/twins", None).0 == 200
    });
    let list = ok(node.command(&["tenants", "list"]));
    assert!(
        list.contains("acme") && list.contains("Beta") && list.contains("link"),
        "{list}"
    );
    let shown = ok(node.command(&["tenants", "show", "acme"]));
    assert!(
        !shown.contains("hush-hush") && !shown.contains(&acme),
        "{shown}"
    );
    assert_eq!(json_of(&shown)["spec"]["instance"], "Acme");

    // --tenant: the node commands act on that tenant's database only.
    let issue = api.ok(
        &acme,
        "POST",
        "/v1/issues",
        Some(json!({"summary": "from acme", "status": "Open"})),
    );
    assert_eq!(issue["key"], "ACME-1");
    let text = ok(node.command(&[
        "exalate",
        "--tenant",
        "acme",
        "--connection",
        "link",
        "ACME-1",
    ]));
    assert!(text.contains("exalated 1 of 1"), "{text}");
    eventually(WAIT, "the issue reaches beta", || {
        api.ok(&beta, "GET", "/v1/twins", None)
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    let twins = json_of(&ok(node.command(&["twins", "--tenant", "acme", "--json"])));
    assert_eq!(twins[0]["local_key"], "ACME-1", "{twins}");
    let twin = twins[0]["twin"].as_str().unwrap().to_string();
    let beta_twins = json_of(&ok(node.command(&["twins", "--tenant", "beta", "--json"])));
    assert_eq!(beta_twins[0]["local_key"], "BETA-1", "{beta_twins}");
    assert_eq!(
        json_of(&ok(node.command(&["twins", "--json"]))),
        json!([]),
        "serve's own node has no twin"
    );

    // Gamma, a third tenant, sees nothing of acme's (beta, acme's peer, has the same twin
    // and event ids: they name the same twin and message on both sides).
    ok(node.command(&[
        "tenants",
        "add",
        "gamma",
        "--instance",
        "Gamma",
        "--project",
        "GAM",
    ]));
    let events = json_of(&ok(
        node.command(&["events", "list", "--tenant", "acme", "--json"])
    ));
    let event = events[0]["id"].as_str().unwrap().to_string();
    ok(node.command(&["events", "show", "--tenant", "acme", &event]));
    let error = fails(node.command(&["events", "show", "--tenant", "gamma", &event]));
    assert!(error.contains(&event), "{error}");
    let history = ok(node.command(&["history", "--tenant", "acme", "ACME-1"]));
    assert!(history.contains(&twin), "{history}");
    // Every command that acts on a node, with `--tenant gamma`, on acme's objects: it fails
    // or shows nothing of acme's, and acme is as it was. The commands are read from
    // `--help`: one added later without a probe here fails the test.
    let acme_state = || {
        let twins = ok(node.command(&["twins", "--tenant", "acme", "--json"]));
        let events = json_of(&ok(
            node.command(&["events", "list", "--tenant", "acme", "--json"])
        ));
        let events: Vec<Value> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["id"], e["state"]]))
            .collect();
        (twins, events)
    };
    let before = acme_state();
    // (The key ACME-1 is what the caller gave: an answer may repeat it.)
    let acme_ids = [twin.clone(), event.clone()];
    for command in commands(&node, &[]) {
        let subcommands = match command.as_str() {
            // Not on a node's database: the host's, or no node at all.
            "demo" | "serve" | "init" | "plugin" | "tenants" | "help" => continue,
            "errors" | "events" | "conflicts" => commands(&node, &[&command]),
            _ => vec![String::new()],
        };
        for sub in subcommands {
            let probe: Vec<&str> = match (command.as_str(), sub.as_str()) {
                ("exalate" | "unexalate", "") => vec!["--connection", "link", "ACME-1"],
                ("queue" | "twins", "") => vec!["--json"],
                ("history", "") => vec!["ACME-1"],
                ("verify", "") => vec!["--connection", "link"],
                ("errors" | "conflicts", "list") | ("events", "list") => vec!["--json"],
                ("errors" | "events", "show") | ("errors", "skip") | ("events", "replay") => {
                    vec![&event]
                }
                ("errors", "retry") => vec![&event],
                ("conflicts", "resolve") => vec!["1", "--take", "local"],
                (_, "help") => continue,
                _ => panic!(
                    "no probe for `twinsync {command} {sub}`: add one to tests/tenants_cli.rs"
                ),
            };
            let mut args: Vec<&str> = vec![&command];
            if !sub.is_empty() {
                args.push(&sub);
            }
            args.extend(["--tenant", "gamma"]);
            args.extend(probe);
            let output = run(&mut node.command(&args));
            let text = String::from_utf8_lossy(&output.stdout);
            if output.status.success() {
                for id in &acme_ids {
                    assert!(!text.contains(id.as_str()), "{args:?} shows {id}: {text}");
                }
            }
        }
    }
    assert_eq!(acme_state(), before, "gamma's commands changed acme");
    let queue = json_of(&ok(node.command(&["queue", "--tenant", "acme", "--json"])));
    assert_eq!(queue[0]["connection"], "link", "{queue}");
    assert_eq!(
        json_of(&ok(
            node.command(&["errors", "list", "--tenant", "acme", "--json"])
        )),
        json!([])
    );
    assert_eq!(
        json_of(&ok(node.command(&[
            "conflicts",
            "list",
            "--tenant",
            "acme",
            "--json"
        ]))),
        json!([])
    );
    let verified = json_of(&ok(node.command(&["verify", "--tenant", "acme", "--json"])));
    assert!(
        verified["checked"].as_u64().unwrap() + verified["busy"].as_u64().unwrap() >= 1,
        "{verified}"
    );
    // Beta cannot unexalate acme's issue: it has no such issue under sync.
    fails(node.command(&[
        "unexalate",
        "--tenant",
        "beta",
        "--connection",
        "link",
        "ACME-1",
    ]));
    ok(node.command(&[
        "unexalate",
        "--tenant",
        "acme",
        "--connection",
        "link",
        "ACME-1",
    ]));
    let error = fails(node.command(&["queue", "--tenant", "nope"]));
    assert!(error.contains("no tenant `nope`"), "{error}");
    assert!(
        !node.dir.join("data/tenants/nope").exists(),
        "a typo makes no directory"
    );

    // A new token: the old one is refused once serve has applied it.
    let new = token_in(&ok(node.command(&["tenants", "token", "acme"])));
    eventually(WAIT, "the old token is refused", || {
        api.call(&acme, "GET", "/v1/twins", None).0 == 401
    });
    api.ok(&new, "GET", "/v1/twins", None);

    // Changed: serve restarts it with the new spec (a second connection).
    let changed = dir.path().join("acme2.json");
    let mut spec2: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("acme.json")).unwrap())
            .unwrap();
    spec2["connections"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "other", "remote-instance": "Nobody"}));
    std::fs::write(&changed, spec2.to_string()).unwrap();
    let text = ok(node.command(&["tenants", "change", "--spec", changed.to_str().unwrap()]));
    assert!(text.contains("revision 2"), "{text}");
    eventually(WAIT, "acme runs with both connections", || {
        let (status, answer) = api.call(
            &new,
            "POST",
            "/v1/verify",
            Some(json!({"connection": "other"})),
        );
        status == 200 && answer["checked"] == 0
    });
    assert_eq!(
        api.ok(TOKEN, "GET", "/v1/tenants/acme", None)["revision"],
        2
    );

    // Removed: serve stops it, its token is refused; its data stays.
    ok(node.command(&["tenants", "remove", "acme"]));
    eventually(WAIT, "acme is stopped", || {
        api.call(&new, "GET", "/v1/twins", None).0 == 401
    });
    assert!(fails(node.command(&["tenants", "remove", "acme"])).contains("no tenant `acme`"));
    // On PostgreSQL its state is in schema `tenant_acme` (which nothing drops), and the
    // registry too: no file of either.
    let files = [
        node.dir.join("data/tenants/acme/twinsync.db"),
        node.dir.join("data/tenants.db"),
    ];
    let on_postgres = twinsync_tests::store::on_postgres();
    for file in files {
        assert_eq!(file.exists(), !on_postgres, "{}", file.display());
    }
    api.ok(&beta, "GET", "/v1/twins", None);
}
