//! A noisy neighbour: on one node, connection `noisy`'s processor sleeps or loops on every
//! event, connection `quiet`'s is `mirror`. The quiet connection's events keep flowing
//! through the node's worker pool at nearly the rate they have when the noisy one is idle,
//! and the noisy events end as typed sync errors.
//!
//! Timing: each figure is the best of a few runs, and a measurement under the bar is taken
//! again (up to three times), so that load from elsewhere on the machine does not decide it:
//! the neighbour under test is the other connection, not another program. The ratios are
//! printed (`cargo test --test noisy_neighbour -- --nocapture`); `cargo bench --bench
//! noisy_neighbour` measures them with more runs.

use twinsync::runtime::Limits;
use twinsync_tests::neighbours::compare;

/// Held while a test measures: the test harness runs this file's tests on threads side by
/// side, and a neighbour that loops for its time limit on every event, in the other test,
/// is load from elsewhere for this one (the sleeping test measured 84 to 90 % beside it in
/// a full suite run, and 99 to 112 % alone).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The quiet connection's rate beside the neighbour over its rate alone, measured until it
/// reaches `bar` or three times; every noisy event must have ended as `timeout`.
fn ratio(what: &str, behaviour: &str, limits: Limits, bar: f64) -> f64 {
    // A test that failed while holding it poisoned it; the other still measures alone.
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let (alone, beside, kinds) = compare(behaviour, limits.clone(), 3);
        assert!(
            !kinds.is_empty() && kinds.iter().all(|k| k == "timeout"),
            "{kinds:?}"
        );
        let ratio = beside / alone;
        eprintln!(
            "quiet connection: {alone:.0} events/s alone, {beside:.0} beside a neighbour \
             {what} on every event ({:.0} %)",
            ratio * 100.0
        );
        best = best.max(ratio);
        if best >= bar {
            break;
        }
    }
    best
}

#[test]
fn a_sleeping_neighbour_costs_the_quiet_connection_almost_nothing() {
    let ratio = ratio("sleeping", "sleep-30s", Limits::default(), 0.9);
    assert!(
        ratio >= 0.9,
        "quiet rate {:.0} % of its rate alone",
        ratio * 100.0
    );
}

#[test]
fn a_looping_neighbour_does_not_hold_up_the_quiet_connection() {
    // Each noisy event burns a core until its time limit (100 ms here, fuel to spare).
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 100,
        ..Limits::default()
    };
    let ratio = ratio("looping", "loop", limits, 0.3);
    // Workers share their time between connections: while both have work, the looping one
    // gets about half of it (one of the two workers here), and the quiet one the rest. It
    // is never queued behind the loops: before the pipeline, every batch waited for its
    // slowest event, and 20 loops of 100 ms held all the quiet events back by 2 s (about
    // 15 % of the rate alone). Measured on an idle 2-core machine: 44 to 55 %.
    assert!(
        ratio >= 0.3,
        "quiet rate {:.0} % of its rate alone",
        ratio * 100.0
    );
}
