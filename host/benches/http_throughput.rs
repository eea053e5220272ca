//! Sustained sync over HTTP between two `twinsync serve` processes, as users run it: the
//! same measurement as the `throughput` bench (which runs both nodes in one process), with
//! signed messages on loopback, each node's own event loop, senders and admin API, and its
//! log at `info`.
//!
//! ```text
//! cargo bench -p twinsync --bench http_throughput -- [--twins N] [--changes N] [--rate PER_SEC] [--realistic]
//! ```
//!
//! The bench plays both trackers' users: it writes changes straight into Internal's tracker
//! database (SQLite serves several processes; the node finds them by polling the tracker's
//! change feed, as it would a real tracker's) and watches External's tracker's change feed
//! for their arrival.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Arrivals, arg, flag};
use twinsync::clock::SystemClock;
use twinsync::tracker::{ReferenceTracker, Tracker};
use twinsync_tests::process::{NodeProcess, pair};

fn main() {
    let twins = arg("--twins").unwrap_or(10_000);
    let changes = arg("--changes").unwrap_or(100_000);
    let rate = arg("--rate").unwrap_or(5_000);
    let realistic = flag("--realistic");
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = pair(
        Path::new(env!("CARGO_BIN_EXE_twinsync")),
        dir.path(),
        "mirror",
    );
    let tracker = |node: &NodeProcess, project: &str| {
        let path = node.dir.join("data").join("tracker.db");
        ReferenceTracker::open(&path, project, Arc::new(SystemClock)).unwrap()
    };
    let internal_tracker = tracker(&internal, "INT");
    let external_tracker = tracker(&external, "EXT");
    println!(
        "twinsync throughput over HTTP: two `serve` processes, {twins} twins ({} issues), mirror both ways, {} cores",
        if realistic {
            "realistic: 10 custom fields, 20 comments"
        } else {
            "minimal"
        },
        twinsync::runtime::available_cores()
    );

    // Watch External's tracker: every change it stores, with when it was seen.
    let arrivals = Arc::new(Arrivals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
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
                    thread::sleep(Duration::from_millis(1));
                }
                cursor = batch.cursor;
            }
        })
    };

    let keys = support::create_issues(&internal_tracker, twins, realistic);
    let started = Instant::now();
    for chunk in keys.chunks(1_000) {
        let (status, body) = internal.send(
            "POST",
            "/v1/exalate",
            json!({"connection": "internal-external", "keys": chunk}),
        );
        assert_eq!(status, 200, "exalate: {body}");
    }
    let first: Vec<(usize, usize)> = (0..twins).map(|n| (n, 0)).collect();
    arrivals.wait_for(&first, Duration::from_secs(3600));
    let exalate_time = started.elapsed();
    println!(
        "bulk exalate: {twins} twins in {:.1} s = {:.0} issues/s end to end",
        exalate_time.as_secs_f64(),
        twins as f64 / exalate_time.as_secs_f64()
    );

    let done_before = processed(&internal) + processed(&external);
    let nodes_before = nodes_usage([&internal, &external]);
    let harness_before = support::Usage::now();
    let started = Instant::now();
    let made = support::make_changes(&internal_tracker, &keys, changes, rate, || {});
    let producing = started.elapsed();
    let all: Vec<(usize, usize)> = made.iter().map(|&(n, rev, _)| (n, rev)).collect();
    arrivals.wait_for(&all, Duration::from_secs(3600));
    let total = started.elapsed();
    while !idle(&internal) || !idle(&external) {
        thread::sleep(Duration::from_millis(10));
    }
    let idle_after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    println!(
        "sustained: {changes} changes offered at {rate}/s over {:.1} s; all synced after {:.1} s = {:.0} changes/s end to end",
        producing.as_secs_f64(),
        total.as_secs_f64(),
        changes as f64 / total.as_secs_f64()
    );
    let events = processed(&internal) + processed(&external) - done_before;
    // The nodes apart from the bench's watcher and change maker: the node's own cost.
    nodes_usage([&internal, &external]).print_per_event(
        nodes_before,
        events,
        "cost of the two serve processes",
    );
    support::Usage::now().print_per_event(
        harness_before,
        events,
        "cost of the bench (making changes, watching)",
    );
    println!(
        "queues empty after {:.1} s: {events} events processed on the two nodes = {:.0} events/s per node",
        idle_after.as_secs_f64(),
        events as f64 / 2.0 / idle_after.as_secs_f64()
    );
    arrivals.print_latencies(&made);
    for (name, node) in [("Internal", &internal), ("External", &external)] {
        let status = node
            .pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .unwrap_or_default();
        let kib = |field: &str| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_string()
        };
        println!(
            "{name}'s serve process: resident {} KiB now, {} KiB at its peak",
            kib("VmRSS:"),
            kib("VmHWM:")
        );
    }
}

/// CPU time and bytes written of both `serve` processes together.
fn nodes_usage(nodes: [&NodeProcess; 2]) -> support::Usage {
    nodes
        .iter()
        .map(|node| support::Usage::of(&node.pid().unwrap_or(0).to_string()))
        .fold(
            support::Usage {
                cpu: Duration::ZERO,
                written: 0,
            },
            |total, usage| support::Usage {
                cpu: total.cpu + usage.cpu,
                written: total.written + usage.written,
            },
        )
}

/// Nothing pending or in flight on the node.
fn idle(node: &NodeProcess) -> bool {
    let queue = node.get("/v1/queue");
    queue
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["pending"].as_i64() == Some(0) && q["in_flight"].as_i64() == Some(0))
}

/// Events the node finished.
fn processed(node: &NodeProcess) -> i64 {
    let queue = node.get("/v1/queue");
    queue
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["done"].as_i64().unwrap_or(0))
        .sum()
}
