//! Several `twinsync serve` processes of one node on PostgreSQL (`[store] url`), one of them
//! killed (SIGKILL) at random every second while issues change: nothing is lost, nothing is
//! applied twice, every twin's messages arrive in order, and both sides end equal.
//!
//! Internal runs as three processes sharing its store and its tracker (both PostgreSQL);
//! External is one process on SQLite. `TWINSYNC_WORKER_KILLS` sets the number of kills
//! (default 100, about two minutes).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use twinsync::model::Issue;
use twinsync::tracker::{Origin, PostgresTracker, Tracker};
use twinsync_tests::process::{NodeProcess, NodeSpec, SECRET, TOKEN, free_port};
use twinsync_tests::{issue, postgres};

const CONNECTION: &str = "internal-external";
const ISSUES: usize = 40;

fn kills() -> usize {
    std::env::var("TWINSYNC_WORKER_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

fn spec(instance: &'static str, port: u16, admin_port: u16, remote_port: u16) -> NodeSpec {
    NodeSpec {
        instance,
        project: "",
        remote: "",
        port,
        admin_port,
        remote_port,
        processor: "mirror",
        extra: "",
    }
}

/// A process of Internal: its own data directory and ports, the shared store and tracker.
fn internal_config(n: usize, spec: &NodeSpec, store: &str, tracker: &str) -> String {
    format!(
        r#"instance = "Internal"
data-dir = "data-{n}"
log-level = "info"
workers = 2
listen = "127.0.0.1:{port}"

[admin]
listen = "127.0.0.1:{admin}"
token = "{TOKEN}"

[store]
url = "{store}"

[tracker]
kind = "reference"
project = "INT"
postgres-url = "{tracker}"

[[connection]]
name = "{CONNECTION}"
remote-instance = "External"
remote-url = "http://127.0.0.1:{remote}"
incoming = "mirror"
outgoing = "mirror"
secret = "{SECRET}"
"#,
        port = spec.port,
        admin = spec.admin_port,
        remote = spec.remote_port,
    )
}

fn external_config(spec: &NodeSpec) -> String {
    format!(
        r#"instance = "External"
data-dir = "data"
log-level = "info"
workers = 2
listen = "127.0.0.1:{port}"

[admin]
listen = "127.0.0.1:{admin}"
token = "{TOKEN}"

[tracker]
kind = "reference"
project = "EXT"

[[connection]]
name = "{CONNECTION}"
remote-instance = "Internal"
remote-url = "http://127.0.0.1:{remote}"
incoming = "mirror"
outgoing = "mirror"
secret = "{SECRET}"
"#,
        port = spec.port,
        admin = spec.admin_port,
        remote = spec.remote_port,
    )
}

/// Any process of `workers` that answers.
fn any_running(workers: &[NodeProcess]) -> &NodeProcess {
    workers
        .iter()
        .find(|w| w.pid().is_some())
        .expect("a running worker")
}

#[test]
fn three_workers_of_one_node_survive_kill_9_every_second() {
    let (Some(store), Some(tracker_db)) = (postgres::database(), postgres::database()) else {
        return;
    };
    let binary = twinsync_tests::twinsync_binary!();
    let dir = tempfile::tempdir().unwrap();
    let external_port = free_port();

    // External first: Internal's senders have somewhere to send to.
    let internal_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let external_spec = spec("External", external_port, free_port(), internal_ports[0]);
    let text = external_config(&external_spec);
    let external =
        NodeProcess::start_with_config(binary, &dir.path().join("external"), external_spec, &text);
    let mut workers: Vec<NodeProcess> = internal_ports
        .iter()
        .enumerate()
        .map(|(n, port)| {
            let spec = spec("Internal", *port, free_port(), external_port);
            let text = internal_config(n, &spec, &store, &tracker_db);
            NodeProcess::start_with_config(
                binary,
                &dir.path().join(format!("internal-{n}")),
                spec,
                &text,
            )
        })
        .collect();

    // The issues, exalated through one worker's admin API (any would do).
    let tracker = PostgresTracker::connect(&tracker_db, "INT").unwrap();
    let keys: Vec<String> = (0..ISSUES)
        .map(|i| {
            let created = tracker
                .create(&issue(&format!("issue {i} v0")), Origin::User)
                .unwrap();
            created.key.unwrap()
        })
        .collect();
    let (status, body) = workers[0].send(
        "POST",
        "/v1/exalate",
        json!({"connection": CONNECTION, "keys": keys}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"], json!([]), "{body}");

    // People edit the issues (every edit a new version of its summary) while a random
    // worker is killed and restarted every second.
    let stop = Arc::new(AtomicBool::new(false));
    let editor = {
        let (stop, keys, tracker_db) = (stop.clone(), keys.clone(), tracker_db.clone());
        std::thread::spawn(move || {
            let tracker = PostgresTracker::connect(&tracker_db, "INT").unwrap();
            let mut versions: BTreeMap<String, u64> = BTreeMap::new();
            let mut n = 0_usize;
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[(n * 7919) % keys.len()];
                n += 1;
                let version = versions.entry(key.clone()).or_default();
                *version += 1;
                let mut edited: Issue = tracker.get(key).unwrap().unwrap();
                edited.summary =
                    format!("{} v{version}", edited.summary.split(" v").next().unwrap());
                tracker.update(&edited, Origin::User).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    let started = Instant::now();
    let mut random = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..kills() {
        std::thread::sleep(Duration::from_secs(1));
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let victim = &mut workers[(random % 3) as usize];
        victim.kill();
        victim.restart();
    }
    stop.store(true, Ordering::Relaxed);
    let edits = editor.join().unwrap();
    eprintln!(
        "{} kills in {:.0?}, {edits} edits",
        kills(),
        started.elapsed()
    );

    // Both sides end equal: every issue's last version on External, nothing left queued.
    let deadline = Instant::now() + Duration::from_secs(120);
    let expected: BTreeMap<String, String> = keys
        .iter()
        .map(|k| (k.clone(), tracker.get(k).unwrap().unwrap().summary))
        .collect();
    loop {
        let twins = external.get("/v1/twins?limit=1000");
        let on_external: BTreeMap<String, String> = twins
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| {
                let remote = t["remote_key"].as_str()?.to_string();
                let local = t["local_key"].as_str()?;
                Some((
                    remote,
                    external.issue(local)?["summary"].as_str()?.to_string(),
                ))
            })
            .collect();
        let queue = any_running(&workers).get("/v1/queue");
        let quiet = queue_is_empty(&queue) && queue_is_empty(&external.get("/v1/queue"));
        if on_external == expected && quiet {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not equal 2 minutes after the last kill:\nexpected {expected:?}\nExternal has {on_external:?}\nInternal's queue {queue}\nlog of a worker:\n{}",
            tail(&workers[0].log())
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // How often a process committed nothing because another had taken its event over
    // (kills land mid-event), as its log says.
    let taken_over: usize = workers
        .iter()
        .map(|w| w.log().matches("took this event over").count())
        .sum();
    eprintln!("events taken over from a stalled process and not committed by it: {taken_over}");
    drop(workers);
    let external_dir = external.dir.clone();
    drop(external);
    check_applied_once_and_in_order(&external_dir.join("data"));
}

fn queue_is_empty(queue: &serde_json::Value) -> bool {
    queue.as_array().is_some_and(|rows| {
        rows.iter()
            .all(|row| row["pending"] == 0 && row["in_flight"] == 0 && row["failed"] == 0)
    })
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// External's own records: each message of Internal applied once (its tracker recorded
/// one write per event at most), and each twin's messages in their order, none missing.
fn check_applied_once_and_in_order(data: &Path) {
    let tracker = rusqlite::Connection::open(data.join("tracker.db")).unwrap();
    let twice: Vec<(String, i64)> = tracker
        .prepare(
            "SELECT sync_event, count(*) FROM changes WHERE sync_event IS NOT NULL
             GROUP BY sync_event HAVING count(*) > 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(twice.is_empty(), "events written twice: {twice:?}");

    // Every message received, with no gap; those applied, in order, the last of each twin
    // among them. One that waited while a later one arrived was superseded: the later one
    // took its place (it carries its changes).
    let node = rusqlite::Connection::open(data.join("twinsync.db")).unwrap();
    let received: Vec<(String, i64, String, Option<String>)> = node
        .prepare(
            "SELECT twin_id, message_seq, state, note FROM events WHERE direction = 'incoming'
             ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut numbers: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (twin, seq, state, note) in &received {
        numbers.entry(twin.clone()).or_default().push(*seq);
        if state == "skipped" {
            let note = note.as_deref().unwrap_or_default();
            assert!(
                note.contains("superseded by"),
                "twin {twin} message {seq}: {note}"
            );
            continue;
        }
        assert_eq!(state, "done", "twin {twin} message {seq}");
        let before = last.insert(twin.clone(), *seq).unwrap_or(0);
        assert!(
            *seq > before,
            "twin {twin}: message {seq} applied after {before}"
        );
    }
    for (twin, mut seqs) in numbers {
        seqs.sort();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "twin {twin}"
        );
        assert_eq!(
            last.get(&twin),
            seqs.last(),
            "twin {twin}: the last message applied"
        );
    }
    assert!(!last.is_empty(), "External received nothing");
}

/// A store that cannot be used stops `serve` and the operator commands at once, saying
/// why, without the password; a right password in a file (or the environment) works.
#[test]
fn a_wrong_store_setting_stops_the_node_with_its_reason() {
    let Some(url) = postgres::database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, place) = rest.rsplit_once('@').unwrap();
    let (user, password) = credentials.split_once(':').unwrap();
    let config = |store: &str| {
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            format!(
                "instance = \"Internal\"\ndata-dir = \"data\"\n\n[store]\n{store}\n\n[tracker]\nkind = \"reference\"\n"
            ),
        )
        .unwrap();
        path
    };
    let run = |path: &Path, args: &[&str]| {
        let mut command = twinsync_tests::cli::command(twinsync_tests::twinsync_binary!(), args);
        command.arg("--config").arg(path);
        command.env_remove(twinsync::config::STORE_PASSWORD_ENV);
        command
    };

    let wrong = config(&format!("url = \"{scheme}://{user}:nope-not-it@{place}\""));
    let said = twinsync_tests::cli::fails(run(&wrong, &["serve"]));
    assert!(said.contains("the password is wrong"), "{said}");
    assert!(!said.contains("nope-not-it"), "{said}");
    let said = twinsync_tests::cli::fails(run(&wrong, &["queue"]));
    assert!(said.contains("the password is wrong"), "{said}");

    let missing = config(&format!(
        "url = \"{}/no_such_database\"",
        url.rsplit_once('/').unwrap().0
    ));
    let said = twinsync_tests::cli::fails(run(&missing, &["queue"]));
    assert!(
        said.contains("there is no database `no_such_database`"),
        "{said}"
    );

    let sqlite_path = config("url = \"data/twinsync.db\"");
    let said = twinsync_tests::cli::fails(run(&sqlite_path, &["queue"]));
    assert!(said.contains("must be a PostgreSQL URL"), "{said}");

    // The password apart from the URL: from a file, or from the environment.
    std::fs::write(dir.path().join("store.password"), format!("{password}\n")).unwrap();
    let from_file = config(&format!(
        "url = \"{scheme}://{user}@{place}\"\npassword-file = \"store.password\""
    ));
    twinsync_tests::cli::ok(run(&from_file, &["queue"]));
    let from_env = config(&format!("url = \"{scheme}://{user}@{place}\""));
    let mut command = run(&from_env, &["queue"]);
    command.env(twinsync::config::STORE_PASSWORD_ENV, password);
    twinsync_tests::cli::ok(command);
}
