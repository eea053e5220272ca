//! The conformance suite: the scenarios that make a processor language usable, run once per
//! language with that language's `mirror`, `remote-key`, `status-guard` and `scripted`
//! (see `tests/support/languages.rs`). Each language is a module, each scenario a test in
//! it: `cargo test --test conformance python::` runs Python's.
//!
//! The Python and JavaScript processors are built by `scripts/build-polyglot`, which
//! `./scripts/test` runs before `cargo test`; without them their tests fail and say so.

use std::sync::Arc;

use twinsync::model::{Comment, Issue};
use twinsync::ops;
use twinsync::runtime::{
    Call, ConflictPolicy, Limits, NoTwins, Plugin, PoolConfig, ProcessorFailure, Runtime,
    RuntimeConfig,
};
use twinsync::store::events;
use twinsync::sync::{Connection, Flow};
use twinsync_tests::languages::{JAVASCRIPT, Language, PYTHON, RUST};
use twinsync_tests::*;

/// One module per language, one test per scenario. Adding a language is adding a line.
macro_rules! conformance {
    ($($module:ident => $language:expr),+ $(,)?) => {$(
        mod $module {
            use super::*;

            const LANGUAGE: Language = $language;

            #[test]
            fn seed_scenario_sync_back_stores_the_remote_key_on_the_source() {
                super::seed_scenario(&LANGUAGE);
            }

            #[test]
            fn conflict_table_diverges_with_mirror() {
                super::conflict_table_diverges_with_mirror(&LANGUAGE);
            }

            #[test]
            fn conflict_table_converges_with_status_guard() {
                super::conflict_table_converges_with_status_guard(&LANGUAGE);
            }

            #[test]
            fn conflict_table_converges_with_the_default_policy() {
                super::conflict_table_converges_with_the_default_policy(&LANGUAGE);
            }

            #[test]
            fn concurrent_edits_follow_each_conflict_policy() {
                super::concurrent_edits_follow_each_conflict_policy(&LANGUAGE);
            }

            #[test]
            fn sync_back_on_a_unidirectional_connection_is_a_processor_error() {
                super::sync_back_on_a_unidirectional_connection_is_a_processor_error(&LANGUAGE);
            }

            #[test]
            fn an_ignored_sync_back_error_is_a_sync_error_and_nothing_is_lost() {
                super::an_ignored_sync_back_error_is_a_sync_error_and_nothing_is_lost(&LANGUAGE);
            }

            #[test]
            fn comments_sync_both_ways_once() {
                super::comments_sync_both_ways_once(&LANGUAGE);
            }

            #[test]
            fn shares_the_instance_pool_with_rust_processors() {
                super::shares_the_instance_pool_with_rust_processors(&LANGUAGE);
            }

            #[test]
            fn processor_errors_and_crashes_are_sync_errors_of_their_twin_only() {
                super::processor_errors_and_crashes_are_sync_errors_of_their_twin_only(&LANGUAGE);
            }
        }
    )+};
}

conformance! {
    rust => RUST,
    python => PYTHON,
    javascript => JAVASCRIPT,
}

fn seed_scenario(language: &Language) {
    let remote_key = language.processor("remote-key");
    let pair = Pair::new(Side::both(&remote_key), Side::both(&remote_key));
    let (key, twin) = pair.create_and_exalate(issue("Customer cannot log in"));
    let stats = pair.run();

    let external = pair
        .external_issue(&twin)
        .expect("External created the issue");
    let external_key = external.key.clone().unwrap();
    assert!(external_key.starts_with("EXT-"), "{external_key}");
    assert_eq!(external.summary, "Customer cannot log in");
    assert_eq!(external.custom_text("remote issue key"), Some(key.as_str()));
    assert_eq!(
        pair.internal_issue(&key).custom_text("remote issue key"),
        Some(external_key.as_str())
    );
    // Exalate, create + sync back, send back, store: four events, two messages, and the key
    // stored on Internal does not bounce the issue back again.
    assert_eq!(stats.events_done, 4, "{stats:?}");
    assert_eq!(stats.events_failed, 0);
    assert_eq!(stats.messages, 2);
    assert!(unfinished(&pair.internal.node).is_empty());
    assert!(unfinished(&pair.external.node).is_empty());
}

/// The seed page's conflict table (see `replay_conflict_table`) with this language's
/// processors, and `internal_incoming` on Internal's incoming side, under `overwrite` (the
/// policy the page's tools have; not the default, which settles the race by itself).
fn conflict_table(language: &Language, internal_incoming: &str) -> (String, String) {
    let internal = Side::both(language.processor("mirror"))
        .incoming(language.processor(internal_incoming))
        .policy(ConflictPolicy::Overwrite);
    let external = Side::both(language.processor("remote-key")).policy(ConflictPolicy::Overwrite);
    replay_conflict_table(internal, external)
}

fn conflict_table_diverges_with_mirror(language: &Language) {
    let (source, target) = conflict_table(language, "mirror");
    assert_eq!((source.as_str(), target.as_str()), ("Open", "In Progress"));
}

fn conflict_table_converges_with_status_guard(language: &Language) {
    let (source, target) = conflict_table(language, "status-guard");
    assert_eq!(
        (source.as_str(), target.as_str()),
        ("In Progress", "In Progress")
    );
}

/// The same table with no guard in any processor and the default policy (last-writer-wins):
/// the helpers' three-way merge recognises the sync back's stale status as older than the
/// local change, and both sides end with the status set last. A mirror that takes every
/// remote value (`overwrite`) ends apart, as in `conflict_table_diverges_with_mirror`.
fn conflict_table_converges_with_the_default_policy(language: &Language) {
    let (source, target) = replay_conflict_table(
        Side::both(language.processor("mirror")),
        Side::both(language.processor("remote-key")),
    );
    assert_eq!(
        (source.as_str(), target.as_str()),
        ("In Progress", "In Progress")
    );
}

/// Both sides change the status of a twin before hearing from the other (Internal to
/// "In Progress", External to "Waiting"), with `language`'s `mirror` on both sides and
/// every field under `policy`. Returns the statuses and the conflicts held on each side.
fn concurrent_status_edits(
    language: &Language,
    policy: ConflictPolicy,
) -> (String, String, Vec<ops::ConflictRow>, Vec<ops::ConflictRow>) {
    let side = || Side::both(language.processor("mirror")).policy(policy);
    let pair = Pair::new(side(), side());
    let (key, twin) = pair.create_and_exalate(issue("Concurrent"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    edit(&pair.internal, &key, |i| i.status = "In Progress".into());
    edit(&pair.external, &external_key, |i| {
        i.status = "Waiting".into()
    });
    pair.internal.node.poll_changes().unwrap();
    pair.external.node.poll_changes().unwrap();
    pair.run();
    assert!(failed(&pair.internal.node).is_empty(), "{policy:?}");
    assert!(failed(&pair.external.node).is_empty(), "{policy:?}");
    (
        pair.internal_issue(&key).status,
        pair.external_issue(&twin).unwrap().status,
        ops::conflicts(pair.internal.node.store()).unwrap(),
        ops::conflicts(pair.external.node.store()).unwrap(),
    )
}

/// The helpers of every language settle a conflict as the connection's policy says, as the
/// Rust SDK does: each side takes the other's value (`overwrite`, `remote-wins`), keeps its
/// own (`local-wins`), both pick the value written last (`last-writer-wins`), or each keeps
/// its own and holds the conflict for an operator (`hold-for-review`).
fn concurrent_edits_follow_each_conflict_policy(language: &Language) {
    let swapped = ("Waiting", "In Progress");
    let kept = ("In Progress", "Waiting");
    for (policy, expected) in [
        (ConflictPolicy::Overwrite, Some(swapped)),
        (ConflictPolicy::RemoteWins, Some(swapped)),
        (ConflictPolicy::LocalWins, Some(kept)),
        (ConflictPolicy::LastWriterWins, None),
        (ConflictPolicy::HoldForReview, Some(kept)),
    ] {
        let (internal, external, held_internal, held_external) =
            concurrent_status_edits(language, policy);
        match expected {
            Some(expected) => assert_eq!(
                (internal.as_str(), external.as_str()),
                expected,
                "{policy:?}"
            ),
            // Which write is the last depends on the clock; that both sides agree does not.
            None => {
                assert_eq!(internal, external, "{policy:?}");
                assert!(["In Progress", "Waiting"].contains(&internal.as_str()));
            }
        }
        let held = policy == ConflictPolicy::HoldForReview;
        for (side, conflicts, theirs) in [
            ("Internal", &held_internal, "Waiting"),
            ("External", &held_external, "In Progress"),
        ] {
            if held {
                assert_eq!(conflicts.len(), 1, "{side}: {conflicts:?}");
                assert_eq!(conflicts[0].field, "status");
                assert!(conflicts[0].remote_value.contains(theirs), "{conflicts:?}");
            } else {
                assert!(conflicts.is_empty(), "{policy:?} on {side}: {conflicts:?}");
            }
        }
    }
}

/// Internal sends only, External receives only with `incoming` in `language`.
fn one_way(language: &Language, external_incoming: &str) -> Pair {
    Pair::new(
        Side::both(language.processor("mirror")).flow(Flow::SendOnly),
        Side::both(language.processor(external_incoming)).flow(Flow::ReceiveOnly),
    )
}

fn sync_back_on_a_unidirectional_connection_is_a_processor_error(language: &Language) {
    let pair = one_way(language, "scripted");
    let (_, twin) = pair.create_and_exalate(scripted_issue("One way only", "sync-back-always"));
    pair.run();
    // A processor that asks anyway turns the host's refusal into its own processor error.
    let errors = failed(&pair.external.node);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_kind.as_deref(), Some("processor-error"));
    let message = errors[0].error.as_deref().unwrap();
    assert!(message.contains("unidirectional"), "{message}");
    assert!(pair.external_issue(&twin).is_none(), "nothing applied");

    // `remote-key` checks the direction first: on a one-way connection it does not ask,
    // and the issue arrives with its remote key.
    let pair = one_way(language, "remote-key");
    let (key, twin) = pair.create_and_exalate(issue("One way only"));
    pair.run();
    assert!(failed(&pair.external.node).is_empty());
    let arrived = pair.external_issue(&twin).expect("applied");
    assert_eq!(arrived.custom_text("remote issue key"), Some(key.as_str()));
}

fn an_ignored_sync_back_error_is_a_sync_error_and_nothing_is_lost(language: &Language) {
    let pair = one_way(language, "scripted");
    let (_, twin) = pair.create_and_exalate(scripted_issue(
        "Ignores the error",
        "sync-back-ignore-error",
    ));
    pair.run();
    let errors = failed(&pair.external.node);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].error_kind.as_deref(),
        Some("sync-back-unidirectional")
    );
    let message = errors[0].error.as_deref().unwrap();
    assert!(message.contains("is unidirectional"), "{message}");
    assert!(pair.external_issue(&twin).is_none());

    // Nothing lost: install a processor that does not sync back and retry the event.
    let fixed = Connection::new(
        CONNECTION,
        "Internal",
        Flow::ReceiveOnly,
        Some(processor(&language.processor("mirror"))),
        None,
        Default::default(),
    )
    .unwrap();
    pair.external.node.replace_connection(fixed).unwrap();
    pair.external
        .node
        .store()
        .write(|tx| events::retry(tx, &errors[0].id))
        .unwrap();
    pair.run();
    assert_eq!(
        pair.external_issue(&twin).unwrap().summary,
        "Ignores the error"
    );
    assert!(failed(&pair.external.node).is_empty());
}

/// A processor error keeps its message; a crash (Rust panic, uncaught Python exception or
/// JavaScript error) is a `panic` whose message is the guest's, with the guest's report
/// (backtrace, traceback, stack) in the event's log. Other twins keep syncing.
fn processor_errors_and_crashes_are_sync_errors_of_their_twin_only(language: &Language) {
    errors_and_crashes(language, "scripted");
}

/// JavaScript written without the helpers (`guest/js/bare.js`): a thrown `Error` is still a
/// crash with its stack in the log, and `throw { payload: { message } }` a refusal, because
/// the build wraps every processor (`guardExports`). componentize-js alone would make the
/// `Error` a `processor-error` with its message and no stack.
#[test]
fn javascript_without_the_helpers_tells_refusals_from_crashes() {
    errors_and_crashes(&JAVASCRIPT, "bare");
}

/// `processor_errors_and_crashes_are_sync_errors_of_their_twin_only` with External's
/// `incoming` (a processor that reads "test behaviour" as `scripted` does).
fn errors_and_crashes(language: &Language, incoming: &str) {
    let pair = Pair::new(
        Side::both(language.processor("mirror")),
        Side::both(language.processor("mirror")).incoming(language.processor(incoming)),
    );
    let (_, refused) = pair.create_and_exalate(scripted_issue("Refused", "error"));
    let (_, crashes) = pair.create_and_exalate(scripted_issue("Explodes", "panic"));
    let (_, fine) = pair.create_and_exalate(issue("Fine"));
    pair.run();

    let errors = failed(&pair.external.node);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let by_twin = |twin: &str| errors.iter().find(|e| e.twin_id == twin).unwrap();
    let refused = by_twin(&refused);
    assert_eq!(refused.error_kind.as_deref(), Some("processor-error"));
    let expected = ProcessorFailure::Processor {
        message: "refusing issue on purpose".into(),
    };
    assert_eq!(
        refused.error.as_deref(),
        Some(expected.to_string().as_str())
    );

    let crashed = by_twin(&crashes);
    assert_eq!(crashed.error_kind.as_deref(), Some("panic"), "{crashed:?}");
    let message = crashed.error.as_deref().unwrap();
    // The exception line as each language reports it (the README shows the Python one).
    let reported = match (language.name, incoming) {
        ("Python", _) => "app.ScriptedPanic: scripted panic for 'INT-2'",
        ("JavaScript", "bare") => "Error: scripted panic for \"INT-2\"",
        ("JavaScript", _) => "ScriptedPanic: scripted panic for \"INT-2\"",
        _ => "scripted panic for Some(\"INT-2\")",
    };
    assert_eq!(message, format!("processor panicked: {reported}"));
    let log = crashed.log.as_deref().unwrap_or_default();
    assert!(log.contains("scripted panic for"), "{log}");
    if language.name == JAVASCRIPT.name {
        // The stack, down to the line of the processor that threw.
        assert!(log.contains(&format!("{incoming}.js:")), "{log}");
    }

    assert_eq!(pair.external_issue(&fine).unwrap().summary, "Fine");
}

/// A large component shares the instance pool with small ones. In a pool with room for two
/// invocations at once, this language's `mirror` runs again and again while Rust's runs
/// beside it: every invocation gets its instance, none fails for want of the core
/// instances, memories or tables that the other holds.
fn shares_the_instance_pool_with_rust_processors(language: &Language) {
    let runtime = Runtime::new(&RuntimeConfig {
        pool: Some(PoolConfig::for_workers(0)),
        cache_dir: Some(compile_cache_dir()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert_eq!(runtime.allocator(), "pooling");
    let load = |name: String| {
        let wasm = processor_wasm(&name).unwrap_or_else(|message| panic!("{message}"));
        runtime.load(&name, &wasm).unwrap()
    };
    let large = load(language.processor("mirror"));
    let small = load(RUST.processor("mirror"));
    let replica = issue("Shared pool");
    let run_once = |plugin: &Plugin| {
        let call = Call {
            ctx: first_sync_context(),
            limits: &Limits::default(),
            can_send: true,
            directory: Arc::new(NoTwins),
            merge_base: Default::default(),
        };
        let outcome = plugin.run_incoming(&runtime, call, &replica, None, &Issue::default());
        outcome.result.expect("every invocation gets an instance");
    };
    // Rust's runs on this thread for as long as the large one's 20 runs last.
    let small_runs = std::thread::scope(|scope| {
        let large_runs = scope.spawn(|| (0..20).for_each(|_| run_once(&large)));
        let mut small_runs = 0;
        while small_runs == 0 || !large_runs.is_finished() {
            run_once(&small);
            small_runs += 1;
        }
        large_runs
            .join()
            .expect("the large component's invocations succeed");
        small_runs
    });
    assert!(small_runs > 0);
}

/// A comment made on either side appears once on the other, an edit follows it, and the
/// sync back of the first sync duplicates nothing.
fn comments_sync_both_ways_once(language: &Language) {
    let remote_key = language.processor("remote-key");
    let pair = Pair::new(Side::both(&remote_key), Side::both(&remote_key));
    let comment = |body: &str| Comment {
        id: String::new(),
        author: None,
        body: body.into(),
        created: String::new(),
        updated: None,
        internal: false,
    };
    let mut first = issue("Talkative");
    first.comments.push(comment("From Internal"));
    let (key, twin) = pair.create_and_exalate(first);
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    edit(&pair.external, &external_key, |i| {
        i.comments.push(comment("From External"))
    });
    pair.run();
    edit(&pair.internal, &key, |i| {
        i.comments[0].body = "From Internal, edited".into()
    });
    pair.run();

    let bodies = |issue: Issue| -> Vec<String> {
        let mut bodies: Vec<String> = issue.comments.into_iter().map(|c| c.body).collect();
        bodies.sort();
        bodies
    };
    let expected = ["From External", "From Internal, edited"];
    assert_eq!(bodies(pair.internal_issue(&key)), expected);
    assert_eq!(bodies(pair.external_issue(&twin).unwrap()), expected);
    assert!(failed(&pair.internal.node).is_empty());
    assert!(failed(&pair.external.node).is_empty());
}
