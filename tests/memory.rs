//! The host's memory stays bounded while hostile processors run again and again.

use std::sync::Arc;

use twinsync::model::{FieldValue, Issue};
use twinsync::runtime::{Call, Limits, NoTwins};
use twinsync_tests::*;

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn each_hostile_processor_a_thousand_times_in_a_row() {
    let runtime = runtime();
    let plugin = processor("scripted");
    // Small limits so that a thousand runs take seconds, not hours.
    let limits = Limits {
        fuel: 2_000_000,
        timeout_ms: 50,
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let context = first_sync_context();
    let behaviours = [
        "loop",
        "alloc",
        "recurse",
        "panic",
        "big-output",
        "invalid-output",
        "read-file",
        "env",
        "socket",
        "sync-back-flood",
        "print-flood",
        "near-limits",
        "error",
        "sleep-30s",
        "sleep-forever",
        "poll-long",
        "conflict-flood",
        "conflict-drip",
        "lookup-flood",
        "many-fields",
        "aliased-output",
        "big-frames",
        "exit",
        "key-on-first-sync",
    ];
    for behaviour in behaviours {
        let mut replica = issue("Hostile");
        replica.set_custom_field(BEHAVIOUR, FieldValue::Text(behaviour.into()));
        let run = |times: usize| {
            for _ in 0..times {
                let call = Call {
                    ctx: context.clone(),
                    limits: &limits,
                    can_send: true,
                    directory: Arc::new(NoTwins),
                    merge_base: Default::default(),
                };
                let outcome =
                    plugin.run_incoming(&runtime, call, &replica, None, &Issue::default());
                assert!(
                    outcome.result.is_err() || behaviour == "print-flood",
                    "{behaviour}: {:?}",
                    outcome.result
                );
            }
        };
        run(50);
        let before = resident_bytes();
        run(1_000);
        let grown = resident_bytes().saturating_sub(before);
        eprintln!(
            "{behaviour}: resident memory {} KiB -> grew {} KiB over 1,000 runs",
            before >> 10,
            grown >> 10
        );
        assert!(
            grown < 16 << 20,
            "{behaviour}: resident memory grew by {} KiB over 1,000 runs",
            grown >> 10
        );
    }
}
