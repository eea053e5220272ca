//! Conflicts: held for review and settled by an operator; echoes of what the other side
//! sent are not sent back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use twinsync::model::{Comment, SyncReason};
use twinsync::ops;
use twinsync::runtime::ConflictPolicy;
use twinsync::store::events;
use twinsync::sync::{Flow, Node, Take};
use twinsync::tracker::Tracker;
use twinsync_tests::trackers::{Call, Hooked};
use twinsync_tests::*;

fn held_pair() -> (Pair, String, String) {
    let side = || Side::both("mirror").policy(ConflictPolicy::HoldForReview);
    let pair = Pair::new(side(), side());
    let (key, twin) = pair.create_and_exalate(issue("Held"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    // Both sides change the status before hearing from the other.
    edit(&pair.internal, &key, |i| i.status = "In Progress".into());
    edit(&pair.external, &external_key, |i| {
        i.status = "Waiting".into()
    });
    pair.internal.node.poll_changes().unwrap();
    pair.external.node.poll_changes().unwrap();
    pair.run();
    (pair, key, external_key)
}

#[test]
fn a_conflict_is_held_on_both_sides_and_settled_by_an_operator() {
    let (pair, key, external_key) = held_pair();
    assert_eq!(
        pair.internal_issue(&key).status,
        "In Progress",
        "each side keeps its value"
    );
    let conflicts = ops::conflicts(pair.internal.node.store()).unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].field, "status");
    assert!(
        conflicts[0].remote_value.contains("Waiting"),
        "{conflicts:?}"
    );
    assert_eq!(ops::conflicts(pair.external.node.store()).unwrap().len(), 1);

    // The operator on Internal keeps the remote value: both sides end with it, and both
    // conflicts close.
    pair.internal
        .node
        .resolve_conflict(conflicts[0].id, Take::Remote)
        .unwrap();
    pair.run();
    assert_eq!(pair.internal_issue(&key).status, "Waiting");
    let external = pair.external.tracker.list().unwrap();
    assert_eq!(
        external
            .iter()
            .find(|i| i.key.as_deref() == Some(&external_key))
            .unwrap()
            .status,
        "Waiting"
    );
    assert!(
        ops::conflicts(pair.internal.node.store())
            .unwrap()
            .is_empty()
    );
    assert!(
        ops::conflicts(pair.external.node.store())
            .unwrap()
            .is_empty(),
        "the other side's conflict closed too"
    );
}

/// A held pair whose operator on Internal kept Internal's value.
fn held_pair_kept_local() -> (Pair, String, String) {
    let (pair, key, external_key) = held_pair();
    let id = ops::conflicts(pair.internal.node.store()).unwrap()[0].id;
    pair.internal
        .node
        .resolve_conflict(id, Take::Local)
        .unwrap();
    (pair, key, external_key)
}

#[test]
fn keeping_the_local_value_sends_it_to_the_other_side() {
    let (pair, key, _) = held_pair_kept_local();
    pair.run();
    let external = &pair.external.tracker.list().unwrap()[0];
    assert_eq!(
        external.status, "In Progress",
        "the decision reached the other side"
    );
    assert_eq!(pair.internal_issue(&key).status, "In Progress");
    assert!(
        ops::conflicts(pair.external.node.store())
            .unwrap()
            .is_empty()
    );
}

/// An operator's decision made while an outgoing event of the twin is under way (after it
/// read the twin, before it commits) is not undone by that event: the decision still
/// reaches the other side, and both sides keep the chosen value.
#[test]
fn a_decision_made_while_an_event_of_the_twin_runs_still_reaches_the_other_side() {
    let (mut pair, key, external_key) = held_pair();
    let id = ops::conflicts(pair.external.node.store()).unwrap()[0].id;
    // External's tracker makes the decision when armed, as the next event reads the issue.
    let node: Arc<OnceLock<Arc<Node>>> = Default::default();
    let armed = Arc::new(AtomicBool::new(false));
    let (decides, armed_here) = (node.clone(), armed.clone());
    let hooked = Hooked::new(pair.external.tracker.clone()).before(move |call, _| {
        if matches!(call, Call::Get(_)) && armed_here.swap(false, Ordering::SeqCst) {
            let node = decides.get().expect("the node");
            node.resolve_conflict(id, Take::Local)
                .expect("the decision");
        }
        Ok(())
    });
    pair.replace_external_tracker(Arc::new(hooked));
    assert!(node.set(pair.external.node.clone()).is_ok());

    // Another field edited on External: its event reads the issue, and the operator keeps
    // External's status just then.
    edit(&pair.external, &external_key, |i| {
        i.summary = "Held, edited".into()
    });
    pair.external.node.poll_changes().unwrap();
    armed.store(true, Ordering::SeqCst);
    pair.run();
    assert!(!armed.load(Ordering::SeqCst), "decided while the event ran");

    let external = pair.external.tracker.get(&external_key).unwrap().unwrap();
    let internal = pair.internal_issue(&key);
    assert_eq!(
        (external.status.as_str(), external.summary.as_str()),
        ("Waiting", "Held, edited")
    );
    assert_eq!(
        (internal.status.as_str(), internal.summary.as_str()),
        ("Waiting", "Held, edited"),
        "the decision reached the other side"
    );
    for side in [&pair.internal, &pair.external] {
        assert!(ops::conflicts(side.node.store()).unwrap().is_empty());
    }
}

/// A held pair whose operator on Internal kept Internal's value, and then dropped the retry
/// that decision queued before it ran.
fn held_pair_with_its_decision_dropped() -> (Pair, String, String) {
    let (pair, key, external_key) = held_pair_kept_local();
    let retries: Vec<_> = unfinished(&pair.internal.node)
        .into_iter()
        .filter(|e| e.reason == SyncReason::Retry)
        .collect();
    assert_eq!(retries.len(), 1, "{retries:?}");
    ops::skip(pair.internal.node.store(), &retries[0].id).unwrap();
    (pair, key, external_key)
}

fn no_conflict_open(pair: &Pair) {
    for side in [&pair.internal, &pair.external] {
        let open = ops::conflicts(side.node.store()).unwrap();
        assert!(open.is_empty(), "{open:?}");
    }
}

/// A decision whose retry an operator drops before it runs is not lost: the twin's next
/// outgoing event sends it, whatever its reason.
#[test]
fn a_decision_whose_retry_is_dropped_goes_with_the_next_event() {
    let (pair, key, external_key) = held_pair_with_its_decision_dropped();
    edit(&pair.internal, &key, |i| i.summary = "Held, edited".into());
    pair.internal.node.poll_changes().unwrap();
    pair.run();
    let external = pair.external.tracker.get(&external_key).unwrap().unwrap();
    assert_eq!(
        (external.status.as_str(), external.summary.as_str()),
        ("In Progress", "Held, edited"),
        "the decision went with the next local change"
    );
    no_conflict_open(&pair);
}

/// ... and with no next event, reconciliation finds the decision unsent and sends it.
#[test]
fn a_decision_whose_retry_is_dropped_is_sent_by_reconciliation() {
    let (pair, key, external_key) = held_pair_with_its_decision_dropped();
    pair.run();
    let report = pair.internal.node.verify(None).unwrap();
    assert_eq!(report.fixed, 1, "{report:?}");
    pair.run();
    let external = pair.external.tracker.get(&external_key).unwrap().unwrap();
    assert_eq!(
        external.status, "In Progress",
        "the decision reached the other side"
    );
    assert_eq!(pair.internal_issue(&key).status, "In Progress");
    no_conflict_open(&pair);
}

/// On a side that cannot send, a decision has nothing to go with: reconciliation does not
/// take it for a mismatch, to be recorded again as a sync error on every run.
#[test]
fn reconciliation_leaves_a_decision_a_receive_only_side_cannot_send() {
    let pair = Pair::new(
        Side::both("mirror").flow(Flow::SendOnly),
        Side::both("mirror")
            .flow(Flow::ReceiveOnly)
            .policy(ConflictPolicy::HoldForReview),
    );
    let (key, twin) = pair.create_and_exalate(issue("Held"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    edit(&pair.external, &external_key, |i| {
        i.status = "Waiting".into()
    });
    pair.external.node.poll_changes().unwrap();
    edit(&pair.internal, &key, |i| i.status = "In Progress".into());
    pair.internal.node.poll_changes().unwrap();
    pair.run();
    let open = ops::conflicts(pair.external.node.store()).unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    pair.external
        .node
        .resolve_conflict(open[0].id, Take::Local)
        .unwrap();
    pair.run();
    for event in unfinished(&pair.external.node) {
        ops::skip(pair.external.node.store(), &event.id).unwrap();
    }
    for _ in 0..2 {
        let report = pair.external.node.verify(None).unwrap();
        assert_eq!((report.fixed, report.errors), (0, 0), "{report:?}");
    }
    assert_eq!(pair.external_issue(&twin).unwrap().status, "Waiting");
}

/// A decision not sent yet when a newer write of the other side conflicts with the kept
/// value again is dropped for the new conflict, which the operator settles: sent after it,
/// it would claim to replace that newer write, and the other side would take the kept value
/// over it with no conflict, its user's write lost unseen.
#[test]
fn a_newer_conflict_on_the_field_replaces_a_decision_not_sent_yet() {
    let (pair, key, external_key) = held_pair();
    // External's user changes the status again; the message reaches Internal, and waits.
    edit(&pair.external, &external_key, |i| {
        i.status = "Blocked".into()
    });
    pair.external.node.poll_changes().unwrap();
    pair.external.node.process_ready(100).unwrap();
    assert_eq!(pair.network.deliver().unwrap(), 1);
    // The operator on Internal keeps Internal's value of the first conflict meanwhile.
    let id = ops::conflicts(pair.internal.node.store()).unwrap()[0].id;
    pair.internal
        .node
        .resolve_conflict(id, Take::Local)
        .unwrap();
    pair.run();

    let external = pair.external.tracker.get(&external_key).unwrap().unwrap();
    assert_eq!(external.status, "Blocked", "External's newer write is kept");
    assert_eq!(pair.internal_issue(&key).status, "In Progress");
    // Internal holds the new conflict, with External's newer value, for the operator.
    let open = ops::conflicts(pair.internal.node.store()).unwrap();
    let newer = open
        .iter()
        .find(|c| c.field == "status" && c.remote_value.contains("Blocked"))
        .unwrap_or_else(|| panic!("a conflict on External's newer write: {open:?}"));
    // Settled, the sides agree and no conflict is left open on either.
    pair.internal
        .node
        .resolve_conflict(newer.id, Take::Remote)
        .unwrap();
    pair.run();
    assert_eq!(pair.internal_issue(&key).status, "Blocked");
    let external = pair.external.tracker.get(&external_key).unwrap().unwrap();
    assert_eq!(external.status, "Blocked");
    no_conflict_open(&pair);
}

#[test]
fn an_echo_of_what_the_other_side_sent_is_not_sent_back() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("Original"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    edit(&pair.internal, &key, |i| {
        i.summary = "Renamed on Internal".into()
    });
    pair.run();

    // Automation on External re-saves the issue it just got (adding an internal note):
    // a local change whose replica says nothing External has not got from Internal.
    let sent_before = pair
        .external
        .node
        .store()
        .read(|db| events::all(db))
        .unwrap()
        .len();
    edit(&pair.external, &external_key, |i| {
        i.comments.push(Comment {
            id: String::new(),
            author: None,
            body: "automation ran".into(),
            created: String::new(),
            updated: None,
            internal: true,
        })
    });
    pair.run();
    let events = pair
        .external
        .node
        .store()
        .read(|db| events::all(db))
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        events.len(),
        sent_before + 1,
        "one event for the automation's change"
    );
    assert_eq!(
        last.note.as_deref(),
        Some("nothing the other side does not have: nothing sent")
    );
    assert!(
        pair.internal
            .node
            .outbox(CONNECTION, 10)
            .unwrap()
            .is_empty()
    );
}
