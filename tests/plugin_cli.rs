//! The plugin lifecycle from the command line, next to two running `twinsync serve`
//! processes: a package is made with `plugin pack`, installed and used on External while
//! it runs, tried, and every step shows in the admin API.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use twinsync::runtime::CONTRACT_VERSION;
use twinsync_tests::cli::{fails, ok, run};
use twinsync_tests::process::{NodeProcess, eventually, pair};
use twinsync_tests::twinsync;

const WAIT: Duration = Duration::from_secs(30);

/// Package a built-in processor as `acme-sync` at `version` with `plugin pack`.
fn pack(dir: &Path, builtin: &str, version: &str) -> String {
    let component = dir.join(format!("{builtin}.wasm"));
    std::fs::write(&component, twinsync::builtin::get(builtin).unwrap()).unwrap();
    let manifest = dir.join(format!("plugin-{version}.toml"));
    std::fs::write(
        &manifest,
        format!(
            "name = \"acme-sync\"\nvendor = \"Acme\"\nversion = \"{version}\"\n\
             description = \"test\"\ncontract = \"{CONTRACT_VERSION}\"\n\
             worlds = [\"incoming-processor\", \"outgoing-processor\"]\n\
             homepage = \"https://example.invalid/acme\"\n[limits]\nfuel = 50000000\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("acme-sync-{version}.wasm"));
    let text = ok(twinsync!(&[
        "plugin",
        "pack",
        component.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]));
    assert!(
        text.contains("package: acme-sync@1") || text.contains("package: acme-sync@2"),
        "{text}"
    );
    out.to_str().unwrap().to_string()
}

/// A `plugin` command on `node`'s configuration.
fn on(node: &NodeProcess, args: &[&str]) -> String {
    let mut all = vec!["plugin"];
    all.extend_from_slice(args);
    ok(node.command(&all))
}

/// A change to `node`'s plugin store, made by "tester".
fn change(node: &NodeProcess, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--by", "tester"]);
    on(node, &all)
}

fn exalate(internal: &NodeProcess, summary: &str) -> String {
    let (status, created) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": summary, "status": "Open"}),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let (status, answer) = internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    assert_eq!(status, 200, "{answer}");
    key
}

/// The plugin of the incoming event that created `summary`'s issue on External.
fn plugin_of_issue(external: &NodeProcess, summary: &str, any_package: &str) -> Value {
    eventually(WAIT, "External processed the issue", || {
        let twins = external.get("/v1/twins");
        twins.as_array().unwrap().iter().any(|t| {
            t["local_key"]
                .as_str()
                .and_then(|key| external.issue(key))
                .is_some_and(|issue| issue["summary"] == summary)
        })
    });
    // The newest incoming event of the connection is the one (`try` lists the newest
    // first, and shows which plugin is live: not what ran the event, so ask the API).
    let output = on(
        external,
        &[
            "try",
            any_package,
            "--connection",
            "internal-external",
            "--last",
            "3",
            "--json",
        ],
    );
    let trial: Value = serde_json::from_str(&output).unwrap();
    let event = trial["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["direction"] == "incoming")
        .expect("an incoming event")["event"]
        .as_str()
        .unwrap()
        .to_string();
    external.get(&format!("/v1/events/{event}"))["plugin"].clone()
}

#[test]
fn a_package_is_installed_used_and_tried_while_the_node_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = pair(twinsync_tests::twinsync_binary!(), dir.path(), "mirror");
    let v1 = pack(dir.path(), "mirror", "1.0.0");
    let v2 = pack(dir.path(), "remote-key", "2.0.0");

    // inspect shows the manifest.
    let text = ok(twinsync!(&["plugin", "inspect", &v1]));
    assert!(text.contains("package: acme-sync@1.0.0 by Acme"), "{text}");
    assert!(text.contains("asks for: fuel 50000000"), "{text}");
    let text = ok(twinsync!(&["plugin", "inspect", &v2, "--json"]));
    let info: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(info["manifest"]["version"], "2.0.0");

    // Installed and used on the running External.
    let text = change(&external, &["install", &v1]);
    assert!(text.contains("acme-sync@1.0.0 installed"), "{text}");
    change(
        &external,
        &[
            "use",
            "acme-sync@1.0.0",
            "--connection",
            "internal-external",
            "--side",
            "incoming",
        ],
    );
    // Give the running node its next look at the store (every 250 ms).
    std::thread::sleep(Duration::from_millis(600));
    exalate(&internal, "First with v1");
    let plugin = plugin_of_issue(&external, "First with v1", &v1);
    assert_eq!(plugin["name"], "acme-sync", "{plugin}");
    assert_eq!(plugin["version"], "1.0.0", "{plugin}");

    // v2 tried on what External recorded: it would set the remote key.
    change(&external, &["install", &v2]);
    let output = on(
        &external,
        &[
            "try",
            "acme-sync@2.0.0",
            "--connection",
            "internal-external",
            "--json",
        ],
    );
    let trial: Value = serde_json::from_str(&output).unwrap();
    let incoming: Vec<&Value> = trial["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["direction"] == "incoming")
        .collect();
    assert!(!incoming.is_empty(), "{trial:#}");
    assert_eq!(
        incoming[0]["changes"][0]["field"], "custom-field:remote issue key",
        "{trial:#}"
    );
    // The same through the admin API.
    let (status, api_trial) = external.send(
        "POST",
        "/v1/plugins/try",
        json!({"plugin": "acme-sync@2.0.0", "connection": "internal-external", "last": 5}),
    );
    assert_eq!(status, 200, "{api_trial}");
    assert_eq!(api_trial["changed"], trial["changed"]);

    // Switched through the admin API; the next issue runs with v2, without a restart.
    let (status, answer) = external.send(
        "POST",
        "/v1/plugins/use",
        json!({"plugin": "acme-sync@2.0.0", "connection": "internal-external", "side": "incoming"}),
    );
    assert_eq!(status, 200, "{answer}");
    std::thread::sleep(Duration::from_millis(600));
    exalate(&internal, "Second with v2");
    assert_eq!(
        plugin_of_issue(&external, "Second with v2", &v1)["version"],
        "2.0.0"
    );

    // Rolled back from the CLI.
    let text = change(
        &external,
        &["rollback", "--connection", "internal-external"],
    );
    assert!(text.contains("acme-sync@1.0.0"), "{text}");
    std::thread::sleep(Duration::from_millis(600));
    exalate(&internal, "Third with v1 again");
    assert_eq!(
        plugin_of_issue(&external, "Third with v1 again", &v1)["version"],
        "1.0.0"
    );

    // The list and the history, from the CLI and the admin API.
    let list: Value = serde_json::from_str(&on(&external, &["list", "--json"])).unwrap();
    assert_eq!(list[0]["used_by"], json!(["internal-external/incoming"]));
    assert_eq!(list[1]["used_by"], json!([]));
    let changes = external.get("/v1/plugins/changes");
    let actions: Vec<(&str, &str)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["action"].as_str().unwrap(), c["by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("install", "tester"),
            ("use", "tester"),
            ("install", "tester"),
            ("use", "admin-api"),
            ("rollback", "tester"),
        ]
    );
    let text = on(&external, &["history"]);
    assert!(
        text.contains(
            "tester  rollback acme-sync@1.0.0 on internal-external/incoming (was acme-sync@2.0.0)"
        ),
        "{text}"
    );
    // In use: not removed.
    let refused = fails(external.command(&["plugin", "remove", "acme-sync@1.0.0"]));
    assert!(refused.contains("in use"), "{refused}");
    drop(internal);
}

#[test]
fn check_compiles_a_component_once_then_takes_it_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.wasm");
    std::fs::write(&file, twinsync::builtin::MIRROR).unwrap();
    let check = || check_compiled(&file, &dir.path().join("cache"));
    assert_eq!(check(), "cached", "compiled and written to the cache");
    assert_eq!(check(), "from-cache");
    assert!(dir.path().join("cache").read_dir().unwrap().count() > 0);
}

/// `plugin check FILE --json`'s `compiled`: `cached` (compiled now, and written to the
/// cache) or `from-cache`.
fn check_compiled(file: &std::path::Path, cache: &std::path::Path) -> String {
    let report = ok(
        twinsync!(&["plugin", "check", file.to_str().unwrap(), "--json"])
            .env("TWINSYNC_CACHE_DIR", cache),
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    report["compiled"].as_str().unwrap().to_string()
}

/// `plugin inspect` and `demo` compile through the same cache as `plugin check`: after
/// either ran once on a fresh cache, `check` finds the component compiled (a Python or
/// JavaScript component is not compiled again, 25-45 s, per command).
#[test]
fn inspect_and_demo_compile_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote-key.wasm");
    std::fs::write(&file, twinsync::builtin::REMOTE_KEY).unwrap();
    let command = |args: &[&str], cache: &str| {
        ok(twinsync!(args).env("TWINSYNC_CACHE_DIR", dir.path().join(cache)))
    };
    command(
        &["plugin", "inspect", file.to_str().unwrap()],
        "after-inspect",
    );
    assert_eq!(
        check_compiled(&file, &dir.path().join("after-inspect")),
        "from-cache"
    );
    let data = dir.path().join("demo");
    command(
        &[
            "demo",
            "--processor",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        "after-demo",
    );
    assert_eq!(
        check_compiled(&file, &dir.path().join("after-demo")),
        "from-cache"
    );
    // And a cache nothing wrote to has nothing: the two above are not a given.
    assert_eq!(check_compiled(&file, &dir.path().join("fresh")), "cached");
}

#[test]
fn inspect_lists_what_a_refused_component_imports_and_which_flag_removes_wasi_http() {
    let output = run(&mut twinsync!(&[
        "plugin",
        "inspect",
        twinsync_tests::HTTP_IMPORTER
    ]));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("imports:"), "{stdout}");
    assert!(stdout.contains("  wasi:http/"), "{stdout}");
    assert!(
        stdout.contains(&format!("  twinsync:processor/incoming@{CONTRACT_VERSION}")),
        "{stdout}"
    );
    assert!(stderr.contains("this host will not run it"), "{stderr}");
    assert!(stderr.contains("--disable http fetch-event"), "{stderr}");
}
