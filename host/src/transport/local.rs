//! Nodes in one process, connected by direct calls: each round moves every node's outbox to
//! the node on the other end of the connection, and acknowledges what was accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::service::Wake;
use crate::sync::{Node, Receipt};

/// Messages moved per connection in one delivery round.
const BATCH: usize = 256;

/// Nodes that reach each other by instance name.
pub struct LocalNetwork {
    nodes: Vec<Arc<Node>>,
}

/// What [`LocalNetwork::run_until_idle`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub rounds: usize,
    pub events_done: usize,
    pub events_failed: usize,
    pub events_deferred: usize,
    pub messages: usize,
}

impl LocalNetwork {
    pub fn new(nodes: Vec<Arc<Node>>) -> Self {
        LocalNetwork { nodes }
    }

    pub fn node(&self, instance: &str) -> Option<&Arc<Node>> {
        self.position(instance).map(|at| &self.nodes[at])
    }

    /// Where the node named `instance` is in the network's order.
    fn position(&self, instance: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.instance() == instance)
    }

    /// Deliver waiting messages once. Returns how many the receivers accepted or already had.
    pub fn deliver(&self) -> Result<usize> {
        Ok(self.deliver_each()?.iter().sum())
    }

    /// [`deliver`](Self::deliver), counted by receiver: one count per node, in the order
    /// the network was made with.
    fn deliver_each(&self) -> Result<Vec<usize>> {
        let mut delivered = vec![0; self.nodes.len()];
        for node in &self.nodes {
            for connection in node.connections() {
                let Some(to) = self.position(&connection.remote_instance) else {
                    continue;
                };
                let peer = &self.nodes[to];
                let messages = node.outbox(&connection.name, BATCH)?;
                let receipts = peer.receive_all(&messages)?;
                // As the HTTP sender does: what the peer took is acknowledged, a message it
                // refused for good is a sync error of its twin (whose later messages wait:
                // the peer answers them out of order), the other twins go on.
                let mut taken = Vec::new();
                for (message, receipt) in messages.iter().zip(receipts) {
                    match receipt {
                        Receipt::Accepted | Receipt::Duplicate => taken.push(message.id.clone()),
                        Receipt::OutOfOrder { .. } => {}
                        Receipt::Refused { reason } | Receipt::Forbidden { reason } => {
                            tracing::error!(connection = %connection.name, "{} refused message {}: {reason}", peer.instance(), message.id);
                            node.refused(message, &reason)?;
                        }
                    }
                }
                node.acknowledge(&taken)?;
                delivered[to] += taken.len();
            }
        }
        Ok(delivered)
    }

    /// Poll trackers, process events and deliver messages until a round does nothing (or
    /// `max_rounds` is reached). Events waiting for a retry time do not count as work.
    pub fn run_until_idle(&self, max_rounds: usize) -> Result<RunStats> {
        let mut stats = RunStats::default();
        while stats.rounds < max_rounds {
            stats.rounds += 1;
            let mut work = 0;
            for node in &self.nodes {
                // A tracker that cannot be read now is read again next round; its events
                // still run (they wait and retry by themselves).
                work += node.poll_changes().unwrap_or_else(|error| {
                    tracing::warn!(
                        node = node.instance(),
                        "cannot read the tracker's changes: {error:#}"
                    );
                    0
                });
                let progress = node.process_ready(BATCH)?;
                stats.events_done += progress.done;
                stats.events_failed += progress.failed;
                stats.events_deferred += progress.deferred;
                work += progress.done + progress.failed;
            }
            let moved = self.deliver()?;
            stats.messages += moved;
            work += moved;
            if work == 0 {
                break;
            }
        }
        Ok(stats)
    }
}

/// Deliver messages between the nodes of `network` until `stop` is set: the in-process
/// counterpart of the HTTP senders, for running nodes on threads in one process. It sleeps
/// on `outbox`, which the nodes' event loops ring, and rings the bell in `wakes` of each
/// node it delivered to (one per node, in the network's order), as a receiving `serve`
/// wakes only its own event loop.
pub fn deliver_loop(network: &LocalNetwork, outbox: &Wake, wakes: &[Arc<Wake>], stop: &AtomicBool) {
    assert_eq!(wakes.len(), network.nodes.len(), "one bell per node");
    while !stop.load(Ordering::Relaxed) {
        let seen = outbox.rings();
        match network.deliver_each() {
            Ok(counts) if counts.iter().any(|&n| n > 0) => {
                for (count, wake) in counts.iter().zip(wakes) {
                    if *count > 0 {
                        wake.ring();
                    }
                }
            }
            Ok(_) => outbox.wait(seen, Duration::from_millis(100)),
            Err(error) => {
                tracing::error!("cannot deliver messages: {error:#}");
                outbox.wait(seen, Duration::from_millis(100));
            }
        }
    }
}
