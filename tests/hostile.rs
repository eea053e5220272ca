//! Hostile processors: each is stopped with its own typed error, kept as a sync error for its
//! twin only, while other twins on the same connection keep syncing.

use std::sync::Arc;

use twinsync::model::Issue;
use twinsync::runtime::{Call, Limits, NoTwins};
use twinsync::store::events::{Event, State};
use twinsync_tests::*;

/// Exalate one issue that makes `scripted` misbehave and one ordinary issue; return the
/// hostile twin's event on External after the queues drain.
fn run(behaviour: &str, limits: Limits) -> Event {
    let mut external = Side::both("scripted");
    external.limits = limits;
    let pair = Pair::new(Side::both("mirror"), external);
    let (_, hostile) = pair.create_and_exalate(scripted_issue("Hostile", behaviour));
    let (_, ordinary) = pair.create_and_exalate(issue("Ordinary"));
    pair.run();
    assert_eq!(
        pair.external_issue(&ordinary).map(|i| i.summary),
        Some("Ordinary".to_string()),
        "the ordinary twin syncs whatever the hostile one does"
    );
    let events = pair
        .external
        .node
        .store()
        .read(twinsync::store::events::all)
        .unwrap();
    events
        .into_iter()
        .find(|e| e.twin_id == hostile)
        .expect("the hostile event is kept")
}

fn assert_error(event: &Event, kind: &str, message_has: &[&str]) {
    assert_eq!(event.state, State::Failed, "{event:?}");
    assert_eq!(event.error_kind.as_deref(), Some(kind), "{event:?}");
    let message = event.error.as_deref().unwrap_or_default();
    for part in message_has {
        assert!(
            message.contains(part),
            "{message:?} should contain {part:?}"
        );
    }
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let event = run("loop", Limits::default());
    assert_error(
        &event,
        "instruction-limit",
        &["instruction limit exceeded", "100000000"],
    );
}

#[test]
fn an_endless_loop_with_fuel_to_spare_times_out() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 100,
        ..Limits::default()
    };
    let event = run("loop", limits);
    assert_error(&event, "timeout", &["longer than 100 ms"]);
}

#[test]
fn allocating_without_bound_hits_the_memory_limit() {
    let event = run("alloc", Limits::default());
    assert_error(&event, "memory-limit", &["the limit is 67108864"]);
}

#[test]
fn recursing_without_bound_overflows_the_stack() {
    let event = run("recurse", Limits::default());
    assert_error(&event, "stack-overflow", &["stack overflow"]);
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let event = run("panic", Limits::default());
    assert_error(&event, "panic", &["scripted panic for"]);
}

#[test]
fn output_far_above_the_cap_is_refused() {
    let event = run("big-output", Limits::default());
    assert_error(&event, "output-too-large", &["the limit is 1048576"]);
}

#[test]
fn invalid_content_is_refused_with_what_is_wrong() {
    let event = run("invalid-output", Limits::default());
    assert_error(
        &event,
        "invalid-output",
        &["due date \"next tuesday\"", "\"yesterday at noon\""],
    );
}

#[test]
fn the_file_system_is_not_there() {
    let event = run("read-file", Limits::default());
    assert_error(&event, "processor-error", &["read /etc/passwd:"]);
}

#[test]
fn the_environment_is_empty() {
    let event = run("env", Limits::default());
    assert_error(&event, "processor-error", &["environment: empty"]);
}

#[test]
fn sockets_and_name_resolution_are_denied() {
    let event = run("socket", Limits::default());
    assert_error(
        &event,
        "processor-error",
        &["connect 127.0.0.1:22:", "resolve localhost:"],
    );
}

#[test]
fn calling_sync_back_in_a_tight_loop_hits_the_host_call_limit() {
    let event = run("sync-back-flood", Limits::default());
    assert_error(&event, "host-call-limit", &["more than 1000 calls"]);
}

#[test]
fn megabytes_of_output_are_cut_at_the_log_cap() {
    let event = run("print-flood", Limits::default());
    assert_eq!(event.state, State::Done, "{event:?}");
    let log = event.log.unwrap_or_default();
    assert!(
        log.len() < 70 << 10,
        "log kept at the cap: {} bytes",
        log.len()
    );
    assert!(
        log.contains("more bytes of log dropped; the log limit is 65536 bytes"),
        "{}",
        &log[log.len() - 200..]
    );
}

#[test]
fn work_just_under_the_limits_succeeds() {
    let event = run("near-limits", Limits::default());
    assert_eq!(event.state, State::Done, "{event:?}");

    // And it really is close to the limits.
    let limits = Limits::default();
    let call = Call {
        ctx: first_sync_context(),
        limits: &limits,
        can_send: true,
        directory: Arc::new(NoTwins),
        merge_base: Default::default(),
    };
    let replica = scripted_issue("Hostile", "near-limits");
    let outcome =
        processor("scripted").run_incoming(&runtime(), call, &replica, None, &Issue::default());
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert!(
        outcome.fuel_used > limits.fuel / 2,
        "fuel used: {}",
        outcome.fuel_used
    );
    assert!(
        outcome.peak_memory > limits.memory_bytes / 2,
        "peak memory: {}",
        outcome.peak_memory
    );
}
