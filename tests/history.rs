//! Each twin's history: one entry per event, written with the event's commit, with what it
//! changed in the local issue field by field; found by twin id or either side's key, by
//! time; sync errors and operator actions in it too; forgotten with the events.

use std::time::Duration;

use twinsync::clock::Clock;
use twinsync::model::Comment;
use twinsync::ops;
use twinsync::store::history::{self, Entry, Filter};
use twinsync::sync::{KEEP_EVENTS, Node};
use twinsync_tests::{Pair, Side, edit, failed, issue, scripted_issue};

fn history_of(node: &Node, key: &str) -> Vec<Entry> {
    query(
        node,
        Filter {
            key: Some(key.into()),
            ..Filter::default()
        },
    )
}

fn query(node: &Node, filter: Filter) -> Vec<Entry> {
    node.store().read(|db| history::query(db, &filter)).unwrap()
}

#[test]
fn each_event_leaves_an_entry_with_its_diff_found_by_either_key() {
    let pair = Pair::new(Side::both("remote-key"), Side::both("remote-key"));
    let (key, twin) = pair.create_and_exalate(issue("Checkout fails"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();

    let external = history_of(&pair.external.node, &twin);
    assert!(!external.is_empty());
    // The first entry (oldest) created the issue: every field from nothing.
    let created = external.last().unwrap();
    assert_eq!(created.direction, "incoming");
    assert_eq!(created.outcome, "done");
    assert_eq!(created.reason, "manual-exalate");
    assert_eq!(created.local_key.as_deref(), Some(external_key.as_str()));
    assert_eq!(created.remote_key.as_deref(), Some(key.as_str()));
    let summary = created
        .changes
        .iter()
        .find(|c| c.field == "summary")
        .expect("summary in the diff");
    assert_eq!(summary.old, None);
    assert_eq!(summary.new.as_deref(), Some("Checkout fails"));
    let processor = pair.external.node.connections()[0]
        .incoming
        .clone()
        .unwrap();
    assert_eq!(created.processor.as_deref(), Some(processor.name()));
    assert_eq!(
        created.processor_sha256.as_deref(),
        Some(processor.info.sha256.as_str())
    );

    // The same entries by either side's key, on both nodes.
    assert_eq!(history_of(&pair.external.node, &external_key), external);
    assert_eq!(history_of(&pair.external.node, &key), external);
    let internal = history_of(&pair.internal.node, &key);
    assert_eq!(history_of(&pair.internal.node, &external_key), internal);
    assert!(internal.iter().any(|e| e.direction == "outgoing"));
    // Internal learnt External's key with the sync back: an incoming entry set the field.
    let learnt = internal
        .iter()
        .flat_map(|e| &e.changes)
        .find(|c| c.field == "custom-field:remote issue key")
        .expect("the sync back's diff");
    assert_eq!(learnt.old, None);
    assert_eq!(learnt.new.as_deref(), Some(external_key.as_str()));
    assert!(history_of(&pair.internal.node, "NOPE-1").is_empty());

    // A change with a comment: old and new summary, the comment added.
    pair.clock.advance(Duration::from_secs(60));
    let later = twinsync::clock::millis(pair.clock.now());
    edit(&pair.internal, &key, |i| {
        i.summary = "Checkout fails on <Safari>".into();
        i.comments.push(Comment {
            id: String::new(),
            author: None,
            body: "<script>alert(1)</script>".into(),
            created: String::new(),
            updated: None,
            internal: false,
        });
    });
    pair.internal.node.poll_changes().unwrap();
    pair.run();
    let newest = &history_of(&pair.external.node, &external_key)[0];
    assert_eq!(newest.direction, "incoming");
    let summary = newest
        .changes
        .iter()
        .find(|c| c.field == "summary")
        .unwrap();
    assert_eq!(summary.old.as_deref(), Some("Checkout fails"));
    assert_eq!(summary.new.as_deref(), Some("Checkout fails on <Safari>"));
    assert_eq!(newest.comments.len(), 1, "{newest:?}");
    assert_eq!(newest.comments[0].body, "<script>alert(1)</script>");

    // By time: only what happened after the minute passed.
    let since = query(
        &pair.external.node,
        Filter {
            key: Some(twin.clone()),
            since_ms: Some(later),
            ..Filter::default()
        },
    );
    assert_eq!(since, vec![newest.clone()]);
    let until = query(
        &pair.external.node,
        Filter {
            key: Some(twin.clone()),
            until_ms: Some(later),
            ..Filter::default()
        },
    );
    assert_eq!(
        until.len() + 1,
        history_of(&pair.external.node, &twin).len()
    );
    // Paging: newest first, `before` goes on where a page ended.
    let all = history_of(&pair.internal.node, &key);
    let first = query(
        &pair.internal.node,
        Filter {
            key: Some(key.clone()),
            limit: Some(1),
            ..Filter::default()
        },
    );
    let rest = query(
        &pair.internal.node,
        Filter {
            key: Some(key.clone()),
            before: Some(first[0].seq),
            ..Filter::default()
        },
    );
    assert_eq!([first, rest].concat(), all);
}

#[test]
fn sync_errors_and_what_operators_do_are_in_the_history() {
    let pair = Pair::new(Side::both("mirror"), Side::both("scripted"));
    let (_, twin) = pair.create_and_exalate(scripted_issue("Refused", "error"));
    pair.run();
    let error = failed(&pair.external.node).remove(0);
    let entries = history_of(&pair.external.node, &twin);
    assert_eq!(entries[0].outcome, "failed");
    assert_eq!(entries[0].event, error.id);
    assert!(
        entries[0].note.starts_with("processor-error"),
        "{}",
        entries[0].note
    );
    assert!(entries[0].processor.is_some());

    ops::retry(pair.external.node.store(), &error.id).unwrap();
    pair.run();
    ops::skip(pair.external.node.store(), &error.id).unwrap();
    let outcomes: Vec<String> = history_of(&pair.external.node, &twin)
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, ["skipped", "failed", "retried", "failed"]);
}

#[test]
fn the_history_goes_with_the_events_it_tells_of() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, _) = pair.create_and_exalate(issue("Old news"));
    pair.run();
    assert!(!history_of(&pair.internal.node, &key).is_empty());
    pair.clock.advance(KEEP_EVENTS - Duration::from_secs(60));
    pair.internal.node.forget_old_events(1_000).unwrap();
    assert!(!history_of(&pair.internal.node, &key).is_empty());
    pair.clock.advance(Duration::from_secs(120));
    pair.internal.node.forget_old_events(1_000).unwrap();
    assert_eq!(history_of(&pair.internal.node, &key), vec![]);
}
