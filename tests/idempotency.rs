//! Exactly-once effects across a crash between the tracker write and the node's commit:
//! the node's database is put back to before an event was processed (as if the commit had
//! been lost), the node restarts and processes the event again, and the tracker recognises
//! the write it already has.

use std::path::Path;
use std::sync::Arc;

use twinsync::clock::ManualClock;
use twinsync::setup::{ReferenceNode, reference_node};
use twinsync::sync::{Connection, Flow};
use twinsync::tracker::{Origin, Tracker};
use twinsync::transport::local::LocalNetwork;
use twinsync_tests::{CONNECTION, issue, processor, runtime};

fn open(dir: &Path, name: &str, project: &str, remote: &str) -> ReferenceNode {
    let connection = Connection::new(
        CONNECTION,
        remote,
        Flow::Bidirectional,
        Some(processor("mirror")),
        Some(processor("mirror")),
        Default::default(),
    )
    .unwrap();
    let clock = Arc::new(ManualClock::starting_at(1_767_225_600_000));
    reference_node(
        &dir.join(name),
        name,
        project,
        runtime(),
        vec![connection],
        clock,
    )
    .unwrap()
}

/// Copy the node's queue database (not its tracker) aside, or back.
fn copy_queue(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("twinsync.db{suffix}");
        let _ = std::fs::remove_file(to.join(&name));
        if from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
}

fn sync_writes(dir: &Path) -> Vec<(String, i64)> {
    let db = rusqlite::Connection::open(dir.join("tracker.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT sync_event, count(*) FROM changes WHERE sync_event IS NOT NULL GROUP BY sync_event ORDER BY 1")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Process until nothing is ready; how many events were done. (A batch may leave events for
/// the next one when its time budget runs out.)
fn process_all(node: &ReferenceNode) -> usize {
    let mut done = 0;
    loop {
        let progress = node.node.process_ready(100).unwrap();
        if progress.total() == 0 {
            return done;
        }
        done += progress.done;
    }
}

#[test]
fn an_event_processed_again_after_a_lost_commit_changes_the_tracker_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ext_dir, saved) = (dir.path().join("External"), dir.path().join("saved"));
    let internal = open(dir.path(), "Internal", "INT", "External");
    let mut keys = Vec::new();
    for n in 0..3 {
        keys.push(
            internal
                .tracker
                .create(&issue(&format!("issue {n}")), Origin::User)
                .unwrap()
                .key
                .unwrap(),
        );
    }
    internal.node.poll_changes().unwrap();

    for round in 0..2 {
        if round == 0 {
            for key in &keys {
                internal.node.exalate(CONNECTION, key).unwrap();
            }
        } else {
            for key in &keys {
                let mut issue = internal.tracker.get(key).unwrap().unwrap();
                issue.summary.push_str(" edited");
                internal.tracker.update(&issue, Origin::User).unwrap();
            }
            internal.node.poll_changes().unwrap();
        }
        // Internal sends; External receives the messages but processes nothing yet.
        internal.node.process_ready(100).unwrap();
        let external = open(dir.path(), "External", "EXT", "Internal");
        LocalNetwork::new(vec![internal.node.clone(), external.node.clone()])
            .deliver()
            .unwrap();
        drop(external);
        copy_queue(&ext_dir, &saved);

        // External processes the events: tracker writes and commit...
        let external = open(dir.path(), "External", "EXT", "Internal");
        assert_eq!(process_all(&external), 3);
        drop(external);
        // ...then the commit is lost: the queue goes back to before, the tracker stays.
        copy_queue(&saved, &ext_dir);
        let writes = sync_writes(&ext_dir);

        // Restarted, External processes the same events again.
        let external = open(dir.path(), "External", "EXT", "Internal");
        assert_eq!(process_all(&external), 3, "round {round}");
        assert_eq!(
            sync_writes(&ext_dir),
            writes,
            "round {round}: the tracker was written again"
        );
        assert!(writes.iter().all(|(_, count)| *count == 1), "{writes:?}");
        let issues = external.tracker.list().unwrap();
        assert_eq!(issues.len(), 3, "round {round}: no issue created twice");
        let expected = if round == 0 {
            "issue 0"
        } else {
            "issue 0 edited"
        };
        assert!(issues.iter().any(|i| i.summary == expected), "{issues:?}");
        assert_eq!(
            twinsync::ops::twins(external.node.store()).unwrap().len(),
            3
        );
    }
}
