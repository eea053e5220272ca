//! Latency over loopback HTTP between two `twinsync serve` processes: a change made on
//! Internal (admin API) until External's tracker has it (admin API), one change at a time.
//!
//! `cargo bench -p twinsync --bench http_latency -- [--changes N]`

use std::time::{Duration, Instant};

use serde_json::json;
use twinsync_tests::process::{eventually, pair};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let changes: usize = args
        .iter()
        .position(|a| a == "--changes")
        .and_then(|i| args.get(i + 1))
        .map_or(10_000, |n| n.parse().expect("--changes takes a number"));
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = pair(
        std::path::Path::new(env!("CARGO_BIN_EXE_twinsync")),
        dir.path(),
        "mirror",
    );
    let (_, created) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": "rev 0", "status": "Open"}),
    );
    let key = created["key"].as_str().unwrap().to_string();
    internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    eventually(Duration::from_secs(30), "the first sync", || {
        external
            .get("/v1/twins")
            .as_array()
            .is_some_and(|t| t.len() == 1)
    });
    let external_key = external.get("/v1/twins")[0]["local_key"]
        .as_str()
        .unwrap()
        .to_string();

    let mut latencies = Vec::with_capacity(changes);
    for rev in 1..=changes {
        let summary = format!("rev {rev}");
        let started = Instant::now();
        let (status, _) = internal.send(
            "PATCH",
            &format!("/v1/issues/{key}"),
            json!({"summary": summary}),
        );
        assert_eq!(status, 200);
        loop {
            if external
                .issue(&external_key)
                .is_some_and(|i| i["summary"] == summary.as_str())
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "rev {rev} never arrived"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "loopback HTTP, {changes} changes one at a time (change on Internal -> stored on External): \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
