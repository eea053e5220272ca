//! What goes wrong stays visible, for one twin only, and nothing is lost.

use twinsync::runtime::ProcessorFailure;
use twinsync::store::events;
use twinsync::store::events::State;
use twinsync::sync::{Connection, Flow, MAX_SYNC_BACK_HOPS};
use twinsync_tests::*;

fn one_way(external_incoming: &'static str) -> Pair {
    Pair::new(
        Side::both("mirror").flow(Flow::SendOnly),
        Side::both(external_incoming).flow(Flow::ReceiveOnly),
    )
}

#[test]
fn sync_back_on_a_unidirectional_connection_is_an_error_the_processor_sees() {
    let pair = one_way("scripted");
    let (_, twin) = pair.create_and_exalate(scripted_issue("One way only", "sync-back-always"));
    pair.run();
    // scripted returns the error it got: a processor error with the host's explanation.
    let errors = failed(&pair.external.node);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_kind.as_deref(), Some("processor-error"));
    let message = errors[0].error.as_deref().unwrap();
    assert!(message.contains("unidirectional"), "{message}");
    assert!(pair.external_issue(&twin).is_none(), "nothing applied");
}

/// `remote-key` checks the direction before asking for a sync back: on a one-way
/// connection every event is applied, none fails.
#[test]
fn remote_key_on_a_one_way_connection_does_not_ask_for_a_sync_back() {
    let pair = one_way("remote-key");
    let (key, twin) = pair.create_and_exalate(issue("One way only"));
    pair.run();
    edit(&pair.internal, &key, |i| {
        i.summary = "One way, changed".into()
    });
    pair.internal.node.poll_changes().unwrap();
    pair.run();
    let errors = failed(&pair.external.node);
    assert!(errors.is_empty(), "{errors:?}");
    let arrived = pair.external_issue(&twin).expect("applied");
    assert_eq!(arrived.summary, "One way, changed");
    assert_eq!(arrived.custom_text("remote issue key"), Some(key.as_str()));
}

#[test]
fn an_ignored_sync_back_error_ends_as_a_sync_error_naming_the_rule_and_nothing_is_lost() {
    let pair = one_way("scripted");
    let (_, twin) = pair.create_and_exalate(scripted_issue(
        "Ignores the error",
        "sync-back-ignore-error",
    ));
    pair.run();
    let errors = failed(&pair.external.node);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].error_kind.as_deref(),
        Some("sync-back-unidirectional")
    );
    let message = errors[0].error.as_deref().unwrap();
    assert!(message.contains("is unidirectional"), "{message}");
    assert!(message.contains("sync-back-after-processing"), "{message}");
    assert!(pair.external_issue(&twin).is_none());

    // Nothing lost: install a processor that does not sync back and retry the event.
    let fixed = Connection::new(
        CONNECTION,
        "Internal",
        Flow::ReceiveOnly,
        Some(processor("mirror")),
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

#[test]
fn sync_back_outside_first_sync_on_both_sides_stops_with_a_visible_error() {
    let pair = Pair::new(Side::both("scripted"), Side::both("scripted"));
    let (key, _) = pair.create_and_exalate(scripted_issue("Ping pong", "sync-back-always"));
    let stats = pair.run();

    let mut errors = failed(&pair.internal.node);
    errors.extend(failed(&pair.external.node));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_kind.as_deref(), Some("sync-back-loop"));
    let message = errors[0].error.as_deref().unwrap();
    assert!(message.contains("bounced back unchanged"), "{message}");
    let processed = stats.events_done + stats.events_failed;
    assert!(
        processed <= 2 * (MAX_SYNC_BACK_HOPS as usize + 1),
        "{stats:?}"
    );
    // The rest of the system is not affected: another issue still syncs.
    let (_, other) = pair.create_and_exalate(issue("Unrelated"));
    pair.run();
    assert!(pair.external_issue(&other).is_some());
    assert!(!key.is_empty());
}

#[test]
fn a_failing_processor_blocks_its_twin_only() {
    let pair = Pair::new(Side::both("mirror"), Side::both("scripted"));
    let (bad_key, bad) = pair.create_and_exalate(scripted_issue("Refused", "error"));
    let (_, panics) = pair.create_and_exalate(scripted_issue("Explodes", "panic"));
    let (good_key, good) = pair.create_and_exalate(issue("Fine"));
    pair.run();

    let errors = failed(&pair.external.node);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let by_twin = |twin: &str| errors.iter().find(|e| e.twin_id == twin).unwrap();
    assert_eq!(by_twin(&bad).error_kind.as_deref(), Some("processor-error"));
    assert_eq!(
        by_twin(&bad).error.as_deref(),
        Some(
            ProcessorFailure::Processor {
                message: "refusing issue on purpose".into()
            }
            .to_string()
            .as_str()
        )
    );
    assert_eq!(by_twin(&panics).error_kind.as_deref(), Some("panic"));
    let panic = by_twin(&panics).error.as_deref().unwrap();
    assert!(
        panic.contains("scripted panic for Some(\"INT-2\")"),
        "{panic}"
    );
    assert!(
        by_twin(&panics)
            .log
            .as_deref()
            .unwrap()
            .contains("panicked at")
    );
    assert!(pair.external_issue(&good).is_some());

    // Later changes: the blocked twin's wait behind its error, the others go on.
    edit(&pair.internal, &bad_key, |i| {
        i.summary = "Refused, edited".into()
    });
    edit(&pair.internal, &good_key, |i| {
        i.summary = "Fine, edited".into()
    });
    pair.run();
    assert_eq!(pair.external_issue(&good).unwrap().summary, "Fine, edited");
    let waiting: Vec<_> = unfinished(&pair.external.node)
        .into_iter()
        .filter(|e| e.twin_id == bad)
        .map(|e| e.state)
        .collect();
    assert_eq!(waiting, [State::Failed, State::Pending]);
}
