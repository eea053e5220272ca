//! The queue under trouble: a poison event blocks its twin only and does not slow the
//! others; a tracker that is down makes events wait and retry, then drain in order; edits
//! ride with an event that waits, on the sending side and on the receiving one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use twinsync::model::SyncReason;
use twinsync::store::events::{self, Kind, State};
use twinsync::store::{history, twins};
use twinsync::sync::{Node, Receipt};
use twinsync::tracker::Tracker;
use twinsync::tracker::TrackerError;
use twinsync_tests::trackers::Hooked;
use twinsync_tests::*;

/// Run `changes` edits over `twins` twins through a pair; one extra twin is poisoned if
/// asked. Returns the time the healthy events took and the pair.
fn run(twins: usize, changes: usize, poison: bool) -> (Duration, Pair) {
    let pair = Pair::new(Side::both("mirror"), Side::both("scripted"));
    let mut keys = Vec::new();
    for n in 0..twins {
        keys.push(
            pair.create_and_exalate(issue(&format!("issue {n} rev 0")))
                .0,
        );
    }
    if poison {
        pair.create_and_exalate(scripted_issue("poison", "error"));
    }
    pair.run();
    let started = Instant::now();
    for change in 0..changes {
        let n = change % twins;
        edit(&pair.internal, &keys[n], |i| {
            i.summary = format!("issue {n} rev {}", change / twins + 1)
        });
        if change % twins == twins - 1 {
            pair.run();
        }
    }
    pair.run();
    (started.elapsed(), pair)
}

#[test]
fn a_poison_event_does_not_slow_the_other_twins() {
    let (twins, changes) = (100, 5_000);
    let (healthy, _) = run(twins, changes, false);
    let (with_poison, pair) = run(twins, changes, true);
    eprintln!("{changes} changes: {healthy:?} without a poison event, {with_poison:?} with one");

    // Every healthy twin is up to date; the poisoned one holds one sync error.
    let external = pair.external.tracker.list().unwrap();
    assert_eq!(
        external.len(),
        twins,
        "the poisoned issue was not created; all others were"
    );
    let last = changes / twins;
    assert!(
        external
            .iter()
            .all(|i| i.summary.ends_with(&format!("rev {last}")))
    );
    let errors = failed(&pair.external.node);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_kind.as_deref(), Some("processor-error"));
    // Same rate, within the noise of a shared machine.
    assert!(
        with_poison.as_secs_f64() < healthy.as_secs_f64() * 1.5 + 1.0,
        "the poison event slowed the run: {healthy:?} -> {with_poison:?}"
    );
}

#[test]
fn a_tracker_that_is_down_makes_events_wait_and_drain_in_order() {
    let mut pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    // External's tracker can be switched off: every call then fails as a tracker that is
    // down fails.
    let down = Arc::new(AtomicBool::new(false));
    let switch = down.clone();
    let flaky = Hooked::new(pair.external.tracker.clone()).before(move |_, _| {
        if switch.load(Ordering::SeqCst) {
            return Err(TrackerError::Unavailable(
                "connection refused (switched off by the test)".into(),
            ));
        }
        Ok(())
    });
    pair.replace_external_tracker(Arc::new(flaky));
    let (key, twin) = pair.create_and_exalate(issue("rev 0"));
    pair.run();

    down.store(true, Ordering::SeqCst);
    for rev in 1..=5 {
        edit(&pair.internal, &key, |i| i.summary = format!("rev {rev}"));
        pair.run();
    }
    let waiting = unfinished(&pair.external.node);
    assert!(!waiting.is_empty());
    assert!(
        waiting.iter().all(|e| e.state == State::Pending),
        "transient: no sync error"
    );
    assert_eq!(
        waiting[0].error_kind.as_deref(),
        Some("tracker-unavailable")
    );
    assert!(waiting[0].attempts >= 1);
    assert!(failed(&pair.external.node).is_empty());

    // Back up: once the retry time has come, everything drains, in order.
    down.store(false, Ordering::SeqCst);
    pair.clock.advance(Duration::from_secs(120));
    pair.run();
    assert!(unfinished(&pair.external.node).is_empty());
    assert_eq!(pair.external_issue(&twin).unwrap().summary, "rev 5");
    let applied: Vec<String> = pair
        .external
        .node
        .store()
        .read(|db| twinsync::store::events::all(db))
        .unwrap()
        .into_iter()
        .filter(|e| e.twin_id == twin && e.state == State::Done)
        .filter_map(|e| e.note)
        .collect();
    assert!(applied.len() >= 2, "{applied:?}");
}

#[test]
fn edits_made_while_an_event_waits_ride_with_it() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("rev 0"));
    pair.run();

    // Ten edits, each seen by the change feed, none processed yet.
    for rev in 1..=10 {
        edit(&pair.internal, &key, |i| i.summary = format!("rev {rev}"));
        pair.internal.node.poll_changes().unwrap();
    }
    let queued: Vec<_> = unfinished(&pair.internal.node)
        .into_iter()
        .filter(|e| e.twin_id == twin)
        .collect();
    // One event that may already be under way, and one waiting behind it that will read
    // the issue as it is when it runs: not ten.
    assert_eq!(queued.len(), 2, "{queued:?}");

    pair.run();
    assert_eq!(pair.external_issue(&twin).unwrap().summary, "rev 10");
    assert!(unfinished(&pair.internal.node).is_empty());
}

/// An event queued for an edit that the event before it read already finds the issue as
/// that one read it: it finishes without calling the processor, which its history does not
/// name and `plugin try` does not replay. Not when the issue changed since that read, nor
/// when the processor's settings did, nor when something was received since (the issue's
/// stamps moved on).
#[test]
fn an_event_for_an_edit_the_event_before_it_read_finishes_without_the_processor() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("rev 0"));
    pair.run();
    let read_already = "nothing new: the twin's last outgoing event read the issue as it is";
    let sending = "sent as message";
    let internal = &pair.internal;
    let outgoing_notes = || {
        internal
            .node
            .store()
            .read(|db| events::list(db, Some(&twin), None))
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == Kind::Outgoing && e.state == State::Done)
            .map(|e| e.note.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    // Two edits, each seen by the change feed before the first event runs; the first event
    // reads both.
    let mut seen = outgoing_notes().len();
    let two_edits = |first: &str, second: &str| {
        edit(internal, &key, |i| i.summary = first.into());
        internal.node.poll_changes().unwrap();
        edit(internal, &key, |i| i.summary = second.into());
        internal.node.poll_changes().unwrap();
        internal.node.process_ready(10).unwrap();
    };
    // Run both nodes; the notes of the outgoing events finished since the last check.
    let mut check = |notes: &[&str]| {
        internal.node.process_ready(10).unwrap();
        pair.run();
        let all = outgoing_notes();
        let new: Vec<&String> = all[seen..].iter().collect();
        seen = all.len();
        assert_eq!(new.len(), notes.len(), "{new:?}");
        for (note, start) in new.iter().zip(notes) {
            assert!(note.starts_with(start), "{note:?} is not {start:?}");
        }
    };

    two_edits("rev 1", "rev 2");
    check(&[sending, read_already]);
    assert_eq!(pair.external_issue(&twin).unwrap().summary, "rev 2");
    // Its history names no processor, and `plugin try` does not replay it.
    let store = internal.node.store();
    let filter = history::Filter {
        key: Some(twin.clone()),
        ..Default::default()
    };
    let entries = store.read(|db| history::query(db, &filter)).unwrap();
    let processor_of = |start: &str| {
        let entry = entries.iter().find(|e| e.note.starts_with(start)).unwrap();
        entry.processor.clone()
    };
    assert_eq!(processor_of(read_already), None);
    assert!(processor_of(sending).is_some());
    let replayed = store
        .read(|db| events::recent_of_connection(db, CONNECTION, 100))
        .unwrap();
    assert!(
        replayed
            .iter()
            .any(|e| e.note.as_deref().unwrap_or_default().starts_with(sending))
    );
    assert!(
        !replayed
            .iter()
            .any(|e| e.note.as_deref() == Some(read_already)),
        "{replayed:?}"
    );

    // Edited again after the first event read the issue: the second one sends that edit.
    two_edits("rev 3", "rev 4");
    edit(internal, &key, |i| i.summary = "rev 5".into());
    // (The event the change feed then queues for rev 5 finds it read.)
    check(&[sending, sending, read_already]);
    assert_eq!(pair.external_issue(&twin).unwrap().summary, "rev 5");

    // The processor's settings changed between the two: the second event runs it.
    two_edits("rev 6", "rev 7");
    let mut changed = (*internal.node.connections()[0]).clone();
    let settings = BTreeMap::from([("a setting".to_string(), "changed".to_string())]);
    changed.outgoing = changed
        .outgoing
        .map(|plugin| Arc::new(plugin.with_settings(&settings)));
    internal.node.replace_connection(changed).unwrap();
    check(&[sending, "nothing the other side does not have"]);

    // A change received from External between the two: the second event runs the
    // processor, which finds that the other side has it all.
    edit(internal, &key, |i| i.summary = "rev 8".into());
    internal.node.poll_changes().unwrap();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    edit(&pair.external, &external_key, |i| {
        i.status = "In Progress".into()
    });
    pair.external.node.poll_changes().unwrap();
    pair.external.node.process_ready(10).unwrap();
    pair.network.deliver().unwrap();
    edit(internal, &key, |i| i.summary = "rev 9".into());
    internal.node.poll_changes().unwrap();
    check(&[sending, "nothing the other side does not have"]);
    let (here, there) = (
        pair.internal_issue(&key),
        pair.external_issue(&twin).unwrap(),
    );
    assert_eq!(
        (here.summary.as_str(), here.status.as_str()),
        ("rev 9", "In Progress")
    );
    assert_eq!(
        (there.summary.as_str(), there.status.as_str()),
        ("rev 9", "In Progress")
    );
    assert!(unfinished(&internal.node).is_empty());
}

/// A receiver that fell behind applies a twin's latest change, not every one in between:
/// a received change that waits behind another event of its twin is superseded by the
/// next message of the twin (each carries the whole replica), which takes its place in
/// line. An unexalate supersedes nothing: the change before it is applied first.
#[test]
fn a_receiver_that_fell_behind_skips_to_a_twins_latest_change() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("rev 0"));
    pair.run();

    // Three edits, each sent in a message of its own, reach External before it runs.
    let mut sent = Vec::new();
    for rev in 1..=3 {
        edit(&pair.internal, &key, |i| i.summary = format!("rev {rev}"));
        pair.internal.node.poll_changes().unwrap();
        pair.internal.node.process_ready(10).unwrap();
        sent.extend(pair.internal.node.outbox(CONNECTION, 10).unwrap());
        pair.network.deliver().unwrap();
    }
    let ids: Vec<&str> = sent.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let incoming = |node: &Node| {
        incoming_events(node, &twin)
            .into_iter()
            .map(|e| (e.id, e.state, e.note))
            .collect::<Vec<_>>()
    };
    let states = incoming(&pair.external.node);
    // The first sync, applied; rev 1, first in the queue (it may be under way); rev 3 in
    // the place of rev 2, which waited behind it; rev 2, skipped.
    assert_eq!(states.len(), 4, "{states:?}");
    assert_eq!(
        (states[1].0.as_str(), states[1].1),
        (ids[0], State::Pending)
    );
    assert_eq!(
        (states[2].0.as_str(), states[2].1),
        (ids[2], State::Pending)
    );
    assert_eq!(
        (states[3].0.as_str(), states[3].1),
        (ids[1], State::Skipped)
    );
    assert!(
        states[3].2.as_deref().unwrap_or_default().contains(ids[2]),
        "{states:?}"
    );
    // Delivered again, the message superseded and the one in its place are both known.
    let again = pair.external.node.receive_all(&sent[1..]).unwrap();
    assert_eq!(again, [Receipt::Duplicate, Receipt::Duplicate]);
    assert_eq!(incoming(&pair.external.node), states, "nothing changed");

    // Unexalated now: the unexalate waits behind rev 3, which is applied before it.
    pair.internal.node.unexalate(CONNECTION, &key).unwrap();
    pair.internal.node.process_ready(10).unwrap();
    pair.network.deliver().unwrap();
    let states = incoming(&pair.external.node);
    assert_eq!(
        (states[2].0.as_str(), states[2].1),
        (ids[2], State::Pending)
    );
    let external_key = pair
        .external
        .node
        .store()
        .read(|db| twins::get(db, &twin))
        .unwrap()
        .unwrap()
        .local_key;

    pair.run();
    let states = incoming(&pair.external.node);
    assert_eq!(states[1].1, State::Done, "{states:?}");
    assert_eq!(states[2].1, State::Done, "{states:?}");
    let issue = pair.external.tracker.get(&external_key).unwrap().unwrap();
    assert_eq!(issue.summary, "rev 3");
    assert!(pair.external_issue(&twin).is_none(), "unexalated");
    assert!(unfinished(&pair.external.node).is_empty());
}

/// Superseding is for local changes only: a sync back waiting behind another event is not
/// superseded by the twin's next message, and a sync back does not supersede the local
/// change waiting before it. (A peer names the reason: the sync backs here are Internal's
/// messages with their reason changed.) Each is applied, in order.
#[test]
fn a_sync_back_neither_supersedes_nor_is_superseded() {
    for sync_back in [1, 2] {
        let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
        let (key, twin) = pair.create_and_exalate(issue("rev 0"));
        pair.run();
        let mut sent = Vec::new();
        for rev in 1..=3 {
            edit(&pair.internal, &key, |i| i.summary = format!("rev {rev}"));
            pair.internal.node.poll_changes().unwrap();
            pair.internal.node.process_ready(10).unwrap();
            sent.extend(pair.internal.node.outbox(CONNECTION, 10).unwrap());
            let ids: Vec<String> = sent.iter().map(|m| m.id.clone()).collect();
            pair.internal.node.acknowledge(&ids).unwrap();
        }
        assert_eq!(sent.len(), 3);
        // The second message (waiting behind the first), or the third (which would
        // supersede the second), is a sync back.
        sent[sync_back].reason = SyncReason::SyncBack;
        sent[sync_back].hop = 1;
        let receipts = pair.external.node.receive_all(&sent).unwrap();
        assert!(
            receipts.iter().all(|r| *r == Receipt::Accepted),
            "{receipts:?}"
        );
        let incoming = || {
            incoming_events(&pair.external.node, &twin)
                .into_iter()
                .map(|e| (e.id, e.state))
                .collect::<Vec<_>>()
        };
        let ids: Vec<&str> = sent.iter().map(|m| m.id.as_str()).collect();
        // The first sync, applied; then the three, none superseded.
        let states = incoming();
        let waiting: Vec<(&str, State)> = states[1..]
            .iter()
            .map(|(id, state)| (id.as_str(), *state))
            .collect();
        let pending = ids
            .iter()
            .map(|id| (*id, State::Pending))
            .collect::<Vec<_>>();
        assert_eq!(waiting, pending, "sync back in message {}", sync_back + 1);
        pair.run();
        assert!(
            incoming().iter().all(|(_, state)| *state == State::Done),
            "{:?}",
            incoming()
        );
        assert_eq!(pair.external_issue(&twin).unwrap().summary, "rev 3");
    }
}

/// The incoming events of `twin` on `node`, in queue order.
fn incoming_events(node: &Node, twin: &str) -> Vec<events::Event> {
    node.store()
        .read(|db| events::list(db, Some(twin), None))
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == Kind::Incoming)
        .collect()
}
