//! Unexalate: stopping the sync of a twin is an ordered event; both sides keep their issue
//! and forget the link.

use twinsync::ops;
use twinsync::tracker::Tracker;
use twinsync_tests::*;

fn twins(node: &twinsync::sync::Node) -> usize {
    ops::twins(node.store()).unwrap().len()
}

#[test]
fn unexalate_comes_after_what_was_queued_and_both_sides_forget_the_link() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("Before"));
    pair.run();
    edit(&pair.internal, &key, |i| i.summary = "Last words".into());
    pair.internal.node.poll_changes().unwrap();
    pair.internal.node.unexalate(CONNECTION, &key).unwrap();
    pair.run();

    let external_key = pair.external.tracker.list().unwrap()[0]
        .key
        .clone()
        .unwrap();
    assert_eq!(
        pair.external
            .tracker
            .get(&external_key)
            .unwrap()
            .unwrap()
            .summary,
        "Last words"
    );
    assert_eq!(
        (twins(&pair.internal.node), twins(&pair.external.node)),
        (0, 0)
    );
    assert!(
        pair.external_issue(&twin).is_none(),
        "External forgot the link"
    );

    // Both issues stay, and no longer sync.
    edit(&pair.internal, &key, |i| i.summary = "After".into());
    edit(&pair.external, &external_key, |i| {
        i.status = "Closed".into()
    });
    pair.run();
    assert_eq!(
        pair.external
            .tracker
            .get(&external_key)
            .unwrap()
            .unwrap()
            .summary,
        "Last words"
    );
    assert_eq!(pair.internal_issue(&key).status, "Open");
    assert!(unfinished(&pair.internal.node).is_empty());
    assert!(unfinished(&pair.external.node).is_empty());
}

#[test]
fn a_processor_can_unexalate_after_processing() {
    let pair = Pair::new(Side::both("mirror"), Side::both("scripted"));
    let (key, _) = pair.create_and_exalate(scripted_issue("One-off copy", "unexalate"));
    pair.run();
    assert_eq!(
        pair.external.tracker.list().unwrap().len(),
        1,
        "External created the issue"
    );
    assert_eq!(
        (twins(&pair.internal.node), twins(&pair.external.node)),
        (0, 0)
    );
    edit(&pair.internal, &key, |i| i.summary = "Not sent".into());
    pair.run();
    assert_eq!(
        pair.external.tracker.list().unwrap()[0].summary,
        "One-off copy"
    );
}

#[test]
fn a_message_crossing_the_unexalate_does_not_bring_the_issue_back() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, _) = pair.create_and_exalate(issue("Crossing"));
    pair.run();
    let external_key = pair.external.tracker.list().unwrap()[0]
        .key
        .clone()
        .unwrap();

    // Both sides act before hearing from the other: External edits, Internal unexalates.
    edit(&pair.external, &external_key, |i| {
        i.summary = "Edited over there".into()
    });
    pair.external.node.poll_changes().unwrap();
    pair.external.node.process_ready(10).unwrap();
    pair.internal.node.unexalate(CONNECTION, &key).unwrap();
    pair.internal.node.process_ready(10).unwrap();
    pair.run();

    assert_eq!(
        pair.internal.tracker.list().unwrap().len(),
        1,
        "no second issue on Internal"
    );
    assert_eq!(
        pair.external.tracker.list().unwrap().len(),
        1,
        "no second issue on External"
    );
    assert_eq!(
        (twins(&pair.internal.node), twins(&pair.external.node)),
        (0, 0)
    );
}
