//! Two nodes on any trackers (Redmine, reference), in one process, on the system clock:
//! what [`crate::Pair`] is for two reference trackers on a test clock; and [`Hooked`], a
//! tracker that passes its calls on to another with a test's hooks around them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use twinsync::clock::SystemClock;
use twinsync::model::Issue;
use twinsync::runtime::Limits;
use twinsync::store::NodeStore;
use twinsync::store::events::{Event, State};
use twinsync::sync::{Connection, Flow, Node, RetryPolicy};
use twinsync::tracker::{ChangeBatch, Origin, Query, Tracker, TrackerError};
use twinsync::transport::local::{LocalNetwork, RunStats};

use crate::{CONNECTION, processor, unfinished};

/// Internal and External, connected both ways with the same processor.
pub struct TrackerPair {
    pub internal: Arc<Node>,
    pub external: Arc<Node>,
    pub network: LocalNetwork,
    _dir: TempDir,
}

impl TrackerPair {
    pub fn new(
        internal: Arc<dyn Tracker>,
        external: Arc<dyn Tracker>,
        processor_name: &'static str,
    ) -> TrackerPair {
        let dir = tempfile::tempdir().expect("temp dir");
        let node = |name: &str, remote: &str, tracker: Arc<dyn Tracker>| {
            let store = NodeStore::open(&dir.path().join(format!("{name}.db"))).expect("store");
            let connection = Connection::new(
                CONNECTION,
                remote,
                Flow::Bidirectional,
                Some(processor(processor_name)),
                Some(processor(processor_name)),
                Limits::default(),
            )
            .expect("connection");
            let node = Node::new(
                name,
                tracker,
                Arc::new(store),
                crate::runtime(),
                vec![connection],
                Arc::new(SystemClock),
            )
            .expect("node")
            // Retries come soon: tests wait for events that failed while a tracker was down.
            .with_retry(RetryPolicy {
                first_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
            });
            Arc::new(node)
        };
        let internal = node("Internal", "External", internal);
        let external = node("External", "Internal", external);
        let network = LocalNetwork::new(vec![internal.clone(), external.clone()]);
        TrackerPair {
            internal,
            external,
            network,
            _dir: dir,
        }
    }

    /// Run both nodes until nothing is left to do now.
    pub fn run(&self) -> RunStats {
        self.network.run_until_idle(1_000).expect("run")
    }

    /// Run both nodes until every event is done and every message delivered, through
    /// tracker failures (they are retried), or panic after `timeout`.
    pub fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            for node in [&self.internal, &self.external] {
                // A tracker that is down fails the poll: the next round polls again.
                let _ = node.poll_changes();
                node.process_ready(256).expect("process");
            }
            self.network.deliver().expect("deliver");
            let failed: Vec<Event> = self
                .unfinished()
                .into_iter()
                .filter(|e| e.state == State::Failed)
                .collect();
            assert!(failed.is_empty(), "sync errors: {failed:#?}");
            if self.idle() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not drained after {timeout:?}: {:#?}",
                self.unfinished()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run both nodes for `how_long` whatever happens (a tracker may be down).
    pub fn run_for(&self, how_long: Duration) {
        let deadline = Instant::now() + how_long;
        while Instant::now() < deadline {
            for node in [&self.internal, &self.external] {
                let _ = node.poll_changes();
                node.process_ready(256).expect("process");
            }
            self.network.deliver().expect("deliver");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn idle(&self) -> bool {
        [&self.internal, &self.external].iter().all(|node| {
            unfinished(node).is_empty()
                && node
                    .connections()
                    .iter()
                    .all(|c| node.outbox(&c.name, 1).expect("outbox").is_empty())
        })
    }

    /// Events of both nodes that are not done.
    pub fn unfinished(&self) -> Vec<Event> {
        let mut events = unfinished(&self.internal);
        events.extend(unfinished(&self.external));
        events
    }

    /// The key of the issue twinned with `key` of Internal, on External.
    pub fn external_key(&self, internal_key: &str) -> Option<String> {
        twin_key(&self.internal, &self.external, internal_key)
    }

    /// The key of the issue twinned with `key` of External, on Internal.
    pub fn internal_key(&self, external_key: &str) -> Option<String> {
        twin_key(&self.external, &self.internal, external_key)
    }
}

/// The key on `to` of the twin of `from`'s issue `key`.
fn twin_key(from: &Node, to: &Node, key: &str) -> Option<String> {
    use twinsync::store::twins;
    let twin = from
        .store()
        .read(|db| twins::by_local_key(db, CONNECTION, key))
        .expect("read")?;
    to.store()
        .read(|db| twins::get(db, &twin.twin_id))
        .expect("read")
        .map(|t| t.local_key)
}

/// One call to a [`Tracker`], with its arguments, as the hooks of a [`Hooked`] tracker see it.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    Get(&'a str),
    Create(&'a Issue, Origin<'a>),
    Update(&'a Issue, Origin<'a>),
    UpdateIf(&'a Issue, Origin<'a>, Option<&'a Issue>),
    Changes(Option<&'a str>, usize),
    Search(&'a Query),
}

impl Call<'_> {
    /// A create or an update.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Call::Create(..) | Call::Update(..) | Call::UpdateIf(..)
        )
    }
}

/// What a [`Hooked`] tracker runs around a call: given the call and the inner tracker.
type Hook = Box<dyn Fn(Call<'_>, &dyn Tracker) -> Result<(), TrackerError> + Send + Sync>;

/// A tracker that passes every call on to `inner`, with a test's hooks around it, to make
/// a tracker fail, wait or change at the moment a test needs. `before` runs first: an
/// error it returns is the call's result (the inner tracker is not called), and it may
/// block (hold the call until the test lets it go) or act on the inner tracker. `after`
/// runs once the inner call succeeded, before its result is returned: what it does to the
/// inner tracker happens after the call (an edit right after a read: the caller has the
/// issue as it was read), and an error it returns is the call's result.
pub struct Hooked {
    inner: Arc<dyn Tracker>,
    before: Hook,
    after: Hook,
}

impl Hooked {
    /// `inner`, with no hooks yet.
    pub fn new(inner: Arc<dyn Tracker>) -> Hooked {
        Hooked {
            inner,
            before: Box::new(|_, _| Ok(())),
            after: Box::new(|_, _| Ok(())),
        }
    }

    pub fn before(
        mut self,
        hook: impl Fn(Call<'_>, &dyn Tracker) -> Result<(), TrackerError> + Send + Sync + 'static,
    ) -> Hooked {
        self.before = Box::new(hook);
        self
    }

    pub fn after(
        mut self,
        hook: impl Fn(Call<'_>, &dyn Tracker) -> Result<(), TrackerError> + Send + Sync + 'static,
    ) -> Hooked {
        self.after = Box::new(hook);
        self
    }

    fn call<R>(
        &self,
        call: Call<'_>,
        run: impl FnOnce(&dyn Tracker) -> Result<R, TrackerError>,
    ) -> Result<R, TrackerError> {
        (self.before)(call, &*self.inner)?;
        let result = run(&*self.inner)?;
        (self.after)(call, &*self.inner)?;
        Ok(result)
    }
}

impl Tracker for Hooked {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        self.call(Call::Get(key), |t| t.get(key))
    }
    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.call(Call::Create(issue, origin), |t| t.create(issue, origin))
    }
    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.call(Call::Update(issue, origin), |t| t.update(issue, origin))
    }
    // Passed on as such, not left to the trait's default (a `get`, then an `update`): the
    // inner tracker may compare and write atomically, and the hooks see one call.
    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        self.call(Call::UpdateIf(issue, origin, seen), |t| {
            t.update_if(issue, origin, seen)
        })
    }
    fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<ChangeBatch, TrackerError> {
        self.call(Call::Changes(cursor, limit), |t| t.changes(cursor, limit))
    }
    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError> {
        self.call(Call::Search(query), |t| t.search(query))
    }
}
