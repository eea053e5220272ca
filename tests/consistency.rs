//! Nothing silently different: a person's edit made while a processor runs is not
//! overwritten, a replay decides what the event decided, and `verify` finds and repairs a
//! tracker changed behind twinsync's back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use twinsync::store::bodies::unpack;
use twinsync::store::sql::args;

use serde_json::json;
use twinsync::runtime::ConflictPolicy;
use twinsync::tracker::{Origin, Tracker, TrackerError};
use twinsync_tests::process::pair;
use twinsync_tests::trackers::{Call, Hooked};
use twinsync_tests::*;

#[test]
fn an_edit_made_while_the_processor_runs_is_kept() {
    let mut pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("Login fails"));
    pair.run();
    // Once armed, a person edits the issue right after twinsync read it: the edit lands
    // while the processor runs on what was read.
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = armed.clone();
    let tracker = Hooked::new(pair.external.tracker.clone()).after(move |call, inner| {
        if let Call::Get(key) = call
            && let Some(mut issue) = inner.get(key)?
            && trigger.swap(false, Ordering::SeqCst)
        {
            issue.description = Some("typed by a person meanwhile".into());
            inner.update(&issue, Origin::User)?;
        }
        Ok(())
    });
    pair.replace_external_tracker(Arc::new(tracker));

    edit(&pair.internal, &key, |i| {
        i.summary = "Login fails on Safari".into()
    });
    pair.internal.node.poll_changes().unwrap();
    pair.internal.node.process_ready(10).unwrap();
    pair.network.deliver().unwrap();
    // External reads its issue for the incoming event; a person edits it right then.
    armed.store(true, Ordering::SeqCst);
    pair.external.node.process_ready(10).unwrap();
    assert!(!armed.load(Ordering::SeqCst), "the edit was made");
    pair.run();

    let external = pair.external_issue(&twin).unwrap();
    assert_eq!(external.summary, "Login fails on Safari");
    assert_eq!(
        external.description.as_deref(),
        Some("typed by a person meanwhile"),
        "the person's edit survived"
    );
    let internal = pair.internal_issue(&key);
    assert_eq!(internal.summary, "Login fails on Safari");
    assert_eq!(
        internal.description.as_deref(),
        Some("typed by a person meanwhile"),
        "and reached the other side"
    );
    assert!(failed(&pair.external.node).is_empty());
}

#[test]
fn the_reference_tracker_refuses_a_write_onto_an_issue_it_no_longer_has() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let key = pair.create(issue("Printer jam"));
    let tracker = &pair.internal.tracker;
    let seen = tracker.get(&key).unwrap().unwrap();
    edit(&pair.internal, &key, |i| i.status = "Closed".into());
    let mut stale = seen.clone();
    stale.summary = "Printer jam (again)".into();
    let refused = tracker.update_if(&stale, Origin::User, Some(&seen));
    assert_eq!(refused, Err(TrackerError::Changed(key.clone())));
    assert_eq!(tracker.get(&key).unwrap().unwrap().status, "Closed");
    // Onto the issue as it is, the write goes through.
    let fresh = tracker.get(&key).unwrap().unwrap();
    let mut change = fresh.clone();
    change.summary = "Printer jam (again)".into();
    let stored = tracker
        .update_if(&change, Origin::User, Some(&fresh))
        .unwrap();
    assert_eq!(
        (stored.summary.as_str(), stored.status.as_str()),
        ("Printer jam (again)", "Closed")
    );
}

/// A last-writer-wins conflict decided for the local value: the replay, on the input stored
/// with the event (merge base included), decides the same.
#[test]
fn a_replay_decides_what_the_event_decided() {
    let pair = Pair::new(
        Side::both("mirror").policy(ConflictPolicy::LastWriterWins),
        Side::both("mirror").policy(ConflictPolicy::LastWriterWins),
    );
    let (key, twin) = pair.create_and_exalate(issue("Slow search"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    // External writes first, Internal later: Internal's value wins on both sides.
    edit(&pair.external, &external_key, |i| {
        i.summary = "Slow search (External)".into()
    });
    pair.external.node.poll_changes().unwrap();
    pair.clock.advance(Duration::from_secs(5));
    edit(&pair.internal, &key, |i| {
        i.summary = "Slow search (Internal)".into()
    });
    pair.internal.node.poll_changes().unwrap();
    pair.run();
    assert_eq!(pair.internal_issue(&key).summary, "Slow search (Internal)");
    assert_eq!(
        pair.external_issue(&twin).unwrap().summary,
        "Slow search (Internal)"
    );

    // The incoming event on Internal that brought External's older value.
    let events = pair
        .internal
        .node
        .store()
        .read(|db| twinsync::store::events::all(db))
        .unwrap();
    let conflict = events
        .iter()
        .filter(|e| e.kind == twinsync::store::events::Kind::Incoming)
        .find(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("Slow search (External)"))
        })
        .expect("Internal received External's change");
    let replay = pair.internal.node.replay(&conflict.id).unwrap();
    assert_eq!(replay.input_source, "stored");
    assert_eq!(replay.error, None);
    assert_eq!(
        replay.result.unwrap()["summary"],
        json!("Slow search (Internal)"),
        "the replay keeps the local value, as the event did"
    );
}

/// External's tracker changed behind twinsync's back (straight in its database: no change
/// in the feed). `verify` finds the twin, queues a resync, and the sides end equal.
#[test]
fn verify_finds_and_repairs_a_tracker_changed_behind_its_back() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("Export hangs"));
    let (other, _) = pair.create_and_exalate(issue("Import hangs"));
    pair.run();
    for node in [&pair.internal.node, &pair.external.node] {
        let clean = node.verify(None).unwrap();
        assert_eq!(
            (clean.checked, clean.fixed, clean.errors),
            (2, 0, 0),
            "{clean:?}"
        );
        // A page of one twin at a time: every twin is still checked, once.
        let paged = node.verify_in_pages(None, 1).unwrap();
        assert_eq!((paged.checked, paged.busy), (2, 0), "{paged:?}");
    }

    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    let db = rusqlite::Connection::open(pair.tracker_file("External")).unwrap();
    let body: String = db
        .query_row(
            "SELECT body FROM issues WHERE key = ?1",
            [&external_key],
            |r| r.get(0),
        )
        .unwrap();
    let corrupted = body.replace("Export hangs", "Export hangs (corrupted)");
    assert_ne!(body, corrupted);
    db.execute(
        "UPDATE issues SET body = ?2 WHERE key = ?1",
        [&external_key, &corrupted],
    )
    .unwrap();
    pair.run();
    assert_ne!(
        pair.internal_issue(&key).summary,
        pair.external_issue(&twin).unwrap().summary,
        "nothing noticed the change: the sides differ silently"
    );

    let report = pair.external.node.verify(None).unwrap();
    assert_eq!(
        (report.checked, report.fixed, report.errors),
        (2, 1, 0),
        "{report:?}"
    );
    assert_eq!(report.mismatches[0].twin, twin);
    assert_eq!(report.mismatches[0].fields, ["summary"]);
    pair.run();
    assert_eq!(
        pair.internal_issue(&key).summary,
        pair.external_issue(&twin).unwrap().summary
    );
    assert_eq!(pair.internal_issue(&other).summary, "Import hangs");
    for node in [&pair.internal.node, &pair.external.node] {
        let after = node.verify(None).unwrap();
        assert_eq!((after.checked, after.fixed), (2, 0), "{after:?}");
        assert!(failed(node).is_empty());
    }
}

/// The admin API: PATCH with `If-Match` applies only onto the version read (412 otherwise),
/// and `POST /v1/verify` answers how many twins it checked and fixed.
#[test]
fn admin_patch_with_if_match_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = pair(twinsync_binary!(), dir.path(), "mirror");
    let (status, created) = internal.send("POST", "/v1/issues", json!({"summary": "Fan noise"}));
    assert_eq!(status, 201);
    let key = created["key"].as_str().unwrap().to_string();
    let path = format!("/v1/issues/{key}");
    let tag = internal.etag(&path).expect("GET has an ETag");

    let (status, _) = internal.send_if_match("PATCH", &path, &tag, json!({"status": "Closed"}));
    assert_eq!(status, 200);
    // The same ETag again: the issue changed since.
    let (status, answer) =
        internal.send_if_match("PATCH", &path, &tag, json!({"summary": "stale"}));
    assert_eq!(status, 412, "{answer}");
    assert_eq!(internal.issue(&key).unwrap()["summary"], json!("Fan noise"));

    internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    twinsync_tests::process::eventually(Duration::from_secs(30), "the twin exists", || {
        external.get("/v1/twins").as_array().unwrap().len() == 1
            && internal.get("/v1/queue")[0]["pending"] == 0
            && internal.get("/v1/queue")[0]["in_flight"] == 0
    });
    let (status, report) = internal.send("POST", "/v1/verify", json!({}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["checked"], json!(1), "{report}");
    assert_eq!(report["fixed"], json!(0), "{report}");
    // The same from the command line, while the node runs.
    let output = std::process::Command::new(twinsync_binary!())
        .args(["verify", "--connection", "internal-external", "--config"])
        .arg(&external.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.starts_with("1 twins checked"), "{text}");
    assert!(text.contains("0 fixed"), "{text}");
}

/// Each message says what its sender last applied of the other side's (number and digest):
/// External's records were changed behind twinsync's back so that what it applied is not
/// what Internal sent, consistently with its tracker (its own `verify` sees nothing). The
/// next message External sends tells Internal, which sends its issue again as new writes,
/// and the sides end equal.
#[test]
fn a_digest_mismatch_between_the_nodes_is_found_and_repaired() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (key, twin) = pair.create_and_exalate(issue("Report totals"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    let tracker_db = rusqlite::Connection::open(pair.tracker_file("External")).unwrap();
    let corrupt = |text: String| text.replace("Report totals", "Report totals (corrupted)");
    let body: String = tracker_db
        .query_row(
            "SELECT body FROM issues WHERE key = ?1",
            [&external_key],
            |r| r.get(0),
        )
        .unwrap();
    tracker_db
        .execute(
            "UPDATE issues SET body = ?2 WHERE key = ?1",
            [&external_key, &corrupt(body)],
        )
        .unwrap();
    // The node's own record of the twin, changed the same way (on either store).
    pair.external
        .node
        .store()
        .write(|tx| {
            let (received, stamped) = tx
                .row(
                    "SELECT t.last_received, s.stamped FROM twins t
                     JOIN issue_stamps s ON s.local_key = t.local_key WHERE t.twin_id = ?1",
                    args![&twin],
                    // Stored compressed on SQLite, as text on PostgreSQL.
                    |r| Ok((unpack(r.value(0)?)?, unpack(r.value(1)?)?)),
                )?
                .expect("the twin and its stamps");
            let (received, stamped) = (received.unwrap(), stamped.unwrap());
            tx.execute(
                "UPDATE twins SET last_received = ?2 WHERE twin_id = ?1",
                args![&twin, &corrupt(received)],
            )?;
            tx.execute(
                "UPDATE issue_stamps SET stamped = ?2 WHERE local_key = ?1",
                args![&external_key, &corrupt(stamped)],
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        pair.external.node.verify(None).unwrap().fixed,
        0,
        "not visible from one side"
    );

    edit(&pair.external, &external_key, |i| {
        i.status = "In Progress".into()
    });
    pair.external.node.poll_changes().unwrap();
    pair.run();
    let internal = pair.internal_issue(&key);
    let external = pair.external_issue(&twin).unwrap();
    assert_eq!(internal.status, "In Progress");
    assert_eq!(external.status, "In Progress");
    assert_eq!(external.summary, "Report totals", "repaired from Internal");
    assert_eq!(internal.summary, "Report totals");
    let notes: Vec<String> = pair
        .internal
        .node
        .store()
        .read(|db| twinsync::store::events::all(db))
        .unwrap()
        .into_iter()
        .filter_map(|e| e.note)
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("resync queued")),
        "{notes:#?}"
    );
}
