//! Sustained end-to-end sync: two nodes in one process on embedded SQLite (WAL, durable:
//! `synchronous=NORMAL`, never `OFF`), `mirror` processors, the event loops and the
//! in-process delivery on their own threads. Changes are made on Internal's tracker at a
//! fixed rate; a change counts as synced when External's tracker stores it.
//!
//! ```text
//! cargo bench -p twinsync --bench throughput -- [--twins N] [--changes N] [--rate PER_SEC] [--realistic] [--data-dir DIR] [--processor FILE] [--receiver-late SECONDS]
//! cargo bench -p twinsync --bench throughput -- --backlog 1000000 [--twins N]
//! ```
//!
//! `--realistic` gives every issue the content of `sample_issue(10, 20)` (10 custom fields,
//! 20 comments) instead of a summary, a status, a description and a label. Changes are
//! made as a busy tracker's users make them: the changes due in each millisecond are
//! written in one tracker transaction, so that making 20,000 a second costs the harness
//! less than syncing them costs the nodes.
//!
//! `--data-dir DIR` keeps the two trackers' and the two nodes' databases in DIR (made if
//! absent, and it must be empty; a relative path is taken from `host/` under `cargo
//! bench`), to look at afterwards: `scripts/train-bodies-dictionary` reads the nodes'
//! stored bodies from them. By default they are in a temporary directory, removed at the
//! end.
//!
//! `--receiver-late SECONDS` starts External's event loop that long after the changes
//! begin (after the exalate): a receiver that was down or fell behind, with a backlog of
//! messages to apply. Internal and the delivery run throughout.
//!
//! `--processor FILE` runs the component in FILE on both nodes, both ways, instead of the
//! built-in `mirror` (`tests/fixtures/mirror-v0.2.0.wasm`, say, against the current one);
//! a relative path is taken from `host/`.
//!
//! Prints: bulk exalate rate, sustained changes per second, latency p50/p90/p99/max, peak
//! resident memory; with `--backlog`, resident memory sampled while the backlog drains.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use twinsync::clock::{Clock, SystemClock};
use twinsync::model::Issue;
use twinsync::runtime::{Limits, PoolConfig, Runtime, RuntimeConfig};
use twinsync::service::Wake;
use twinsync::service::workers::event_loop;
use twinsync::store::NodeStore;
use twinsync::store::sql::args;
use twinsync::sync::{Connection, Flow, Node};
use twinsync::tracker::{
    ChangeBatch, Origin, Query, ReferenceTracker, Tracker, TrackerError, UpdateIf,
};
use twinsync::transport::local::{LocalNetwork, deliver_loop};

mod support;

// The allocator of the `twinsync` binary, so that this bench measures what users run.
#[global_allocator]
static ALLOCATOR: twinsync::Allocator = twinsync::Allocator;

use support::{Arrivals, arg, flag, resident_kib, text_arg};

struct Options {
    twins: usize,
    changes: usize,
    rate: usize,
    backlog: Option<usize>,
    workers: usize,
    realistic: bool,
    data_dir: Option<PathBuf>,
    /// A component to run on both nodes instead of the built-in `mirror`: an A/B of two
    /// builds of a processor on one bench binary.
    processor: Option<PathBuf>,
    /// Seconds External's event loop starts after the changes begin: a receiver that fell
    /// behind (down, or slower than the sender).
    receiver_late: u64,
}

fn options() -> Options {
    Options {
        twins: arg("--twins").unwrap_or(10_000),
        changes: arg("--changes").unwrap_or(100_000),
        rate: arg("--rate").unwrap_or(5_000),
        backlog: arg("--backlog"),
        workers: arg("--workers").unwrap_or(1),
        realistic: flag("--realistic"),
        data_dir: text_arg("--data-dir").map(PathBuf::from),
        processor: text_arg("--processor").map(PathBuf::from),
        receiver_late: arg("--receiver-late").unwrap_or(0) as u64,
    }
}

/// External's tracker, remembering when each revision of each issue arrived: summaries look
/// like `issue 7 rev 3`.
struct Timed {
    inner: ReferenceTracker,
    arrived: Arrivals,
}

impl Tracker for Timed {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        self.inner.get(key)
    }
    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        let stored = self.inner.create(issue, origin)?;
        self.arrived.note(&stored);
        Ok(stored)
    }
    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        let stored = self.inner.update(issue, origin)?;
        self.arrived.note(&stored);
        Ok(stored)
    }
    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        let stored = self.inner.update_if(issue, origin, seen)?;
        self.arrived.note(&stored);
        Ok(stored)
    }
    fn update_many_if(&self, writes: &[UpdateIf<'_>]) -> Vec<Result<Issue, TrackerError>> {
        let written = self.inner.update_many_if(writes);
        for stored in written.iter().flatten() {
            self.arrived.note(stored);
        }
        written
    }
    fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<ChangeBatch, TrackerError> {
        self.inner.changes(cursor, limit)
    }
    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError> {
        self.inner.search(query)
    }
}

fn main() {
    twinsync::keep_freed_c_memory();
    let options = options();
    let temp;
    let dir = match &options.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).unwrap();
            assert!(
                std::fs::read_dir(dir).unwrap().next().is_none(),
                "--data-dir {} is not empty",
                dir.display()
            );
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().unwrap();
            temp.path().to_path_buf()
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let runtime = Arc::new(
        Runtime::new(&RuntimeConfig {
            pool: Some(PoolConfig::for_workers(options.workers * 2)),
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );
    let mirror = match &options.processor {
        Some(file) => {
            let wasm = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            runtime.load(&file.display().to_string(), &wasm).unwrap()
        }
        None => runtime.load("mirror", twinsync::builtin::MIRROR).unwrap(),
    };
    let mirror = Arc::new(mirror);
    let connection = |remote: &str| {
        Connection::new(
            "internal-external",
            remote,
            Flow::Bidirectional,
            Some(mirror.clone()),
            Some(mirror.clone()),
            Limits::default(),
        )
        .unwrap()
    };
    let open = |name: &str| NodeStore::open(&dir.join(format!("{name}.db"))).unwrap();
    let internal_tracker = Arc::new(
        ReferenceTracker::open(&dir.join("internal-tracker.db"), "INT", clock.clone()).unwrap(),
    );
    let external_tracker = Arc::new(Timed {
        inner: ReferenceTracker::open(&dir.join("external-tracker.db"), "EXT", clock.clone())
            .unwrap(),
        arrived: Arrivals::default(),
    });
    let internal = Arc::new(
        Node::new(
            "Internal",
            internal_tracker.clone(),
            Arc::new(open("internal")),
            runtime.clone(),
            vec![connection("External")],
            clock.clone(),
        )
        .unwrap(),
    );
    let external = Arc::new(
        Node::new(
            "External",
            external_tracker.clone(),
            Arc::new(open("external")),
            runtime.clone(),
            vec![connection("Internal")],
            clock.clone(),
        )
        .unwrap(),
    );
    println!(
        "twinsync throughput: {} twins ({} issues), mirror both ways, {} allocator, {} worker(s) per node, {} cores",
        options.twins,
        if options.realistic {
            "realistic: 10 custom fields, 20 comments"
        } else {
            "minimal"
        },
        runtime.allocator(),
        options.workers,
        twinsync::runtime::available_cores()
    );

    // Issues exist on Internal before the run; exalating them is the first measured phase.
    let keys = support::create_issues(&internal_tracker, options.twins, options.realistic);
    internal.poll_changes().unwrap();
    while internal.poll_changes().unwrap() > 0 {}

    // Each node has its own bell, as each `serve` process does, and the delivery between
    // them one for the messages waiting in the nodes' outboxes: a change on Internal wakes
    // Internal's event loop only, a delivery only the node it delivered to.
    let bells = Bells::default();
    let stop = Arc::new(AtomicBool::new(false));
    // External's event loop starts `late` after Internal's (see `--receiver-late`).
    let start_loops_late = |bells: &Bells, stop: &Arc<AtomicBool>, late: Duration| {
        let mut threads = Vec::new();
        for ((node, bell), late) in [internal.clone(), external.clone()]
            .into_iter()
            .zip(&bells.nodes)
            .zip([Duration::ZERO, late])
        {
            let (bell, outbox, stop) = (bell.clone(), bells.outbox.clone(), stop.clone());
            let workers = options.workers;
            threads.push(thread::spawn(move || {
                thread::sleep(late);
                event_loop(node, workers, bell, outbox, stop)
            }));
        }
        let network = LocalNetwork::new(vec![internal.clone(), external.clone()]);
        let (bells, stop) = (bells.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            deliver_loop(&network, &bells.outbox, &bells.nodes, &stop)
        }));
        threads
    };
    let start_loops =
        |bells: &Bells, stop: &Arc<AtomicBool>| start_loops_late(bells, stop, Duration::ZERO);

    let arrived = |n: usize, rev: usize| external_tracker.arrived.arrival(n, rev);
    let wait_for = |changes: &[(usize, usize)], timeout: Duration| {
        external_tracker.arrived.wait_for(changes, timeout)
    };

    if let Some(backlog) = options.backlog {
        return drain_backlog(
            backlog,
            &keys,
            [&internal, &external],
            &internal_tracker,
            &bells,
            &stop,
            start_loops,
            arrived,
        );
    }

    let mut threads = start_loops(&bells, &stop);
    let started = Instant::now();
    for key in &keys {
        internal.exalate("internal-external", key).unwrap();
    }
    bells.ring();
    let first: Vec<(usize, usize)> = (0..options.twins).map(|n| (n, 0)).collect();
    wait_for(&first, Duration::from_secs(3600));
    let exalate_time = started.elapsed();
    println!(
        "bulk exalate: {} twins in {:.1} s = {:.0} issues/s end to end",
        options.twins,
        exalate_time.as_secs_f64(),
        options.twins as f64 / exalate_time.as_secs_f64()
    );

    let stop = if options.receiver_late > 0 {
        // A receiver that falls behind: External's loop starts again that much later.
        stop.store(true, Ordering::Relaxed);
        bells.ring();
        threads.drain(..).for_each(|thread| thread.join().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let late = Duration::from_secs(options.receiver_late);
        threads = start_loops_late(&bells, &stop, late);
        stop
    } else {
        stop
    };

    // Sustained changes at a fixed rate, round-robin over the twins.
    let done_before_each = [processed([&internal]), processed([&external])];
    let skipped_before = skipped(&external);
    let internal_before = last_event(&internal);
    let done_before = done_before_each[0] + done_before_each[1];
    let usage_before = support::Usage::now();
    // This thread only makes the changes: its CPU is the harness's edits of the tracker.
    let maker_before = support::Usage::of("thread-self");
    let started = Instant::now();
    let made = support::make_changes(
        &internal_tracker,
        &keys,
        options.changes,
        options.rate,
        // As a tracker's webhook would: the node learns of the changes at once.
        || bells.internal().ring(),
    );
    let producing = started.elapsed();
    let maker = support::Usage::of("thread-self");
    bells.ring();
    let all: Vec<(usize, usize)> = made.iter().map(|&(n, rev, _)| (n, rev)).collect();
    wait_for(&all, Duration::from_secs(3600));
    let total = started.elapsed();
    // Changes of one issue made while an earlier event for it waited travel together: the
    // queues still hold the later events, which find nothing new to send.
    wait_until_idle([&internal, &external]);
    let idle = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    bells.ring();
    for thread in threads {
        thread.join().unwrap();
    }

    println!(
        "sustained: {} changes offered at {}/s over {:.1} s; all synced after {:.1} s = {:.0} changes/s end to end",
        options.changes,
        options.rate,
        producing.as_secs_f64(),
        total.as_secs_f64(),
        options.changes as f64 / total.as_secs_f64()
    );
    let events = processed([&internal, &external]) - done_before;
    // The harness's own work (making the changes, noting arrivals) is in these figures too.
    support::Usage::now().print_per_event(usage_before, events, "cost, harness included");
    println!(
        "  of which the harness making the changes (loading and updating Internal's issues): CPU {:.0} µs per event",
        (maker.cpu - maker_before.cpu).as_secs_f64() * 1e6 / events.max(1) as f64
    );
    println!(
        "queues empty after {:.1} s: {} events processed on the two nodes = {:.0} events/s per node",
        idle.as_secs_f64(),
        events,
        events as f64 / 2.0 / idle.as_secs_f64()
    );
    // (The bench's nodes have no operator: every event skipped was superseded.)
    let superseded = skipped(&external) - skipped_before;
    println!(
        "  Internal {} events, External {} (and {superseded} received changes skipped, superseded by a later message of their twin)",
        processed([&internal]) - done_before_each[0],
        processed([&external]) - done_before_each[1],
    );
    for (outcome, n) in outgoing_outcomes(&internal, internal_before) {
        println!("    Internal's outgoing events: {n} {outcome}");
    }
    external_tracker.arrived.print_latencies(&made);
    println!(
        "peak resident memory: {} MiB",
        resident_kib("VmHWM:") / 1024
    );
    support::print_database_sizes(&dir);
}

/// The bells the bench's loops sleep on: one per node (Internal's first), which its event
/// loop waits on, and the outboxes', which the delivery waits on.
#[derive(Clone, Default)]
struct Bells {
    nodes: [Arc<Wake>; 2],
    outbox: Arc<Wake>,
}

impl Bells {
    /// Internal's, where the bench makes its changes.
    fn internal(&self) -> &Wake {
        &self.nodes[0]
    }

    /// Every bell: to start, and to stop.
    fn ring(&self) {
        self.nodes.iter().for_each(|bell| bell.ring());
        self.outbox.ring();
    }
}

/// Queue `backlog` changes while the nodes are stopped, then drain them, sampling resident
/// memory every second.
#[allow(clippy::too_many_arguments)]
fn drain_backlog(
    backlog: usize,
    keys: &[String],
    [internal, external]: [&Arc<Node>; 2],
    tracker: &Arc<ReferenceTracker>,
    bells: &Bells,
    stop: &Arc<AtomicBool>,
    start_loops: impl Fn(&Bells, &Arc<AtomicBool>) -> Vec<thread::JoinHandle<()>>,
    arrived: impl Fn(usize, usize) -> Option<Instant>,
) {
    for key in keys {
        internal.exalate("internal-external", key).unwrap();
    }
    let started = Instant::now();
    let mut last_rev = vec![0; keys.len()];
    for i in 0..backlog {
        let n = i % keys.len();
        last_rev[n] = i / keys.len() + 1;
        let mut issue = tracker.get(&keys[n]).unwrap().unwrap();
        issue.summary = format!("issue {n} rev {}", last_rev[n]);
        tracker.update(&issue, Origin::User).unwrap();
        // Queue as we go, as a running node would, so that each change is an event.
        if i % 1_000 == 999 {
            internal.poll_changes().unwrap();
        }
    }
    while internal.poll_changes().unwrap() > 0 {}
    let queued = twinsync::ops::queue(internal.store()).unwrap();
    println!(
        "backlog: {} changes queued in {:.0} s ({} pending events); resident memory {} MiB",
        backlog,
        started.elapsed().as_secs_f64(),
        queued.iter().map(|q| q.pending).sum::<i64>(),
        resident_kib("VmRSS:") / 1024
    );
    let done_before = [processed([internal]), processed([external])];
    let threads = start_loops(bells, stop);
    let started = Instant::now();
    let mut samples = Vec::new();
    while !idle([internal, external]) {
        thread::sleep(Duration::from_secs(1));
        samples.push(resident_kib("VmRSS:") / 1024);
    }
    let events = [
        processed([internal]) - done_before[0],
        processed([external]) - done_before[1],
    ];
    for (n, &rev) in last_rev.iter().enumerate() {
        assert!(
            arrived(n, rev).is_some(),
            "issue {n} never got its last change"
        );
    }
    stop.store(true, Ordering::Relaxed);
    bells.ring();
    for thread in threads {
        thread.join().unwrap();
    }
    let drained = started.elapsed();
    println!(
        "drained in {:.0} s, every issue at its last change: Internal processed {} events ({:.0}/s), External {}; resident memory during the drain: min {} MiB, max {} MiB, last {} MiB",
        drained.as_secs_f64(),
        events[0],
        events[0] as f64 / drained.as_secs_f64(),
        events[1],
        samples.iter().min().unwrap_or(&0),
        samples.iter().max().unwrap_or(&0),
        samples.last().unwrap_or(&0)
    );
}

/// Nothing pending, in flight or retrying on either node.
fn idle(nodes: [&Arc<Node>; 2]) -> bool {
    nodes.iter().all(|node| {
        twinsync::ops::queue(node.store())
            .unwrap()
            .iter()
            .all(|q| q.pending == 0 && q.in_flight == 0)
    })
}

fn wait_until_idle(nodes: [&Arc<Node>; 2]) {
    while !idle(nodes) {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Events a node skipped.
fn skipped(node: &Arc<Node>) -> i64 {
    twinsync::ops::queue(node.store())
        .unwrap()
        .iter()
        .map(|q| q.skipped)
        .sum()
}

/// The number of the last event a node queued: the events after it are those to come.
fn last_event(node: &Arc<Node>) -> i64 {
    node.store()
        .read(|db| db.one("SELECT coalesce(max(seq), 0) FROM events", &[]))
        .unwrap()
}

/// What the outgoing events a node finished after event `after` came to, by their notes
/// (numbers left out), most first.
fn outgoing_outcomes(node: &Arc<Node>, after: i64) -> Vec<(String, i64)> {
    node.store()
        .read(|db| {
            db.rows(
                "SELECT CASE WHEN note LIKE 'sent as message %' THEN 'sent a message'
                        ELSE note END AS outcome, count(*) AS n
                 FROM events WHERE direction = 'outgoing' AND state = 'done' AND seq > ?1
                 GROUP BY outcome ORDER BY n DESC",
                args![after],
                |r| Ok((r.get::<Option<String>>(0)?.unwrap_or_default(), r.get(1)?)),
            )
        })
        .unwrap()
}

/// Events finished (applied, or found to have nothing new) on these nodes.
fn processed<const N: usize>(nodes: [&Arc<Node>; N]) -> i64 {
    nodes
        .iter()
        .flat_map(|node| twinsync::ops::queue(node.store()).unwrap())
        .map(|q| q.done)
        .sum()
}
