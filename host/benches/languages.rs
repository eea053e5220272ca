//! Processors in Rust, Python and JavaScript side by side, for BENCHMARKS.md: the size of
//! `mirror`, its compile time (cold, and loaded from the compile cache as after a
//! restart), and one invocation of its incoming side on the realistic issue (10 custom
//! fields, 20 comments), with the merge base a node gives it (`support/event.rs`): new
//! store, instantiate, call, drop, with both allocators. Languages
//! whose components are not built are skipped (`scripts/build-polyglot` builds them).
//!
//! `cargo bench -p twinsync --bench languages [-- --iterations N] [--only LANGUAGE]`
//! `--wasm FILE` measures the incoming processor of FILE instead of the `mirror`s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use twinsync::model::Issue;
use twinsync::runtime::{Call, Compiled, Limits, NoTwins, Outcome, Plugin, Runtime, RuntimeConfig};
use twinsync_tests::languages;
use twinsync_tests::processor_wasm;

#[path = "support/event.rs"]
mod event;
use event::{Inputs, context, inputs};

// The allocator of the `twinsync` binary, so that this bench measures what users run.
#[global_allocator]
static ALLOCATOR: twinsync::Allocator = twinsync::Allocator;

fn main() {
    let iterations = option("--iterations").map_or(500, |n| n.parse().expect("--iterations N"));
    let only = option("--only");
    let candidates: Vec<(String, Result<Vec<u8>, String>)> = match option("--wasm") {
        Some(file) => vec![(
            file.clone(),
            std::fs::read(&file).map_err(|e| e.to_string()),
        )],
        None => languages::ALL
            .iter()
            .filter(|l| {
                only.as_ref()
                    .is_none_or(|name| name.eq_ignore_ascii_case(l.name))
            })
            .map(|l| (l.name.to_string(), processor_wasm(&l.processor("mirror"))))
            .collect(),
    };
    let inputs = inputs();
    println!(
        "incoming processor on sample_issue(10, 20) with its merge base; {iterations} invocations per figure\n"
    );
    println!(
        "| processor | size | compile, cold | compile, from cache | invocation, pooling (median / p99) \
         | invocation, on-demand (median / p99) | fuel per call | peak linear memory | page faults per call |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (label, wasm) in candidates {
        match wasm {
            Ok(wasm) => report(&label, &wasm, &inputs, iterations),
            Err(why) => println!("| {label} | skipped: {why} |"),
        }
    }
}

/// One row of the table.
fn report(label: &str, wasm: &[u8], inputs: &Inputs, iterations: usize) {
    // Every runtime here shares one cache: one cold compile per component.
    let cache = tempfile::tempdir().expect("temp dir");
    let with_cache = |config: RuntimeConfig| {
        let config = RuntimeConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..config
        };
        Runtime::new(&config).expect("runtime")
    };
    let (cold, cached) = compile_times(|| with_cache(RuntimeConfig::default()), wasm);
    let pooled = with_cache(RuntimeConfig::default());
    let on_demand = with_cache(RuntimeConfig {
        pool: None,
        ..RuntimeConfig::default()
    });
    let pooled_run = measure(&pooled, wasm, inputs, iterations);
    let on_demand_run = measure(&on_demand, wasm, inputs, iterations);
    println!(
        "| {label} | {:.1} MiB | {} | {} | {} / {} | {} / {} | {:.1} M | {:.1} MiB | {:.0} |",
        mib(wasm.len()),
        duration(cold),
        duration(cached),
        duration(pooled_run.median),
        duration(pooled_run.p99),
        duration(on_demand_run.median),
        duration(on_demand_run.p99),
        pooled_run.fuel as f64 / 1e6,
        mib(pooled_run.peak_memory),
        pooled_run.page_faults,
    );
}

/// The value after `name` on the command line.
fn option(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

/// A cold compile (written to the empty cache of `runtime`), then a load from that cache
/// by a new runtime, as a node does when it restarts.
fn compile_times(runtime: impl Fn() -> Runtime, wasm: &[u8]) -> (Duration, Duration) {
    let load = || {
        let runtime = runtime();
        let plugin = runtime
            .load("processor", wasm)
            .expect("the processor loads");
        (plugin.compiled, plugin.compile_time)
    };
    let (compiled, cold) = load();
    assert_eq!(compiled, Compiled::Cached);
    let (compiled, cached) = load();
    assert_eq!(compiled, Compiled::FromCache);
    (cold, cached)
}

struct Run {
    median: Duration,
    p99: Duration,
    fuel: u64,
    peak_memory: usize,
    page_faults: f64,
}

fn measure(runtime: &Runtime, wasm: &[u8], inputs: &Inputs, iterations: usize) -> Run {
    let plugin = runtime
        .load("processor", wasm)
        .expect("the processor loads");
    let limits = Limits::default();
    let first = invoke(runtime, &plugin, &limits, inputs);
    let expected = first
        .result
        .as_ref()
        .expect("the processor succeeds")
        .clone();
    // Warm up: the pool's slots get the component's memory image, the CPU its caches.
    for _ in 0..iterations / 10 {
        invoke(runtime, &plugin, &limits, inputs);
    }
    let faults_before = minor_page_faults();
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let outcome = invoke(runtime, &plugin, &limits, inputs);
        times.push(started.elapsed());
        assert_eq!(
            outcome.result.as_ref(),
            Ok(&expected),
            "same result every time"
        );
    }
    let page_faults = (minor_page_faults() - faults_before) as f64 / iterations as f64;
    times.sort();
    Run {
        median: times[times.len() / 2],
        p99: times[times.len() * 99 / 100],
        fuel: first.fuel_used,
        peak_memory: first.peak_memory,
        page_faults,
    }
}

fn invoke(runtime: &Runtime, plugin: &Plugin, limits: &Limits, inputs: &Inputs) -> Outcome<Issue> {
    let call = Call {
        ctx: context(),
        limits,
        can_send: true,
        directory: Arc::new(NoTwins),
        // Cloned per call, as a node builds one per event from the twin it stores.
        merge_base: inputs.merge_base.clone(),
    };
    plugin.run_incoming(
        runtime,
        call,
        &inputs.replica,
        Some(&inputs.previous),
        &inputs.local,
    )
}

/// Minor page faults of this process so far (field 10 of /proc/self/stat).
fn minor_page_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .nth(7)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(10) {
        format!("{} ms", d.as_millis())
    } else if d >= Duration::from_millis(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{} µs", d.as_micros())
    }
}
