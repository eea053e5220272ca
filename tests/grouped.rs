//! A running node's worker prepares the events waiting in its lane together: their inputs
//! stored in one transaction and their tracker writes made in one call. Each write still
//! stands alone: one that finds its issue changed by a person decides again on the issue as
//! it is then, and the others are applied.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use twinsync::model::Issue;
use twinsync::store::events::{self, State};
use twinsync::sync::Pipeline;
use twinsync::tracker::{
    ChangeBatch, Origin, Query, ReferenceTracker, Tracker, TrackerError, UpdateIf,
};
use twinsync_tests::trackers::TrackerPair;

/// External's tracker: notes how many writes each `update_many_if` call carries and, once,
/// lets a person edit one issue just before the writes are made.
struct Edited {
    inner: Arc<ReferenceTracker>,
    /// The issue a person edits, and whether they did.
    edit: Mutex<Option<String>>,
    calls: Mutex<Vec<usize>>,
}

impl Tracker for Edited {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        self.inner.get(key)
    }
    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.inner.create(issue, origin)
    }
    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.inner.update(issue, origin)
    }
    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        self.inner.update_if(issue, origin, seen)
    }
    fn update_many_if(&self, writes: &[UpdateIf<'_>]) -> Vec<Result<Issue, TrackerError>> {
        self.calls.lock().unwrap().push(writes.len());
        let mut edit = self.edit.lock().unwrap();
        if writes.len() > 1
            && let Some(key) = edit.take()
        {
            let mut issue = self.inner.get(&key).unwrap().unwrap();
            issue.description = Some("a person's note".into());
            self.inner.update(&issue, Origin::User).unwrap();
        }
        self.inner.update_many_if(writes)
    }
    fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<ChangeBatch, TrackerError> {
        self.inner.changes(cursor, limit)
    }
    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError> {
        self.inner.search(query)
    }
}

#[test]
fn a_write_of_a_group_that_finds_its_issue_changed_decides_again_and_the_others_apply() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        Arc::new(ReferenceTracker::new(&dir.path().join(format!("{name}.db")), name).unwrap())
    };
    let external = Arc::new(Edited {
        inner: open("EXT"),
        edit: Mutex::new(None),
        calls: Mutex::new(Vec::new()),
    });
    let pair = TrackerPair::new(open("INT"), external.clone(), "mirror");

    let keys: Vec<String> = (0..8)
        .map(|n| {
            let issue = Issue {
                summary: format!("issue {n}"),
                ..Issue::default()
            };
            let key = pair
                .internal
                .tracker()
                .create(&issue, Origin::User)
                .unwrap();
            let key = key.key.unwrap();
            pair.internal
                .exalate(twinsync_tests::CONNECTION, &key)
                .unwrap();
            key
        })
        .collect();
    pair.drain(Duration::from_secs(30));

    // Every issue edited on Internal: External has eight incoming events waiting.
    for key in &keys {
        let mut issue = pair.internal.tracker().get(key).unwrap().unwrap();
        issue.summary.push_str(", edited");
        pair.internal
            .tracker()
            .update(&issue, Origin::User)
            .unwrap();
    }
    pair.internal.poll_changes().unwrap();
    while pair.internal.process_ready(256).unwrap().total() > 0 {}
    pair.network.deliver().unwrap();
    let pending = || {
        pair.external
            .store()
            .read(|db| events::in_state(db, "pending"))
            .unwrap()
            .len()
    };
    assert_eq!(pending(), keys.len());
    let edited_key = pair.external_key(&keys[3]).unwrap();
    *external.edit.lock().unwrap() = Some(edited_key.clone());

    // One worker: it takes the lane's waiting events together.
    let mut pipeline = Pipeline::start(pair.external.clone(), 1).unwrap();
    let started = Instant::now();
    while pending() > 0 {
        pipeline.step(Duration::from_millis(10)).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stuck: {:#?}",
            pair.unfinished()
        );
    }
    drop(pipeline);

    let calls = external.calls.lock().unwrap().clone();
    assert!(
        calls.iter().any(|&n| n > 1),
        "no writes made together: {calls:?}"
    );
    assert!(
        external.edit.lock().unwrap().is_none(),
        "the person never edited"
    );
    let failed = pair
        .external
        .store()
        .read(|db| events::in_state(db, "failed"))
        .unwrap();
    assert!(failed.is_empty(), "{failed:#?}");
    for key in &keys {
        let theirs = pair.external_key(key).unwrap();
        let issue = external.get(&theirs).unwrap().unwrap();
        assert!(issue.summary.ends_with(", edited"), "{theirs}: {issue:?}");
        if theirs == edited_key {
            // Decided again on the issue with the person's note: both are kept.
            assert_eq!(issue.description.as_deref(), Some("a person's note"));
        }
    }
    let done = pair
        .external
        .store()
        .read(|db| events::in_state(db, "done"))
        .unwrap();
    assert!(done.iter().all(|e| e.state == State::Done));
    // The changed write was decided again at once, not left to wait for a retry.
    let retried: Vec<_> = done.iter().filter(|e| e.attempts > 1).collect();
    assert!(retried.is_empty(), "{retried:#?}");
}
