//! What the throughput benches share: issues whose summary says which revision they are at,
//! changes made at a fixed rate on a reference tracker, and when each revision arrived on
//! the other side.

// Each bench uses its own part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use twinsync::model::Issue;
use twinsync::tracker::{Origin, ReferenceTracker, Tracker};

/// Issue `n` at revision 0: minimal (a summary, a status, a description, a label), or
/// realistic (`sample_issue(10, 20)`: 10 custom fields, 20 comments).
pub fn issue(n: usize, realistic: bool) -> Issue {
    let summary = format!("issue {n} rev 0");
    if realistic {
        Issue {
            summary,
            ..twinsync::model::sample_issue(10, 20)
        }
    } else {
        Issue {
            summary,
            status: "Open".into(),
            description: Some("A realistic description of a problem someone has.".into()),
            labels: vec!["bench".into()],
            ..Issue::default()
        }
    }
}

/// Create `count` issues on `tracker`; their keys.
pub fn create_issues(tracker: &ReferenceTracker, count: usize, realistic: bool) -> Vec<String> {
    (0..count)
        .map(|n| {
            let created = tracker.create(&issue(n, realistic), Origin::User).unwrap();
            created.key.unwrap()
        })
        .collect()
}

/// Issue number and revision from a summary like `issue 7 rev 3`.
pub fn parse(summary: &str) -> (usize, usize) {
    let mut words = summary.split(' ');
    let n = words
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or(usize::MAX);
    let rev = words.nth(1).and_then(|w| w.parse().ok()).unwrap_or(0);
    (n, rev)
}

/// Make `changes` changes at `rate` per second, round robin over `keys`: each millisecond
/// the changes due by then, in one tracker transaction (what a busy tracker's users do
/// together), so that making 20,000 a second costs the harness less than syncing them
/// costs the nodes. `after` runs after each transaction. Returns each change (issue,
/// revision) with when it was stored.
pub fn make_changes(
    tracker: &ReferenceTracker,
    keys: &[String],
    changes: usize,
    rate: usize,
    mut after: impl FnMut(),
) -> Vec<(usize, usize, Instant)> {
    let mut made = Vec::with_capacity(changes);
    let started = Instant::now();
    let mut i = 0;
    while i < changes {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(changes);
        if due <= i {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        // The latest revision of each issue changed in this millisecond.
        let mut edits: HashMap<usize, Issue> = HashMap::new();
        for j in i..due {
            let n = j % keys.len();
            let issue = match edits.remove(&n) {
                Some(issue) => issue,
                None => tracker.get(&keys[n]).unwrap().unwrap(),
            };
            let summary = format!("issue {n} rev {}", j / keys.len() + 1);
            edits.insert(n, Issue { summary, ..issue });
        }
        let edits: Vec<Issue> = edits.into_values().collect();
        tracker.update_many(&edits).unwrap();
        let at = Instant::now();
        made.extend((i..due).map(|j| (j % keys.len(), j / keys.len() + 1, at)));
        i = due;
        after();
        thread::sleep(Duration::from_millis(1));
    }
    made
}

/// When each revision of each issue arrived on the receiving side.
///
/// Noted from the receiving node's worker thread, so it allocates as little as it can: two
/// tables, each one allocation that doubles now and then, rather than a small vector per
/// issue. (A vector per issue put a million small allocations into the worker's malloc
/// arena with a million twins, and malloc itself then took 8 % of the samples, against 3 %
/// with ten thousand: the harness, not the node.)
#[derive(Default)]
pub struct Arrivals(Mutex<Arrived>);

#[derive(Default)]
struct Arrived {
    /// (issue, revision) -> when it arrived.
    at: HashMap<(u32, u32), Instant>,
    /// issue -> the latest revision arrived.
    latest: HashMap<u32, u32>,
}

impl Arrivals {
    pub fn note(&self, issue: &Issue) {
        let (n, rev) = parse(&issue.summary);
        let (n, rev) = (n as u32, rev as u32);
        let now = Instant::now();
        let mut arrived = self.0.lock().unwrap();
        arrived.at.entry((n, rev)).or_insert(now);
        let latest = arrived.latest.entry(n).or_insert(rev);
        *latest = (*latest).max(rev);
    }

    /// When revision `rev` of issue `n`, or a later one, arrived. A change made while an
    /// earlier one of the same issue waited is sent together with it: the processor reads
    /// the issue as it is when the event runs.
    pub fn arrival(&self, n: usize, rev: usize) -> Option<Instant> {
        let arrived = self.0.lock().unwrap();
        let n = n as u32;
        let latest = *arrived.latest.get(&n)?;
        (rev as u32..=latest).find_map(|rev| arrived.at.get(&(n, rev)).copied())
    }

    /// Wait until every change in `changes` arrived; panics after `timeout`.
    pub fn wait_for(&self, changes: &[(usize, usize)], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &(n, rev) in changes {
            while self.arrival(n, rev).is_none() {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for issue {n} rev {rev}"
                );
                thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// p50, p90, p99 and max of change-to-arrival, printed.
    pub fn print_latencies(&self, made: &[(usize, usize, Instant)]) {
        let mut latencies: Vec<Duration> = made
            .iter()
            .map(|&(n, rev, at)| self.arrival(n, rev).unwrap().saturating_duration_since(at))
            .collect();
        latencies.sort();
        let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "latency (change on Internal -> stored on External): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(0.50)),
            ms(percentile(0.90)),
            ms(percentile(0.99)),
            ms(*latencies.last().unwrap())
        );
    }
}

/// This process's resident memory (`VmRSS:`) or its peak (`VmHWM:`), in KiB.
pub fn resident_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A number given as `name N` on the command line.
pub fn arg(name: &str) -> Option<usize> {
    text_arg(name).map(|value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} takes a number"))
    })
}

/// The text after `name` on the command line. (`cargo bench` adds `--bench` after the
/// arguments it passes on: a value that starts with `--` is the next option, not a value.)
pub fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    Some(
        args.get(i + 1)
            .filter(|value| !value.starts_with("--"))
            .unwrap_or_else(|| panic!("{name} takes a value"))
            .clone(),
    )
}

/// Whether `name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// What this process has used so far: CPU time (user and system, all threads) and bytes
/// handed to `write`-like system calls (SQLite's log and database writes). Read before and
/// after a phase, these give its CPU time and bytes written per event: figures that the
/// other load of a shared machine moves far less than it moves wall-clock throughput.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub cpu: Duration,
    pub written: u64,
}

impl Usage {
    pub fn now() -> Usage {
        Usage::of("self")
    }

    /// What process `pid` (a number, or `self`) has used so far; zero if it cannot be read.
    pub fn of(pid: &str) -> Usage {
        // Fields 14 and 15 of /proc/PID/stat (after the command name, which may hold spaces):
        // user and system time in clock ticks.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: Vec<u64> = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse().ok())
            .collect();
        // The kernel reports in USER_HZ, 100 on Linux.
        let cpu = Duration::from_millis(ticks.iter().sum::<u64>() * 10);
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let written = io
            .lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Usage { cpu, written }
    }

    /// CPU time and bytes written since `earlier`, per event, printed.
    pub fn print_per_event(&self, earlier: Usage, events: i64, what: &str) {
        let events = events.max(1) as f64;
        println!(
            "{what}: CPU {:.0} µs per event (all threads of this process), {:.1} KiB written per event",
            (self.cpu - earlier.cpu).as_secs_f64() * 1e6 / events,
            (self.written - earlier.written) as f64 / 1024.0 / events
        );
    }
}

/// The size of each SQLite database in `dir`, with its log, printed: what a node keeps per
/// twin decides whether its working set stays in the OS page cache.
pub fn print_database_sizes(dir: &std::path::Path) {
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".db-wal").or(name.strip_suffix(".db"))?;
            Some((base.to_string(), entry.metadata().ok()?.len()))
        })
        .fold(Vec::new(), |mut sizes, (base, len)| {
            match sizes.iter_mut().find(|(name, _)| *name == base) {
                Some((_, total)) => *total += len,
                None => sizes.push((base, len)),
            }
            sizes
        });
    sizes.sort();
    let listed: Vec<String> = sizes
        .iter()
        .map(|(name, len)| format!("{name} {:.0} MiB", *len as f64 / 1048576.0))
        .collect();
    println!("databases (with their logs): {}", listed.join(", "));
}
