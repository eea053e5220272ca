//! Many tenants in one embedding host: `--tenants N` idle tenants (default 1,000), each with
//! two connections to other tenants (a ring: tenant i talks to i-1 and i+1) running one
//! shared processor (one `.wasm`, compiled once), on an in-memory tracker that pushes its
//! changes. Prints the start-up time (host start and adding every tenant) on fresh
//! databases and again on existing ones (a restart), the resident memory, the threads and
//! file descriptors, and the CPU the idle host uses.
//!
//! With `--active N` (default 0) the first N tenants then each sync `--changes C` changes
//! (default 200) of their own issues to their neighbour: the throughput, and each tenant's
//! p99 (change pushed to applied on the other tenant), summarised as min/median/max.
//!
//! `cargo bench -p twinsync --bench tenants -- --tenants 10000 --active 100` (`--dir PATH`
//! keeps the databases there, and a later run with the same `--dir` only restarts).

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod example;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use example::MemoryTracker;
use twinsync::model::Issue;
use twinsync::tracker::{Origin, Tracker};
use twinsync::{ConnectionConfig, Host, HostConfig, HostEvent, Processor, Tenant, TenantConfig};

fn main() {
    let count = support::arg("--tenants").unwrap_or(1_000).max(3);
    let active = support::arg("--active").unwrap_or(0).min(count);
    let changes = support::arg("--changes").unwrap_or(200);
    let args: Vec<String> = std::env::args().collect();
    // The databases are made by a process of their own, so that what it leaves in the
    // allocator does not count in the restart's resident memory.
    if let Some(i) = args.iter().position(|a| a == "--create") {
        run(Path::new(&args[i + 1]), count, "fresh databases", 0, 0);
        return;
    }
    println!(
        "{count} tenants, 2 connections each, one shared processor; {} cores, load average {}",
        twinsync::runtime::available_cores(),
        load_average()
    );
    // `--dir PATH`: databases made there by an earlier run are used again.
    let temp = tempfile::tempdir().unwrap();
    let dir = match args.iter().position(|a| a == "--dir") {
        Some(i) => PathBuf::from(&args[i + 1]),
        None => temp.path().to_path_buf(),
    };
    if !dir.join("tenants").exists() {
        let status = std::process::Command::new(&args[0])
            .args(["--tenants", &count.to_string(), "--create"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    run(&dir, count, "restart", active, changes);
}

/// Start a host on `dir` with `count` tenants, print what it takes, idle 5 s, then run the
/// active tenants if any.
fn run(dir: &Path, count: usize, round: &str, active: usize, changes: usize) {
    let trackers: Vec<Arc<MemoryTracker>> = (0..count)
        .map(|i| Arc::new(MemoryTracker::new(&format!("T{i}"))))
        .collect();
    // One component for every connection of every tenant: it is compiled once.
    let wasm: Arc<[u8]> = twinsync::builtin::get("mirror").unwrap().into();
    let before = support::resident_kib("VmRSS:");
    let started = Instant::now();
    let host = Host::start(HostConfig::new(dir)).unwrap();
    for (i, tracker) in trackers.iter().enumerate() {
        host.add_tenant(config(i, count, tracker.clone(), &wasm))
            .unwrap();
    }
    let took = started.elapsed();
    println!(
        "{round}: start-up {:.2} s ({:.0} µs per tenant); resident {} MiB (+{} MiB), {} threads, {} open files",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / count as f64,
        support::resident_kib("VmRSS:") / 1024,
        support::resident_kib("VmRSS:").saturating_sub(before) / 1024,
        threads(),
        open_files(),
    );
    let idle = support::Usage::now();
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "{round}: idle for 5 s: CPU {:.2} s; resident {} MiB, peak {} MiB; {} open files; compiled processors {}",
        (support::Usage::now().cpu - idle.cpu).as_secs_f64(),
        support::resident_kib("VmRSS:") / 1024,
        support::resident_kib("VmHWM:") / 1024,
        open_files(),
        host.compiled_processors()
    );
    if active > 0 {
        run_active(&host, &trackers, active, changes);
    }
    let stopping = Instant::now();
    drop(host);
    println!(
        "{round}: stopped in {:.2} s",
        stopping.elapsed().as_secs_f64()
    );
}

fn config(i: usize, count: usize, tracker: Arc<MemoryTracker>, wasm: &Arc<[u8]>) -> TenantConfig {
    let processor = Processor::Wasm {
        name: "mirror".into(),
        bytes: wasm.clone(),
    };
    let mut config = TenantConfig::new(&format!("t{i}"), &format!("T{i}"), tracker).push_changes();
    for other in [(i + count - 1) % count, (i + 1) % count] {
        // Named by the pair, the same on both ends.
        let (low, high) = (i.min(other), i.max(other));
        config = config.connection(
            ConnectionConfig::new(&format!("t{low}-t{high}"), &format!("T{other}"))
                .processor(processor.clone()),
        );
    }
    config
}

/// The first `active` tenants each exalate one issue to their next neighbour, then change
/// it `changes` times, pushed one at a time; every change's arrival is timed.
fn run_active(host: &Host, trackers: &[Arc<MemoryTracker>], active: usize, changes: usize) {
    let count = trackers.len();
    let events = host.subscribe();
    let tenants: Vec<Tenant> = (0..active)
        .map(|i| host.tenant(&format!("t{i}")).unwrap())
        .collect();
    let mut keys = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let issue = Issue {
            summary: "issue 0 rev 0".into(),
            status: "Open".into(),
            ..Issue::default()
        };
        let key = trackers[i]
            .create(&issue, Origin::User)
            .unwrap()
            .key
            .unwrap();
        let next = (i + 1) % count;
        let (low, high) = (i.min(next), i.max(next));
        tenant.exalate(&format!("t{low}-t{high}"), &key).unwrap();
        keys.push(key);
    }
    // Wait until every twin exists on the other side.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut created = 0;
    while created < active {
        if let Ok(HostEvent::Synced { note, .. }) = events.recv_timeout(Duration::from_secs(1))
            && note.starts_with("created")
        {
            created += 1;
        }
        assert!(Instant::now() < deadline, "only {created} twins created");
    }
    // Each tenant changes its issue `changes` times, one change at a time (a change is made
    // once the previous one arrived, so that each has its own latency).
    let started = Instant::now();
    let latencies: Vec<Vec<Duration>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..active)
            .map(|i| {
                let (tenant, tracker, key) = (&tenants[i], &trackers[i], &keys[i]);
                let receiver = &trackers[(i + 1) % count];
                let other = host.tenant(&format!("t{}", (i + 1) % count)).unwrap();
                scope.spawn(move || {
                    let mut latencies = Vec::with_capacity(changes);
                    let mut remote = None;
                    for rev in 1..=changes {
                        let mut issue = tracker.get(key).unwrap().unwrap();
                        issue.summary = format!("issue 0 rev {rev}");
                        tracker.update(&issue, Origin::User).unwrap();
                        let at = Instant::now();
                        tenant.issues_changed(&[key.as_str()]).unwrap();
                        // The twin has one id on both sides.
                        let remote_key = remote.get_or_insert_with(|| {
                            let mine = tenant.twins().unwrap();
                            let twin = mine.into_iter().find(|t| t.local_key == *key).unwrap().twin;
                            let twins = other.twins().unwrap();
                            twins
                                .into_iter()
                                .find(|t| t.twin == twin)
                                .unwrap()
                                .local_key
                        });
                        let want = format!("issue 0 rev {rev}");
                        loop {
                            let got = receiver.get(remote_key).unwrap().unwrap().summary;
                            if got == want {
                                break;
                            }
                            assert!(at.elapsed() < Duration::from_secs(120), "stuck at {got}");
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        latencies.push(at.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    let total = active * changes;
    let mut p99s: Vec<Duration> = latencies
        .into_iter()
        .map(|mut l| {
            l.sort();
            l[(l.len() - 1) * 99 / 100]
        })
        .collect();
    p99s.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{active} active tenants: {total} changes in {:.1} s, {:.0} changes/s; each tenant's p99 (pushed -> applied on the other tenant): min {:.1} ms, median {:.1} ms, max {:.1} ms",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        ms(p99s[0]),
        ms(p99s[p99s.len() / 2]),
        ms(*p99s.last().unwrap())
    );
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
