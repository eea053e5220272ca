//! Finished events are deleted once they are older than the node keeps them (7 days by
//! default), and nothing that still matters goes with them: sync errors stay, and a message
//! delivered again after its event was deleted is still recognised and not applied twice.

use std::time::Duration;

use twinsync::store::events;
use twinsync::sync::{KEEP_EVENTS, Receipt, SyncMessage};
use twinsync_tests::{CONNECTION, Pair, Side, edit, failed, issue, scripted_issue};

fn event_count(node: &twinsync::sync::Node) -> usize {
    node.store().read(|db| events::all(db)).unwrap().len()
}

/// Change issue `key` on Internal and sync it, keeping the message that carried the change
/// (to deliver it again).
fn change_and_keep_its_message(pair: &Pair, key: &str) -> Vec<SyncMessage> {
    edit(&pair.internal, key, |i| {
        i.summary = "Checkout fails on Safari".into()
    });
    pair.internal.node.poll_changes().unwrap();
    pair.internal.node.process_ready(10).unwrap();
    let message = pair.internal.node.outbox(CONNECTION, 10).unwrap();
    assert_eq!(message.len(), 1, "{message:?}");
    pair.run();
    message
}

#[test]
fn old_finished_events_are_forgotten_and_what_matters_stays() {
    let pair = Pair::new(Side::both("mirror"), Side::both("scripted"));
    let (key, twin) = pair.create_and_exalate(issue("Checkout fails"));
    let (_, broken) = pair.create_and_exalate(scripted_issue("Refused", "error"));
    pair.run();

    // A later change, whose message we keep to deliver it again once its event is gone.
    let resent = change_and_keep_its_message(&pair, &key);
    edit(&pair.internal, &key, |i| {
        i.summary = "Checkout fails everywhere".into()
    });
    pair.internal.node.poll_changes().unwrap();
    pair.run();
    let external_before = pair.external_issue(&twin).unwrap();
    assert_eq!(external_before.summary, "Checkout fails everywhere");

    // Within the keeping time nothing goes.
    pair.clock.advance(KEEP_EVENTS - Duration::from_secs(3600));
    assert_eq!(pair.internal.node.forget_old_events(1_000).unwrap(), 0);
    assert_eq!(pair.external.node.forget_old_events(1_000).unwrap(), 0);

    pair.clock.advance(Duration::from_secs(2 * 3600));
    let internal_events = event_count(&pair.internal.node);
    // Internal's events are all finished outgoing ones: every one goes, a batch at a time.
    assert_eq!(pair.internal.node.forget_old_events(2).unwrap(), 2);
    pair.internal.node.forget_old_events(1_000).unwrap();
    assert_eq!(internal_events, 4, "2 exalations and 2 changes");
    assert_eq!(event_count(&pair.internal.node), 0);

    // External keeps the sync error and, for the good twin, the last message received.
    let forgotten = pair.external.node.forget_old_events(1_000).unwrap();
    assert_eq!(forgotten, 2, "the first two messages of the good twin");
    let left = pair
        .external
        .node
        .store()
        .read(|db| events::all(db))
        .unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(failed(&pair.external.node)[0].twin_id, broken);
    let last_received = pair
        .external
        .node
        .store()
        .read(|db| events::last_received(db, twinsync_tests::CONNECTION, &twin))
        .unwrap()
        .map(|last| last.message_seq);
    assert_eq!(last_received, Some(3));

    // The change delivered again is a duplicate: the issue does not go back.
    let receipts = pair.external.node.receive_all(&resent).unwrap();
    assert_eq!(receipts, vec![Receipt::Duplicate]);
    pair.run();
    assert_eq!(pair.external_issue(&twin).unwrap(), external_before);
}

#[test]
fn a_message_stored_in_another_form_is_known_when_it_comes_again() {
    use twinsync::store::bodies;
    use twinsync::store::sql::Value;

    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, _) = pair.create_and_exalate(issue("Checkout fails"));
    pair.run();
    let resent = change_and_keep_its_message(&pair, &key);

    // External holds the message as a release before 2026-12-01 wrote it: every stamp with
    // its `replaced_at` and `replaced_by`, even when they are 0 and empty.
    let id = resent[0].id.as_str();
    pair.external
        .node
        .store()
        .write(|tx| {
            let stored = events::stored(tx, id)?.unwrap().message.unwrap();
            let mut message: serde_json::Value = serde_json::from_str(&stored)?;
            let stamps = message["stamps"].as_object_mut().unwrap();
            assert!(!stamps.is_empty());
            for stamp in stamps.values_mut() {
                let stamp = stamp.as_object_mut().unwrap();
                stamp.entry("replaced_at").or_insert(0.into());
                stamp.entry("replaced_by").or_insert("".into());
            }
            let earlier_form = serde_json::to_string(&message)?;
            assert_ne!(earlier_form, stored);
            let packed = bodies::pack(tx.dialect(), &earlier_form)?;
            tx.execute(
                "UPDATE event_bodies SET message = ?1
                 WHERE seq = (SELECT seq FROM events WHERE id = ?2)",
                &[packed.value(), Value::Text(id)],
            )?;
            Ok(())
        })
        .unwrap();

    // Delivered again (its receipt was lost): the same message, not a contradiction.
    let receipts = pair.external.node.receive_all(&resent).unwrap();
    assert_eq!(receipts, vec![Receipt::Duplicate]);
    assert!(failed(&pair.external.node).is_empty());
}
