//! The plugin lifecycle on a node: install v1 of a package, run events with it, install
//! v2, try it on the recorded events (the difference shows what v2 changes, and nothing is
//! written), switch to it, roll back; each event names the version that processed it.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use twinsync::plugins::manifest::{self, AskedLimits, Manifest};
use twinsync::plugins::store::{self, Side as PluginSide};
use twinsync::plugins::trial::Pick;
use twinsync::plugins::{Library, manage};
use twinsync::runtime::PluginIdentity;
use twinsync::store::events::{self, Kind};
use twinsync::tracker::Tracker;
use twinsync_tests::trackers::Hooked;
use twinsync_tests::*;

/// `acme-sync` at `version`: the bytes of a built-in processor with a manifest inside.
fn package(builtin: &str, version: &str) -> Vec<u8> {
    package_of(twinsync::builtin::get(builtin).unwrap(), version)
}

/// `acme-sync` at `version`: `wasm` with a manifest inside.
fn package_of(wasm: &[u8], version: &str) -> Vec<u8> {
    let manifest = Manifest {
        name: "acme-sync".into(),
        vendor: "Acme".into(),
        version: version.into(),
        description: "test package".into(),
        contract: twinsync::runtime::CONTRACT_VERSION.into(),
        worlds: vec!["incoming-processor".into(), "outgoing-processor".into()],
        limits: AskedLimits::default(),
        homepage: Some("https://example.invalid/acme".into()),
        settings: Default::default(),
    };
    manifest::pack(wasm, &manifest).unwrap()
}

/// The plugin that processed the last incoming event on External.
fn last_incoming_plugin(pair: &Pair) -> PluginIdentity {
    let store = pair.external.node.store();
    let event = store
        .read(|db| events::recent_of_connection(db, CONNECTION, 10))
        .unwrap()
        .into_iter()
        .find(|e| e.kind == Kind::Incoming)
        .expect("an incoming event");
    store
        .read(|db| store::event_plugin(db, &event.id))
        .unwrap()
        .expect("the event records its plugin")
}

fn change_summary(pair: &Pair, key: &str, summary: &str) {
    edit(&pair.internal, key, |issue| issue.summary = summary.into());
    pair.internal.node.poll_changes().unwrap();
    pair.run();
}

#[test]
fn install_try_use_and_roll_back_with_the_version_recorded_on_every_event() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let node = &pair.external.node;
    let dir = tempfile::tempdir().unwrap();
    node.attach_plugins(Arc::new(Library::new(
        dir.path().join("plugins"),
        runtime(),
    )))
    .unwrap();

    // v1 (a mirror) runs External's incoming side.
    let v1 = manage::install(node, "acme-1.wasm", &package("mirror", "1.0.0"), "alice").unwrap();
    assert!(v1.new);
    assert_eq!(v1.dry_runs.len(), 2);
    manage::use_version(
        node,
        CONNECTION,
        PluginSide::Incoming,
        "acme-sync",
        "1.0.0",
        &Default::default(),
        "alice",
    )
    .unwrap();
    assert!(node.refresh_plugins().unwrap());
    let (key, twin) = pair.create_and_exalate(issue("Printer on fire"));
    pair.run();
    change_summary(&pair, &key, "Printer on fire, again");
    let by_v1 = last_incoming_plugin(&pair);
    assert_eq!(
        (by_v1.name.as_str(), by_v1.version.as_deref()),
        ("acme-sync", Some("1.0.0"))
    );
    assert_eq!(by_v1.sha256, v1.sha256);
    let external = pair.external_issue(&twin).unwrap();
    assert_eq!(external.custom_text("remote issue key"), None);

    // v2 (stores the remote key) is installed; nothing changes until it is used.
    let v2 = manage::install(node, "acme-2.wasm", &package("remote-key", "2.0.0"), "bob").unwrap();
    assert!(
        !node.refresh_plugins().unwrap(),
        "installing switches nothing"
    );

    // Trying v2 on the recorded events shows the field it would set, and writes nothing.
    let before = snapshot(&pair);
    let candidate = manage::load(node, "acme-sync", "2.0.0").unwrap();
    let trial = node
        .try_plugin(&candidate, CONNECTION, &Pick::Last(50))
        .unwrap();
    assert_eq!(trial.candidate, "acme-sync@2.0.0");
    let incoming: Vec<_> = trial
        .events
        .iter()
        .filter(|e| e.direction == Kind::Incoming)
        .collect();
    assert_eq!(incoming.len(), 2, "{trial:#?}");
    for tried in &incoming {
        assert_eq!(tried.live_plugin, "acme-sync@1.0.0");
        assert!(!tried.new_error, "{tried:#?}");
        let fields: Vec<&str> = tried.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["custom-field:remote issue key"], "{tried:#?}");
        assert_eq!(tried.changes[0].live, serde_json::Value::Null);
        assert_eq!(tried.changes[0].candidate["value"], key.as_str());
        assert!(tried.candidate.fuel_used > 0);
    }
    assert_eq!(trial.changed, 2);
    assert_eq!(snapshot(&pair), before, "a trial writes nothing");
    // Only the connection's own events, and only those asked for.
    let one = incoming[0].event.clone();
    let trial = node
        .try_plugin(&candidate, CONNECTION, &Pick::Events(vec![one.clone()]))
        .unwrap();
    assert_eq!(trial.events.len(), 1);
    assert!(node.try_plugin(&candidate, "nope", &Pick::Last(5)).is_err());

    // Switch to v2: the next event runs with it.
    manage::use_version(
        node,
        CONNECTION,
        PluginSide::Incoming,
        "acme-sync",
        "2.0.0",
        &Default::default(),
        "carol",
    )
    .unwrap();
    assert!(node.refresh_plugins().unwrap());
    change_summary(&pair, &key, "Printer fixed");
    let by_v2 = last_incoming_plugin(&pair);
    assert_eq!(by_v2.version.as_deref(), Some("2.0.0"));
    assert_eq!(by_v2.sha256, v2.sha256);
    let external = pair.external_issue(&twin).unwrap();
    assert_eq!(external.custom_text("remote issue key"), Some(key.as_str()));

    // v2 is in use: it cannot be removed.
    let refused = manage::remove(node, "acme-sync", "2.0.0", "dave").unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("in use by internal-external/incoming"),
        "{refused}"
    );

    // Roll back: v1 again.
    let done = manage::rollback(node, CONNECTION, None, "erin").unwrap();
    assert_eq!(done, ["internal-external/incoming: acme-sync@1.0.0"]);
    assert!(node.refresh_plugins().unwrap());
    change_summary(&pair, &key, "Printer fixed for good");
    assert_eq!(
        last_incoming_plugin(&pair).version.as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        pair.external_issue(&twin).unwrap().summary,
        "Printer fixed for good"
    );

    // Every change, with who made it.
    let history: Vec<(String, String, Option<String>)> = node
        .store()
        .read(|db| store::changes(db))
        .unwrap()
        .into_iter()
        .map(|c| (c.action, c.by, c.version))
        .collect();
    let expected = [
        ("install", "alice", "1.0.0"),
        ("use", "alice", "1.0.0"),
        ("install", "bob", "2.0.0"),
        ("use", "carol", "2.0.0"),
        ("rollback", "erin", "1.0.0"),
    ];
    assert_eq!(history.len(), expected.len(), "{history:?}");
    for ((action, by, version), (a, b, v)) in history.iter().zip(expected) {
        assert_eq!(
            (action.as_str(), by.as_str(), version.as_deref()),
            (a, b, Some(v))
        );
    }

    // v2 is no longer used: it can go, and its file with it.
    manage::remove(node, "acme-sync", "2.0.0", "dave").unwrap();
    assert!(
        !dir.path()
            .join(format!("plugins/{}.wasm", v2.sha256))
            .exists()
    );
    assert!(manage::load(node, "acme-sync", "2.0.0").is_err());
}

/// An event whose processor is already running when `plugin use` switches the version
/// finishes with the version it started with, and records that one (name, version, hash);
/// the next event gets the new version.
#[test]
fn an_event_in_flight_finishes_with_the_version_it_started_with() {
    let mut pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    // External's tracker holds the first sync write until the test lets it go: the event
    // has run its processor then, and has not finished.
    let (entered, wait_entered) = mpsc::channel();
    let (let_go, gate) = mpsc::channel::<()>();
    let (entered, gate) = (Mutex::new(Some(entered)), Mutex::new(gate));
    let gated = Hooked::new(pair.external.tracker.clone()).before(move |call, _| {
        if call.is_write()
            && let Some(entered) = entered.lock().unwrap().take()
        {
            entered.send(()).unwrap();
            gate.lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60))
                .expect("the test lets the write go");
        }
        Ok(())
    });
    pair.replace_external_tracker(Arc::new(gated));
    let node = &pair.external.node;
    let dir = tempfile::tempdir().unwrap();
    node.attach_plugins(Arc::new(Library::new(
        dir.path().join("plugins"),
        runtime(),
    )))
    .unwrap();
    // v1 is `scripted` (a mirror that tells it slept when the issue asks it to), v2 stores
    // the remote key.
    let scripted = processor_wasm("scripted").unwrap();
    let v1 = manage::install(node, "acme-1.wasm", &package_of(&scripted, "1.0.0"), "a").unwrap();
    let v2 = manage::install(node, "acme-2.wasm", &package("remote-key", "2.0.0"), "b").unwrap();
    let use_version = |version: &str| {
        manage::use_version(
            node,
            CONNECTION,
            PluginSide::Incoming,
            "acme-sync",
            version,
            &Default::default(),
            "carol",
        )
        .unwrap()
    };
    use_version("1.0.0");
    assert!(node.refresh_plugins().unwrap());

    let (key, twin) = pair.create_and_exalate(scripted_issue("Slow", "sleep-briefly"));
    assert_eq!(pair.internal.node.process_ready(10).unwrap().done, 1);
    pair.network.deliver().unwrap();
    let (event, in_flight_after_switch) = std::thread::scope(|scope| {
        let processing = scope.spawn(|| node.process_ready(10).unwrap());
        wait_entered
            .recv_timeout(Duration::from_secs(60))
            .expect("the event reaches the tracker");
        let (event, running) = node
            .running_plugins()
            .into_iter()
            .next()
            .expect("the event is running");
        assert_eq!(running.version.as_deref(), Some("1.0.0"));
        // Switch to v2 while the event is between its processor and its commit.
        use_version("2.0.0");
        assert!(node.refresh_plugins().unwrap());
        let in_flight = node.running_plugins().iter().any(|(id, _)| *id == event);
        let_go.send(()).unwrap();
        assert_eq!(processing.join().unwrap().done, 1);
        (event, in_flight)
    });
    assert!(
        in_flight_after_switch,
        "the switch was over before the event finished"
    );
    let recorded = node
        .store()
        .read(|db| store::event_plugin(db, &event))
        .unwrap()
        .expect("the event records its plugin");
    assert_eq!(
        (recorded.name.as_str(), recorded.version.as_deref()),
        ("acme-sync", Some("1.0.0"))
    );
    assert_eq!(recorded.sha256, v1.sha256);
    let external = pair.external_issue(&twin).unwrap();
    let description = external.description.clone().unwrap_or_default();
    assert!(
        description.starts_with("slept "),
        "v1's result: {description}"
    );
    assert_eq!(external.custom_text("remote issue key"), None);

    // The next event runs with v2.
    pair.run();
    change_summary(&pair, &key, "Still slow");
    let by_v2 = last_incoming_plugin(&pair);
    assert_eq!(by_v2.version.as_deref(), Some("2.0.0"));
    assert_eq!(by_v2.sha256, v2.sha256);
    let external = pair.external_issue(&twin).unwrap();
    assert_eq!(external.custom_text("remote issue key"), Some(key.as_str()));
}

#[test]
fn a_version_never_changes_and_a_bare_component_is_not_a_package() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let node = &pair.external.node;
    let dir = tempfile::tempdir().unwrap();
    node.attach_plugins(Arc::new(Library::new(dir.path().to_path_buf(), runtime())))
        .unwrap();
    manage::install(node, "a.wasm", &package("mirror", "1.0.0"), "alice").unwrap();
    let again = manage::install(node, "a.wasm", &package("mirror", "1.0.0"), "alice").unwrap();
    assert!(!again.new);
    let other = manage::install(node, "b.wasm", &package("remote-key", "1.0.0"), "alice")
        .unwrap_err()
        .to_string();
    assert!(
        other.contains("installed already with other content"),
        "{other}"
    );
    let bare = manage::install(node, "mirror.wasm", twinsync::builtin::MIRROR, "alice")
        .unwrap_err()
        .to_string();
    assert!(bare.contains("plugin pack"), "{bare}");
    // Unknown connection, unknown version.
    assert!(
        manage::use_version(
            node,
            "nope",
            PluginSide::Incoming,
            "acme-sync",
            "1.0.0",
            &Default::default(),
            "a"
        )
        .is_err()
    );
    assert!(
        manage::use_version(
            node,
            CONNECTION,
            PluginSide::Incoming,
            "acme-sync",
            "9.0.0",
            &Default::default(),
            "a"
        )
        .is_err()
    );
}

#[test]
fn a_package_asking_for_more_than_the_connection_allows_is_not_used() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let node = &pair.external.node;
    let dir = tempfile::tempdir().unwrap();
    node.attach_plugins(Arc::new(Library::new(dir.path().to_path_buf(), runtime())))
        .unwrap();
    let mut manifest = manifest::read(&package("mirror", "1.0.0"))
        .unwrap()
        .unwrap();
    manifest.limits.timeout_ms = Some(60_000);
    let wasm = manifest::pack(twinsync::builtin::MIRROR, &manifest).unwrap();
    manage::install(node, "greedy.wasm", &wasm, "alice").unwrap();
    let error = manage::use_version(
        node,
        CONNECTION,
        PluginSide::Incoming,
        "acme-sync",
        "1.0.0",
        &Default::default(),
        "a",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("timeout-ms 60000 (the connection allows 2000)"),
        "{error}"
    );
}

#[test]
fn a_store_file_changed_on_disk_is_refused() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let node = &pair.external.node;
    let dir = tempfile::tempdir().unwrap();
    let library = Arc::new(Library::new(dir.path().to_path_buf(), runtime()));
    let installed = manage::install(node, "a.wasm", &package("mirror", "1.0.0"), "a");
    assert!(installed.is_err(), "no store attached yet");
    node.attach_plugins(library).unwrap();
    let installed = manage::install(node, "a.wasm", &package("mirror", "1.0.0"), "a").unwrap();
    std::fs::write(
        dir.path().join(format!("{}.wasm", installed.sha256)),
        package("remote-key", "1.0.0"),
    )
    .unwrap();
    // A fresh library (a restarted node) reads the file again.
    let fresh = Library::new(dir.path().to_path_buf(), runtime());
    let error = fresh
        .load(&installed.sha256, "acme-sync@1.0.0")
        .unwrap_err();
    assert!(error.to_string().contains("was changed on disk"), "{error}");
}

/// Everything a trial must not touch: both trackers' issues, both queues, both outboxes.
fn snapshot(pair: &Pair) -> String {
    let mut out = String::new();
    for node in [&pair.internal, &pair.external] {
        let all = node.node.store().read(|db| events::all(db)).unwrap();
        for e in all {
            out.push_str(&format!(
                "{} {:?} {:?} {:?}\n",
                e.id, e.state, e.attempts, e.note
            ));
        }
        out.push_str(&format!(
            "{:?}\n",
            node.node.outbox(CONNECTION, 100).unwrap().len()
        ));
        let changes = node.tracker.changes(None, 1000).unwrap();
        out.push_str(&format!("{}\n", changes.changes.len()));
    }
    out
}
