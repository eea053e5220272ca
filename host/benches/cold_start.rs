//! Cold start of a node with 10 installed processors: compile every component, versus load
//! them from the compile cache (what a restart does).
//!
//! `cargo bench -p twinsync --bench cold_start`

use std::time::{Duration, Instant};

use twinsync::runtime::{Compiled, Runtime, RuntimeConfig};

/// Ten distinct components: the built-in processors, each with a custom section that makes
/// its bytes (and so its cache key) different, as ten vendors' processors would be.
fn processors() -> Vec<(String, Vec<u8>)> {
    (0..10)
        .map(|n| {
            let (name, wasm) = twinsync::builtin::ALL[n % twinsync::builtin::ALL.len()];
            let mut bytes = wasm.to_vec();
            let label = format!("vendor-{n}");
            // A custom section: id 0, size, name size, name (no payload).
            bytes.push(0);
            bytes.push((1 + label.len()) as u8);
            bytes.push(label.len() as u8);
            bytes.extend_from_slice(label.as_bytes());
            (format!("{name}-{n}"), bytes)
        })
        .collect()
}

fn start(config: &RuntimeConfig, processors: &[(String, Vec<u8>)]) -> (Duration, Vec<Compiled>) {
    let started = Instant::now();
    let runtime = Runtime::new(config).unwrap();
    let compiled = processors
        .iter()
        .map(|(name, wasm)| runtime.load(name, wasm).unwrap().compiled)
        .collect();
    (started.elapsed(), compiled)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let processors = processors();
    let runs = 5;
    let without: Vec<Duration> = (0..runs)
        .map(|_| start(&RuntimeConfig::default(), &processors).0)
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let cached = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let (_, first) = start(&cached, &processors);
    assert!(
        first.iter().all(|c| *c == Compiled::Cached),
        "the first start fills the cache"
    );
    let with: Vec<Duration> = (0..runs)
        .map(|_| {
            let (time, compiled) = start(&cached, &processors);
            assert!(compiled.iter().all(|c| *c == Compiled::FromCache));
            time
        })
        .collect();
    println!("cold start, 10 processors ({runs} runs each, median):");
    println!("  compiling every component: {:?}", median(without));
    println!("  from the compile cache:    {:?}", median(with));
}
