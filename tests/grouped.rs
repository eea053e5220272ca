//! A running node's worker prepares the events waiting in its lane together: their inputs
//! stored in one transaction and their tracker writes made in one call. Each write still
//! stands alone: one that finds its issue changed by a person decides again on the issue as
//! it is then, and the others are applied. A tracker that answers the call wrongly leaves
//! the events waiting, with the reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use twinsync::model::Issue;
use twinsync::store::events::{self, Event, State};
use twinsync::sync::Pipeline;
use twinsync::tracker::{
    ChangeBatch, Origin, Query, ReferenceTracker, Tracker, TrackerError, UpdateIf,
};
use twinsync_tests::trackers::TrackerPair;

/// External's tracker: notes how many writes each `update_many_if` call carries; once, lets
/// a person edit one issue just before the writes are made; and, while `short` is set,
/// makes the writes but answers with one outcome too few.
#[derive(Default)]
struct Edited {
    inner: Option<Arc<ReferenceTracker>>,
    /// The issue a person edits, and whether they did.
    edit: Mutex<Option<String>>,
    calls: Mutex<Vec<usize>>,
    short: AtomicBool,
}

impl Edited {
    fn inner(&self) -> &ReferenceTracker {
        self.inner.as_deref().expect("a tracker")
    }
}

impl Tracker for Edited {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        self.inner().get(key)
    }
    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.inner().create(issue, origin)
    }
    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.inner().update(issue, origin)
    }
    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        self.inner().update_if(issue, origin, seen)
    }
    fn update_many_if(&self, writes: &[UpdateIf<'_>]) -> Vec<Result<Issue, TrackerError>> {
        self.calls.lock().unwrap().push(writes.len());
        let mut edit = self.edit.lock().unwrap();
        if writes.len() > 1
            && let Some(key) = edit.take()
        {
            let mut issue = self.inner().get(&key).unwrap().unwrap();
            issue.description = Some("a person's note".into());
            self.inner().update(&issue, Origin::User).unwrap();
        }
        let mut written = self.inner().update_many_if(writes);
        if self.short.load(Ordering::SeqCst) {
            written.pop();
        }
        written
    }
    fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<ChangeBatch, TrackerError> {
        self.inner().changes(cursor, limit)
    }
    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError> {
        self.inner().search(query)
    }
}

/// Two nodes, External on `external`'s tracker, with eight twins whose issues were all
/// edited on Internal: External has eight incoming events waiting. Their keys on Internal.
fn eight_waiting(mut external: Edited) -> (TrackerPair, Arc<Edited>, Vec<String>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        Arc::new(ReferenceTracker::new(&dir.path().join(format!("{name}.db")), name).unwrap())
    };
    external.inner = Some(open("EXT"));
    let external = Arc::new(external);
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
    assert_eq!(in_state(&pair, "pending").len(), keys.len());
    (pair, external, keys, dir)
}

fn in_state(pair: &TrackerPair, state: &str) -> Vec<Event> {
    pair.external
        .store()
        .read(|db| events::in_state(db, state))
        .unwrap()
}

/// Run External with one worker (it takes the lane's waiting events together) until
/// `done` says so.
fn run_external_until(pair: &TrackerPair, done: impl Fn() -> bool) {
    let mut pipeline = Pipeline::start(pair.external.clone(), 1).unwrap();
    let started = Instant::now();
    while !done() {
        pipeline.step(Duration::from_millis(10)).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stuck: {:#?}",
            pair.unfinished()
        );
    }
}

/// Each issue on External holds the edit made on Internal.
fn all_applied(pair: &TrackerPair, external: &Edited, keys: &[String]) {
    for key in keys {
        let theirs = pair.external_key(key).unwrap();
        let issue = external.get(&theirs).unwrap().unwrap();
        assert!(issue.summary.ends_with(", edited"), "{theirs}: {issue:?}");
    }
}

#[test]
fn a_write_of_a_group_that_finds_its_issue_changed_decides_again_and_the_others_apply() {
    let (pair, external, keys, _dir) = eight_waiting(Edited::default());
    let edited_key = pair.external_key(&keys[3]).unwrap();
    *external.edit.lock().unwrap() = Some(edited_key.clone());

    run_external_until(&pair, || in_state(&pair, "pending").is_empty());

    let calls = external.calls.lock().unwrap().clone();
    assert!(
        calls.iter().any(|&n| n > 1),
        "no writes made together: {calls:?}"
    );
    assert!(
        external.edit.lock().unwrap().is_none(),
        "the person never edited"
    );
    let failed = in_state(&pair, "failed");
    assert!(failed.is_empty(), "{failed:#?}");
    all_applied(&pair, &external, &keys);
    // Decided again on the issue with the person's note: both edits are kept.
    let issue = external.get(&edited_key).unwrap().unwrap();
    assert_eq!(issue.description.as_deref(), Some("a person's note"));
    // The changed write was decided again at once, not left to wait for a retry.
    let done = in_state(&pair, "done");
    assert!(done.iter().all(|e| e.state == State::Done));
    let retried: Vec<_> = done.iter().filter(|e| e.attempts > 1).collect();
    assert!(retried.is_empty(), "{retried:#?}");
}

#[test]
fn a_tracker_that_answers_writes_made_together_wrongly_leaves_them_waiting_with_the_reason() {
    let (pair, external, keys, _dir) = eight_waiting(Edited {
        short: AtomicBool::new(true),
        ..Edited::default()
    });
    // Every event tried at least once: none lost, none a sync error, each with the reason.
    run_external_until(&pair, || {
        in_state(&pair, "pending")
            .iter()
            .all(|e| e.attempts > 0 && e.error.is_some())
    });
    let waiting = in_state(&pair, "pending");
    assert_eq!(waiting.len(), keys.len());
    for event in &waiting {
        let error = event.error.as_deref().unwrap_or_default();
        assert!(error.contains("writes made together with"), "{error}");
    }
    assert!(in_state(&pair, "failed").is_empty());

    // The tracker mended: the events run again, and the writes it had made are recognised.
    external.short.store(false, Ordering::SeqCst);
    run_external_until(&pair, || in_state(&pair, "pending").is_empty());
    assert!(in_state(&pair, "failed").is_empty());
    all_applied(&pair, &external, &keys);
}
