//! A connection's rate beside a noisy neighbour on the same node: the neighbour's processor
//! sleeps (virtual time: a timeout at once) or loops until its 100 ms limit on every event.
//! Prints the quiet connection's events per second alone and beside each neighbour, best
//! of `RUNS` runs each, and the ratio.
//!
//! `cargo bench -p twinsync --bench noisy_neighbour`

use twinsync::runtime::Limits;
use twinsync_tests::neighbours::{NOISY_EVENTS, QUIET_EVENTS, WORKERS, compare};

const RUNS: usize = 5;

fn main() {
    println!(
        "{QUIET_EVENTS} quiet events beside {NOISY_EVENTS} noisy ones, {WORKERS} workers, best of {RUNS}"
    );
    let looping = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 100,
        ..Limits::default()
    };
    for (name, behaviour, limits) in [
        ("sleeps 30 s", "sleep-30s", Limits::default()),
        ("loops to its 100 ms limit", "loop", looping),
    ] {
        let (alone, beside, kinds) = compare(behaviour, limits, RUNS);
        println!(
            "neighbour {name:26} quiet {alone:6.0} events/s alone, {beside:6.0} beside it: {:5.1} % \
             ({} neighbour events ended as {:?})",
            beside / alone * 100.0,
            kinds.len(),
            kinds.first().map(String::as_str).unwrap_or("-"),
        );
    }
}
