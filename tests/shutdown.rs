//! Stopping a node while a processor runs: SIGTERM interrupts it at once, and its event
//! stays queued as it was, to run again after the restart.

use std::time::{Duration, Instant};

use serde_json::json;
use twinsync_tests::process::{NodeProcess, NodeSpec, eventually, free_port};

#[test]
fn sigterm_interrupts_a_processor_that_would_run_for_ten_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(
        twinsync_tests::twinsync_binary!(),
        dir.path(),
        NodeSpec {
            instance: "Internal",
            project: "INT",
            remote: "External",
            port: free_port(),
            admin_port: free_port(),
            // Nobody there: the message would wait in the outbox.
            remote_port: free_port(),
            processor: twinsync_tests::SCRIPTED,
            extra: "[connection.limits]\ntimeout-ms = 600000\nfuel = 100000000000000\n",
        },
    );
    let (status, created) = node.send(
        "POST",
        "/v1/issues",
        json!({
            "summary": "Loops when sent",
            "status": "Open",
            "custom_fields": [{"name": "test behaviour", "value": {"type": "text", "value": "outgoing-loop"}}],
        }),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    let (status, body) = node.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    assert_eq!(status, 200, "{body}");
    // Give a worker time to pick the event up and start looping.
    std::thread::sleep(Duration::from_millis(1500));

    let started = Instant::now();
    node.stop();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} to stop the node; log:\n{}",
        node.log()
    );

    // Restarted, the event is still queued (not a sync error): it was interrupted, not failed.
    node.restart();
    let queue = node.get("/v1/queue");
    eprintln!("stopped in {took:?}; queue after restart: {queue}");
    assert_eq!(queue[0]["connection"], "internal-external", "{queue}");
    assert_eq!(queue[0]["failed"], json!(0), "{queue}");
    eventually(
        Duration::from_secs(10),
        "the event is pending again",
        || {
            node.get("/v1/queue")[0]["pending"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        },
    );
}
