//! Hostile processors: each is stopped with its own typed error, kept as a sync error for its
//! twin only, while other twins on the same connection keep syncing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use twinsync::model::Issue;
use twinsync::runtime::{Call, Limits, NoTwins, ProcessorFailure};
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
        .read(|db| twinsync::store::events::all(db))
        .unwrap();
    events
        .into_iter()
        .find(|e| e.twin_id == hostile)
        .expect("the hostile event is kept")
}

/// Like [`run`], with the hostile behaviour in the Internal side's outgoing processor: the
/// hostile twin's event on Internal.
fn run_outgoing(behaviour: &str) -> Event {
    let pair = Pair::new(Side::both("scripted"), Side::both("mirror"));
    let (_, hostile) = pair.create_and_exalate(scripted_issue("Hostile", behaviour));
    let (_, ordinary) = pair.create_and_exalate(issue("Ordinary"));
    pair.run();
    assert_eq!(
        pair.external_issue(&ordinary).map(|i| i.summary),
        Some("Ordinary".to_string()),
        "the ordinary twin syncs whatever the hostile one does"
    );
    failed(&pair.internal.node)
        .into_iter()
        .find(|e| e.twin_id == hostile)
        .expect("the hostile event is kept as a sync error")
}

/// Run `scripted` with `behaviour` once, directly, on first sync; with the time it took.
fn call_once(
    behaviour: &str,
    limits: &Limits,
) -> (Result<Issue, ProcessorFailure>, String, Duration) {
    let call = Call {
        ctx: first_sync_context(),
        limits,
        can_send: true,
        directory: Arc::new(NoTwins),
        merge_base: Default::default(),
    };
    let replica = scripted_issue("Hostile", behaviour);
    let started = Instant::now();
    let outcome =
        processor("scripted").run_incoming(&runtime(), call, &replica, None, &Issue::default());
    (outcome.result, outcome.log, started.elapsed())
}

/// Run `behaviour` once and check that it fails with `kind` within a second (what the
/// sandbox refused cost the host nothing); the failure.
fn fails_at_once(behaviour: &str, limits: &Limits, kind: &str) -> ProcessorFailure {
    let (result, _, took) = call_once(behaviour, limits);
    let failure = result.expect_err(behaviour);
    assert_eq!(failure.kind(), kind, "{failure}");
    assert!(took < Duration::from_secs(1), "{behaviour} took {took:?}");
    failure
}

/// Run `body` and check that the host's resident memory grew by less than 200 MiB (the
/// guest's own memory, in the pool, included).
fn memory_stays_put<T>(body: impl FnOnce() -> T) -> T {
    let resident = || {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    };
    let before = resident();
    let result = body();
    let grown = resident().saturating_sub(before);
    assert!(
        grown < 200 << 20,
        "resident memory grew by {} MiB",
        grown >> 20
    );
    result
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

// Time inside the sandbox is virtual: a sleep returns at once and moves the processor's
// clock; sleeping past the time limit is a timeout, at once, whatever the sleep's length.

#[test]
fn sleeping_thirty_seconds_is_a_timeout_at_once() {
    let started = Instant::now();
    let event = run("sleep-30s", Limits::default());
    assert_error(&event, "timeout", &["longer than 2000 ms"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sleeping_forever_is_a_timeout_at_once() {
    fails_at_once("sleep-forever", &Limits::default(), "timeout");
}

#[test]
fn polling_a_long_subscription_is_a_timeout_at_once() {
    fails_at_once("poll-long", &Limits::default(), "timeout");
}

#[test]
fn a_short_sleep_returns_at_once_and_the_clock_moves_by_it() {
    let (result, _, took) = call_once("sleep-briefly", &Limits::default());
    let issue = result.expect("a 500 ms sleep fits the 2 s limit");
    assert_eq!(issue.description.as_deref(), Some("slept 500 ms"));
    assert!(took < Duration::from_millis(400), "{took:?}");
}

// What a processor hands the host is bounded before it is copied.

#[test]
fn eight_aliased_60_mb_conflict_values_are_refused_before_they_are_copied() {
    // The host copies none of the 480 MB.
    let event = memory_stays_put(|| run("conflict-flood", Limits::default()));
    assert_error(&event, "host-data-limit", &["the limit is 1048576"]);
}

#[test]
fn a_50_mb_key_look_up_is_refused_before_it_is_copied() {
    fails_at_once("lookup-flood", &Limits::default(), "host-data-limit");
}

#[test]
fn many_small_host_calls_add_up_to_the_same_budget() {
    let event = run("conflict-drip", Limits::default());
    assert_error(
        &event,
        "host-data-limit",
        &["at least 1048917 bytes", "the limit is 1048576"],
    );
}

#[test]
fn a_result_whose_strings_alias_one_buffer_is_refused_while_copying() {
    // 1,000 references to a 2 MiB buffer: 2 GB if each were copied.
    memory_stays_put(|| fails_at_once("aliased-output", &Limits::default(), "output-too-large"));
}

#[test]
fn fifty_thousand_custom_fields_are_checked_in_linear_time() {
    // The text of 50,000 fields is just over the default 1 MiB output cap: what is tested
    // here is the time the host's checks take, so the cap is raised.
    let limits = Limits {
        output_bytes: 4 << 20,
        ..Limits::default()
    };
    let (result, _, took) = call_once("many-fields", &limits);
    let failure = result.unwrap_err();
    assert_eq!(failure.kind(), "invalid-output", "{failure}");
    assert!(
        failure
            .to_string()
            .contains("custom field \"f0\" appears more than once"),
        "{failure}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

// Smaller cases from the same trial.

#[test]
fn large_stack_frames_past_the_start_of_linear_memory_are_a_stack_overflow() {
    let event = run("big-frames", Limits::default());
    assert_error(&event, "stack-overflow", &["stack overflow"]);
}

#[test]
fn exit_is_one_line_with_its_status() {
    let event = run("exit", Limits::default());
    // WASI 0.2's `exit` carries success or failure only: exit(3) arrives as status 1.
    assert_error(&event, "trap", &["the processor called exit with status 1"]);
    let message = event.error.unwrap_or_default();
    assert!(!message.contains('\n'), "{message:?}");
}

#[test]
fn a_key_on_first_sync_is_refused_the_same_way_by_a_dry_run_and_by_the_node() {
    let dry_run = fails_at_once("key-on-first-sync", &Limits::default(), "invalid-output");
    let event = run("key-on-first-sync", Limits::default());
    assert_error(&event, "invalid-output", &["\"MADE-UP-1\""]);
    assert!(event.error.unwrap().contains(&dry_run.to_string()));
}

#[test]
fn an_outgoing_replica_must_keep_the_local_key() {
    let event = run_outgoing("outgoing-other-key");
    assert_error(&event, "invalid-output", &["\"SOMEONE-ELSES-1\""]);
}

#[test]
fn record_conflict_from_an_outgoing_processor_is_an_error() {
    let event = run_outgoing("outgoing-record-conflict");
    assert_error(
        &event,
        "misuse",
        &["record-conflict can only be called from an incoming processor"],
    );
}

#[test]
fn a_sleeping_outgoing_processor_is_a_timeout() {
    let event = run_outgoing("outgoing-sleep");
    assert_error(&event, "timeout", &["longer than 2000 ms"]);
}

#[test]
fn a_processor_importing_wasi_http_is_refused_with_an_explanation() {
    let wasm = std::fs::read(HTTP_IMPORTER).unwrap();
    let error = runtime()
        .load("http-importer.wasm", &wasm)
        .unwrap_err()
        .to_string();
    for part in [
        "is not a twinsync processor",
        "wasi:http/types@0.2",
        "does not provide",
        "processors have no network",
    ] {
        assert!(error.contains(part), "{error:?} should contain {part:?}");
    }
    assert!(
        !error.contains("import `"),
        "no raw linker message: {error}"
    );
}
