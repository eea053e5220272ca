//! Several `twinsync serve` processes of one node on PostgreSQL (`[store] url`, and the
//! reference tracker on PostgreSQL too), against one process on SQLite: throughput, and
//! the CPU each event costs the node's processes and the PostgreSQL server.
//!
//! ```text
//! cargo bench -p twinsync --bench workers -- [--processes 1,2,4] [--issues N] [--changes N]
//! ```
//!
//! Each run starts from nothing: External (one process, SQLite) and Internal (P processes
//! sharing a fresh store database and a fresh tracker database, or, for the SQLite run, one
//! process with its store and tracker in its data directory), mirror both ways. The bench
//! creates the issues in Internal's tracker, exalates them through the admin API and waits
//! until External has them all. Then it edits the issues' summaries (round robin, in
//! transactions of up to 100 edits, as fast as it can) straight in Internal's tracker, and
//! measures until External's tracker has every issue's last version and Internal's queue is
//! empty.
//!
//! CPU is read from `/proc`: for each `serve` process, user + system time of all its
//! threads; for the PostgreSQL cluster, the same for the postmaster and every live backend,
//! plus what the postmaster has collected from backends that already exited (`cutime`,
//! `cstime`). Per-event figures are CPU over the measured phase divided by the events
//! Internal finished in it. Several processes cannot be faster than the cores they share;
//! the CPU per event is what says how far they go on bigger machines.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Arrivals, arg};
use twinsync::clock::SystemClock;
use twinsync::model::Issue;
use twinsync::tracker::{Origin, PostgresTracker, ReferenceTracker, Tracker};
use twinsync_tests::postgres;
use twinsync_tests::process::{NodeProcess, NodeSpec, SECRET, TOKEN, free_port};

const CONNECTION: &str = "internal-external";

/// Edits written in one tracker transaction.
const EDIT_BATCH: usize = 100;

/// Where Internal keeps its state and its tracker in one run.
enum Backend {
    /// The default: `twinsync.db` and `tracker.db` in the data directory.
    Sqlite,
    /// A store database and a tracker database on the bench's PostgreSQL cluster.
    Postgres { store: String, tracker: String },
}

/// What one run measured.
struct Run {
    label: String,
    wall: Duration,
    /// Edits made in the measured phase.
    changes: usize,
    events: i64,
    internal_cpu: Duration,
    external_cpu: Duration,
    postgres_cpu: Option<Duration>,
}

fn main() {
    let processes = list_arg("--processes").unwrap_or_else(|| vec![1, 2, 4]);
    let issues = arg("--issues").unwrap_or(500);
    let changes = arg("--changes").unwrap_or(5_000);
    assert!(issues > 0, "--issues must be at least 1");
    println!(
        "twinsync with several worker processes: {issues} issues, {changes} edits, mirror both ways; \
         this machine has {} cores",
        twinsync::runtime::available_cores()
    );

    let mut runs = Vec::new();
    for &p in &processes {
        let (Some(store), Some(tracker)) = (postgres::database(), postgres::database()) else {
            println!("PostgreSQL cannot be had here (see above): only the SQLite run");
            break;
        };
        let label = format!("PostgreSQL, {p} process{}", if p == 1 { "" } else { "es" });
        runs.push(run(
            &label,
            p,
            Backend::Postgres { store, tracker },
            issues,
            changes,
        ));
    }
    runs.push(run(
        "SQLite, 1 process",
        1,
        Backend::Sqlite,
        issues,
        changes,
    ));
    print_table(&runs);
}

/// One run: start the nodes, exalate, edit, measure, stop.
fn run(label: &str, processes: usize, backend: Backend, issues: usize, changes: usize) -> Run {
    println!("\n{label}:");
    let binary = Path::new(env!("CARGO_BIN_EXE_twinsync"));
    let dir = tempfile::tempdir().unwrap();
    let external_port = free_port();
    let internal_ports: Vec<u16> = (0..processes).map(|_| free_port()).collect();

    // External first, so that Internal's senders have somewhere to send to. External sends
    // to Internal's first process (receiving is a write transaction like any other).
    let external_spec = spec("External", external_port, internal_ports[0]);
    let text = external_config(&external_spec);
    let mut external =
        NodeProcess::start_with_config(binary, &dir.path().join("external"), external_spec, &text);
    let start_internal = |n: usize| {
        let spec = spec("Internal", internal_ports[n], external_port);
        let text = internal_config(n, &spec, &backend);
        let node_dir = dir.path().join(format!("internal-{n}"));
        NodeProcess::start_with_config(binary, &node_dir, spec, &text)
    };
    // Only the first process of Internal until the issues are exalated: with several, the
    // exalate calls got slow enough to hit the test client's 10 s timeout (see
    // BENCHMARKS.md); the measured phase runs with all of them.
    let mut internal = vec![start_internal(0)];

    // Internal's tracker, as the bench's users see it: create and bulk-edit issues.
    let editor = Editor::open(&backend, &internal[0]);
    let mut created: Vec<Issue> = (0..issues)
        .map(|n| editor.create(&support::issue(n, false)))
        .collect();
    let keys: Vec<String> = created.iter().map(|i| i.key.clone().unwrap()).collect();

    // Watch External's tracker (SQLite: readable beside the process that writes it): every
    // issue stored there, by the revision in its summary.
    let arrivals = Arc::new(Arrivals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let path = external.dir.join("data").join("tracker.db");
        let external_tracker = ReferenceTracker::open(&path, "EXT", Arc::new(SystemClock)).unwrap();
        let (arrivals, stop) = (arrivals.clone(), stop.clone());
        thread::spawn(move || {
            let mut cursor = None;
            while !stop.load(Ordering::Relaxed) {
                let batch = external_tracker.changes(cursor.as_deref(), 1_000).unwrap();
                for change in &batch.changes {
                    if let Some(issue) = external_tracker.get(&change.key).unwrap() {
                        arrivals.note(&issue);
                    }
                }
                if batch.changes.is_empty() {
                    thread::sleep(Duration::from_millis(2));
                }
                cursor = batch.cursor;
            }
        })
    };

    // Exalate them all, in calls of 100 keys (one call for 500 keys could take longer on
    // PostgreSQL than the test client's 10 s timeout).
    let started = Instant::now();
    let mut calls = Duration::ZERO;
    for chunk in keys.chunks(100) {
        let call = Instant::now();
        let (status, body) = internal[0].send(
            "POST",
            "/v1/exalate",
            json!({"connection": CONNECTION, "keys": chunk}),
        );
        calls += call.elapsed();
        assert_eq!(status, 200, "exalate: {body}");
        assert_eq!(body["errors"], json!([]), "exalate: {body}");
    }
    let first: Vec<(usize, usize)> = (0..issues).map(|n| (n, 0)).collect();
    arrivals.wait_for(&first, Duration::from_secs(1800));
    wait_idle(&internal[0]);
    println!(
        "  exalate: the admin calls took {:.1} s; {issues} issues on External after {:.1} s",
        calls.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    internal.extend((1..processes).map(start_internal));

    // The measured phase: CPU and events done before, the edits, the wait, CPU and events
    // done after. Every process stays up through it, so each delta is exact.
    let pids: Vec<u32> = internal.iter().map(|p| p.pid().unwrap()).collect();
    let external_pid = external.pid().unwrap();
    let postmaster = matches!(backend, Backend::Postgres { .. })
        .then(postmaster_pid)
        .flatten();
    let internal_before = sum_cpu(&pids);
    let external_before = process_cpu(external_pid, false);
    let postgres_before = postmaster.map(cluster_cpu);
    let databases_before = postmaster.map(|_| backends_cpu()).unwrap_or_default();
    let commits_before = match &backend {
        Backend::Postgres { store, tracker } => Some((commits(store), commits(tracker))),
        Backend::Sqlite => None,
    };
    let done_before = done(&internal[0]);
    let started = Instant::now();

    let mut last = vec![0; issues];
    let mut j = 0;
    while j < changes {
        let end = (j + EDIT_BATCH.min(issues)).min(changes);
        let batch: Vec<Issue> = (j..end)
            .map(|j| {
                let n = j % issues;
                last[n] = j / issues + 1;
                created[n].summary = format!("issue {n} rev {}", last[n]);
                created[n].clone()
            })
            .collect();
        editor.update_many(&batch);
        j = end;
    }
    let editing = started.elapsed();
    let wanted: Vec<(usize, usize)> = last.iter().copied().enumerate().collect();
    arrivals.wait_for(&wanted, Duration::from_secs(3600));
    wait_idle(&internal[0]);
    let wall = started.elapsed();

    let events = done(&internal[0]) - done_before;
    let internal_cpu = sum_cpu(&pids) - internal_before;
    let external_cpu = process_cpu(external_pid, false) - external_before;
    let postgres_cpu = postmaster.zip(postgres_before).map(|(pm, before)| {
        cluster_cpu(pm)
            .checked_sub(before)
            .expect("the cluster's CPU time only grows")
    });
    if let Backend::Postgres { store, tracker } = &backend {
        print_by_database(&databases_before, store, tracker);
        // The statistics are sent by backends at most once a second.
        thread::sleep(Duration::from_millis(1_500));
        let (store_before, tracker_before) = commits_before.unwrap();
        let per_event = |n: i64| n as f64 / events.max(1) as f64;
        println!(
            "  transactions committed in the phase (about; counted till 1.5 s after it): \
             store {} ({:.1} per event), tracker {} ({:.1} per event)",
            commits(store) - store_before,
            per_event(commits(store) - store_before),
            commits(tracker) - tracker_before,
            per_event(commits(tracker) - tracker_before),
        );
    }
    println!(
        "  {changes} edits written in {:.1} s; all on External and Internal's queue empty after {:.1} s; \
         {events} events done by Internal",
        editing.as_secs_f64(),
        wall.as_secs_f64()
    );

    let ms = |cpu: Duration| cpu.as_secs_f64() * 1e3 / events.max(1) as f64;
    println!(
        "  CPU in the phase: Internal {:.2} s ({:.2} ms/event), PostgreSQL {}, External {:.2} s",
        internal_cpu.as_secs_f64(),
        ms(internal_cpu),
        postgres_cpu.map_or("-".into(), |c| format!(
            "{:.2} s ({:.2} ms/event)",
            c.as_secs_f64(),
            ms(c)
        )),
        external_cpu.as_secs_f64()
    );

    // Over each process's whole life (start, exalate and the measured phase), read just
    // before it stops: a check that the measured phase is where the time went.
    let lifetime = sum_cpu(&pids);
    let lifetime_events = done(&internal[0]);
    println!(
        "  over their whole lives Internal's processes used {:.2} s of CPU for {lifetime_events} events",
        lifetime.as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    for process in &mut internal {
        process.stop();
    }
    external.stop();
    drop(editor);
    Run {
        label: label.to_string(),
        wall,
        changes,
        events,
        internal_cpu,
        external_cpu,
        postgres_cpu,
    }
}

/// The table of every run.
fn print_table(runs: &[Run]) {
    println!(
        "\n| store | wall s | edits/s | events | events/s | Internal CPU s | PostgreSQL CPU s | External CPU s | \
         CPU ms/event: Internal | PostgreSQL | Internal + PostgreSQL |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let events = r.events.max(1) as f64;
        let per_event = |cpu: Duration| format!("{:.2}", cpu.as_secs_f64() * 1e3 / events);
        let postgres = r.postgres_cpu.unwrap_or_default();
        let or_none = |text: String| {
            if r.postgres_cpu.is_some() {
                text
            } else {
                "–".into()
            }
        };
        println!(
            "| {} | {:.1} | {:.0} | {} | {:.0} | {:.2} | {} | {:.2} | {} | {} | {} |",
            r.label,
            r.wall.as_secs_f64(),
            r.changes as f64 / r.wall.as_secs_f64(),
            r.events,
            r.events as f64 / r.wall.as_secs_f64(),
            r.internal_cpu.as_secs_f64(),
            or_none(format!("{:.2}", postgres.as_secs_f64())),
            r.external_cpu.as_secs_f64(),
            per_event(r.internal_cpu),
            or_none(per_event(postgres)),
            per_event(r.internal_cpu + postgres),
        );
    }
}

/// Internal's tracker from the bench's side: the same reference tracker the node uses.
enum Editor {
    Sqlite(ReferenceTracker),
    Postgres(Box<PostgresTracker>),
}

impl Editor {
    fn open(backend: &Backend, internal: &NodeProcess) -> Editor {
        match backend {
            Backend::Sqlite => {
                let path = internal.dir.join("data").join("tracker.db");
                let clock = Arc::new(SystemClock);
                Editor::Sqlite(ReferenceTracker::open(&path, "INT", clock).unwrap())
            }
            Backend::Postgres { tracker, .. } => {
                Editor::Postgres(Box::new(PostgresTracker::connect(tracker, "INT").unwrap()))
            }
        }
    }

    fn create(&self, issue: &Issue) -> Issue {
        match self {
            Editor::Sqlite(t) => t.create(issue, Origin::User),
            Editor::Postgres(t) => t.create(issue, Origin::User),
        }
        .unwrap()
    }

    /// Users' edits, in one transaction.
    fn update_many(&self, issues: &[Issue]) {
        match self {
            Editor::Sqlite(t) => t.update_many(issues),
            Editor::Postgres(t) => t.update_many(issues),
        }
        .unwrap();
    }
}

fn spec(instance: &'static str, port: u16, remote_port: u16) -> NodeSpec {
    NodeSpec {
        instance,
        project: "",
        remote: "",
        port,
        admin_port: free_port(),
        remote_port,
        processor: "mirror",
        extra: "",
    }
}

/// Process `n` of Internal: its own data directory and ports; on PostgreSQL, the shared
/// store and tracker.
fn internal_config(n: usize, spec: &NodeSpec, backend: &Backend) -> String {
    let (store, tracker) = match backend {
        Backend::Sqlite => (String::new(), String::new()),
        Backend::Postgres { store, tracker } => (
            format!("[store]\nurl = \"{store}\"\n"),
            format!("postgres-url = \"{tracker}\"\n"),
        ),
    };
    format!(
        r#"instance = "Internal"
data-dir = "data"
log-level = "info"
workers = 2
listen = "127.0.0.1:{port}"

[admin]
listen = "127.0.0.1:{admin}"
token = "{TOKEN}"

{store}
[tracker]
kind = "reference"
project = "INT"
{tracker}
[[connection]]
name = "{CONNECTION}"
remote-instance = "External"
remote-url = "http://127.0.0.1:{remote}"
incoming = "mirror"
outgoing = "mirror"
secret = "{SECRET}"
# process {n}
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

/// Wait until nothing is pending or in flight on the node (on PostgreSQL any process sees
/// the whole node's queue).
fn wait_idle(node: &NodeProcess) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let queue = node.get("/v1/queue");
        let rows = queue.as_array().unwrap();
        if rows
            .iter()
            .all(|q| q["pending"].as_i64() == Some(0) && q["in_flight"].as_i64() == Some(0))
        {
            return;
        }
        assert!(Instant::now() < deadline, "queue not empty: {queue}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Events the node finished.
fn done(node: &NodeProcess) -> i64 {
    let queue = node.get("/v1/queue");
    let rows = queue.as_array().unwrap();
    rows.iter().map(|q| q["done"].as_i64().unwrap_or(0)).sum()
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces), so that
/// field `k` of proc(5) is at index `k - 3`.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // The state (a letter) becomes 0; only numeric fields are read.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// CPU time (user + system, all threads) of process `pid`, and with `children` what it
/// collected from its children that exited. The kernel counts in USER_HZ, 100 on Linux.
fn process_cpu(pid: u32, children: bool) -> Duration {
    let fields = stat_fields(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    // utime, stime, cutime, cstime: fields 14 to 17.
    let ticks = fields[11] + fields[12] + if children { fields[13] + fields[14] } else { 0 };
    Duration::from_millis(ticks * 10)
}

fn sum_cpu(pids: &[u32]) -> Duration {
    pids.iter().map(|&pid| process_cpu(pid, false)).sum()
}

/// The PostgreSQL cluster's postmaster, from the first line of `postmaster.pid`.
fn postmaster_pid() -> Option<u32> {
    let file = postgres::state_dir()?.join("data").join("postmaster.pid");
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .next()?
        .parse()
        .ok()
}

/// CPU time of the whole cluster: the postmaster with what it collected from exited
/// backends, and every live child of it (backends, checkpointer, walwriter, ...).
fn cluster_cpu(postmaster: u32) -> Duration {
    let mut total = process_cpu(postmaster, true);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // ppid is field 4. A child that exits meanwhile is skipped.
        if let Some(fields) = stat_fields(pid)
            && fields[1] == u64::from(postmaster)
        {
            total += Duration::from_millis((fields[11] + fields[12]) * 10);
        }
    }
    total
}

/// The bench's own connection to the cluster (its `twinsync` database).
fn cluster_client() -> ::postgres::Client {
    let url = std::fs::read_to_string(postgres::state_dir().unwrap().join("url")).unwrap();
    ::postgres::Client::connect(url.trim(), ::postgres::NoTls).unwrap()
}

/// Transactions committed so far in `database` (the statistics lag by up to a second).
fn commits(database: &str) -> i64 {
    let name = database.rsplit('/').next().unwrap_or_default();
    let row = cluster_client()
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&name],
        )
        .unwrap();
    row.get(0)
}

/// CPU time of each live backend of the cluster (whole life), with its database.
fn backends_cpu() -> Vec<(u32, String, Duration)> {
    let mut client = cluster_client();
    let rows = client
        .query(
            "SELECT pid, datname FROM pg_stat_activity WHERE datname IS NOT NULL",
            &[],
        )
        .unwrap();
    rows.iter()
        .filter_map(|row| {
            let pid = u32::try_from(row.get::<_, i32>(0)).ok()?;
            let fields = stat_fields(pid)?;
            let cpu = Duration::from_millis((fields[11] + fields[12]) * 10);
            Some((pid, row.get(1), cpu))
        })
        .collect()
}

/// Where the cluster's backends spent CPU in the phase: the store's database, the
/// tracker's, other (the bench's own queries). Backends that ended within the phase are
/// not seen here (the node's connections live as long as the processes).
fn print_by_database(before: &[(u32, String, Duration)], store: &str, tracker: &str) {
    let name = |url: &str| url.rsplit('/').next().unwrap_or_default().to_string();
    let (store, tracker) = (name(store), name(tracker));
    let mut by = [Duration::ZERO; 3];
    for (pid, database, cpu) in backends_cpu() {
        let earlier = before
            .iter()
            .find(|(p, d, _)| *p == pid && *d == database)
            .map_or(Duration::ZERO, |b| b.2);
        let slot = if database == store {
            0
        } else if database == tracker {
            1
        } else {
            2
        };
        by[slot] += cpu.saturating_sub(earlier);
    }
    println!(
        "  PostgreSQL backends' CPU in the phase, by database: store {:.2} s, tracker {:.2} s, other {:.2} s",
        by[0].as_secs_f64(),
        by[1].as_secs_f64(),
        by[2].as_secs_f64()
    );
}

/// A list of numbers given as `name 1,2,4` on the command line.
fn list_arg(name: &str) -> Option<Vec<usize>> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    let value = args.get(i + 1)?;
    let list: Vec<usize> = value
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name} takes numbers like 1,2,4"))
        })
        .collect();
    assert!(list.iter().all(|&p| p > 0), "{name}: at least 1 process");
    Some(list)
}
