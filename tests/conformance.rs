//! The conformance suite: the scenarios that make a processor language usable, run once per
//! language with that language's `mirror`, `remote-key`, `status-guard` and `scripted`
//! (see `tests/support/languages.rs`). Each language is a module, each scenario a test in
//! it: `cargo test --test conformance python::` runs Python's.
//!
//! The Python and JavaScript processors are built by `scripts/build-polyglot`, which
//! `./scripts/test` runs before `cargo test`; without them their tests fail and say so.

use std::sync::Arc;

use twinsync::model::{Comment, Issue};
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
    let pair = Pair::new(
        Side::both(language.processor("mirror")),
        Side::both(language.processor("scripted")),
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
    assert!(message.starts_with("processor panicked: "), "{message}");
    assert!(message.contains("scripted panic for"), "{message}");
    assert!(message.contains("INT-2"), "{message}");
    let log = crashed.log.as_deref().unwrap_or_default();
    assert!(log.contains("scripted panic for"), "{log}");

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
