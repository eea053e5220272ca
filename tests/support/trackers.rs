//! Two nodes on any trackers (Redmine, reference), in one process, on the system clock:
//! what [`crate::Pair`] is for two reference trackers on a test clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use twinsync::clock::SystemClock;
use twinsync::runtime::Limits;
use twinsync::store::NodeStore;
use twinsync::store::events::{Event, State};
use twinsync::sync::{Connection, Flow, Node, RetryPolicy};
use twinsync::tracker::Tracker;
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
