//! The node's work loops, each on its own thread: the event loop (read the tracker's changes,
//! process ready events with the worker pool) and one sender per connection (post the
//! outbox to the other node, oldest first, and forget what it acknowledged).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::wake::Wake;
use crate::clock::{Clock, millis};
use crate::sync::{BATCH_TIME, Node, Pipeline, Receipt};
use crate::transport::client::Sender;

/// How long an idle loop sleeps before looking again without being woken: a quiet tracker
/// is polled for changes this often.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long an idle loop sleeps while the tracker is busy (it had changes within
/// `BUSY_FOR`). A tracker written by its users in another process rings nobody: at
/// `IDLE_POLL`, a loop that had caught up left each new change waiting 50 ms on average
/// before it saw it (over HTTP at 2,000 changes a second, a p50 of 83 ms from change to
/// applied). A tracker whose feed is costly to read keeps its own pace (Redmine's
/// `poll_interval`).
const BUSY_POLL: Duration = Duration::from_millis(20);
const BUSY_FOR: Duration = Duration::from_secs(1);
/// How often finished events past their keeping time are deleted, and how many at most
/// per round of the loop (a big first cleanup must not hold up the events).
const FORGET_EVERY: Duration = Duration::from_secs(3600);
const FORGET_BATCH: usize = 2_000;

/// How often the loop looks for a change in the plugin store (a cheap read of a counter).
const PLUGIN_POLL: Duration = Duration::from_millis(250);

/// Switch connections to the plugin versions the store names now, if it changed.
fn refresh_plugins(node: &Node) {
    match node.refresh_plugins() {
        Ok(true) => {
            tracing::info!("plugin store changed: connections now run the versions it names")
        }
        Ok(false) => {}
        Err(error) => tracing::warn!("plugin store: {error:#}"),
    }
}

/// Poll the tracker and process events until `stop` is set. `workers` threads run the
/// processors; this loop hands them events and commits what they finish. It sleeps on
/// `wake` (rung when work may have come: a tracker change, a received message, a repair by
/// `verify`, an operator's action) and rings `outbox` when it may have put messages there:
/// two bells, so that neither the senders nor this loop are woken for the other's work.
pub fn event_loop(
    node: Arc<Node>,
    workers: usize,
    wake: Arc<Wake>,
    outbox: Arc<Wake>,
    stop: Arc<AtomicBool>,
) {
    event_loop_with(node, workers, wake, outbox, stop, true)
}

/// [`event_loop`], reading the tracker's change feed only if `poll_tracker`: a tracker that
/// pushes its changes (webhooks, an embedder) is not polled, and reconciliation (`verify`)
/// catches what a lost notification would miss.
pub fn event_loop_with(
    node: Arc<Node>,
    workers: usize,
    wake: Arc<Wake>,
    outbox: Arc<Wake>,
    stop: Arc<AtomicBool>,
    poll_tracker: bool,
) {
    let mut pipeline = match Pipeline::start(node.clone(), workers) {
        Ok(pipeline) => pipeline,
        Err(error) => {
            tracing::error!("cannot start the worker threads: {error}");
            return;
        }
    };
    let mut tracker_backoff = Backoff::default();
    let mut changed_at: Option<Instant> = None;
    let mut forget_at = Instant::now();
    let mut plugins_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let seen = wake.rings();
        let mut work = 0;
        // A fault the supervision test (`tests/serve.rs`) injects; debug builds only.
        #[cfg(debug_assertions)]
        if std::env::var_os("TWINSYNC_TEST_PANIC_EVENT_LOOP").is_some() {
            panic!("injected by TWINSYNC_TEST_PANIC_EVENT_LOOP");
        }
        if Instant::now() >= plugins_at {
            refresh_plugins(&node);
            plugins_at = Instant::now() + PLUGIN_POLL;
        }
        if Instant::now() >= forget_at {
            match node.forget_old_events(FORGET_BATCH) {
                // More to delete: go on at the next round.
                Ok(FORGET_BATCH) => {}
                Ok(_) => forget_at = Instant::now() + FORGET_EVERY,
                Err(error) => {
                    tracing::warn!("cannot delete old finished events: {error:#}");
                    forget_at = Instant::now() + FORGET_EVERY;
                }
            }
        }
        // One process of the node reads the tracker's changes (see `store/shared.rs`).
        if poll_tracker && tracker_backoff.ready() && leads(&node, POLL_ROLE) {
            match node.poll_changes() {
                Ok(changes) => {
                    tracker_backoff.reset();
                    if changes > 0 {
                        changed_at = Some(Instant::now());
                    }
                    work += changes;
                }
                Err(error) => {
                    tracing::warn!(
                        "cannot read the tracker's changes, trying again in {:?}: {error:#}",
                        tracker_backoff.delay()
                    );
                    tracker_backoff.failed();
                }
            }
        }
        match pipeline.step(BATCH_TIME) {
            Ok(progress) => {
                if progress.done > 0 {
                    // New messages may be in the outbox.
                    outbox.ring();
                }
                work += progress.done + progress.failed;
            }
            Err(error) => tracing::error!("cannot process events: {error:#}"),
        }
        // With events in flight, `step` itself waits for the next to finish.
        if work == 0 && pipeline.in_flight() == 0 {
            wake.wait(seen, idle_wait(changed_at, Instant::now()));
        }
    }
}

/// How long an idle loop sleeps at `now`, the tracker's last changes found at `changed_at`.
fn idle_wait(changed_at: Option<Instant>, now: Instant) -> Duration {
    match changed_at {
        Some(at) if now.saturating_duration_since(at) < BUSY_FOR => BUSY_POLL,
        _ => IDLE_POLL,
    }
}

/// How long a sender with an empty outbox sleeps unless its bell rings: `IDLE_POLL`. In
/// debug builds `TWINSYNC_TEST_SENDER_IDLE_MS` sets it, so that a test can tell a message
/// sent because its commit rang the bell from one the next poll happened to find
/// (`tests/wake_ups.rs`).
fn sender_idle_poll() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("TWINSYNC_TEST_SENDER_IDLE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    IDLE_POLL
}

/// Send one connection's outbox to the other node until `stop` is set. A message leaves
/// the outbox only when the other node acknowledged it, so nothing is lost when either
/// side goes down; the other node recognises a message it already has.
pub fn sender_loop(
    node: Arc<Node>,
    connection: String,
    sender: Sender,
    clock: Arc<dyn Clock>,
    outbox: Arc<Wake>,
    stop: Arc<AtomicBool>,
    peers: Arc<super::Peers>,
) {
    let mut backoff = Backoff::default();
    let send_role = format!("send:{connection}");
    while !stop.load(Ordering::Relaxed) {
        let seen = outbox.rings();
        if !backoff.ready() {
            outbox.wait(seen, backoff.remaining().min(IDLE_POLL));
            continue;
        }
        // One process of the node sends a connection's messages: two would send the same
        // ones at once, and a later one ahead of an earlier one.
        if !leads(&node, &send_role) {
            outbox.wait(seen, IDLE_POLL);
            continue;
        }
        let batch = match node.outbox(&connection, 64) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(connection, "cannot read the outbox: {error:#}");
                backoff.failed();
                continue;
            }
        };
        if batch.is_empty() {
            outbox.wait(seen, sender_idle_poll());
            continue;
        }
        let mut acknowledged = Vec::new();
        // Twins whose message did not go through this round: their later messages wait
        // (they would arrive out of order), the other twins' go on.
        let mut stopped = std::collections::HashSet::new();
        let mut retry_later = false;
        // In batches, one request each; to an older node, one message per request.
        let mut batched = sender
            .send_batches(&batch, millis(clock.now()) / 1000)
            .map(Vec::into_iter);
        for message in batch {
            let sent = batched.as_mut().and_then(Iterator::next);
            if stopped.contains(&message.twin) {
                continue;
            }
            let span = tracing::info_span!("send", event = %message.id, twin = %message.twin, connection = %connection);
            let _entered = span.enter();
            let sent = sent.unwrap_or_else(|| sender.send(&message, millis(clock.now()) / 1000));
            match sent {
                Ok(receipt @ (Receipt::Accepted | Receipt::Duplicate)) => {
                    tracing::debug!(?receipt, "acknowledged");
                    acknowledged.push(message.id);
                    peers.reached(&connection, millis(clock.now()));
                }
                Ok(receipt) => {
                    tracing::warn!(
                        ?receipt,
                        "the other node did not take the message yet; it stays queued"
                    );
                    let why = format!("the other node did not take a message: {receipt:?}");
                    peers.failed(&connection, millis(clock.now()), why);
                    stopped.insert(message.twin.clone());
                    retry_later = true;
                }
                Err(error) => match error.refused_for_good() {
                    Some(reason) => {
                        // The other node answered: it is reachable, it refused this one.
                        peers.reached(&connection, millis(clock.now()));
                        tracing::error!(
                            "{error}; a sync error of the twin now, its later messages wait"
                        );
                        if let Err(e) = node.refused(&message, reason) {
                            tracing::error!("cannot record the refusal: {e:#}");
                            retry_later = true;
                            break;
                        }
                        stopped.insert(message.twin.clone());
                    }
                    None => {
                        peers.failed(&connection, millis(clock.now()), error.to_string());
                        // The other node or the connection: the same for every message.
                        tracing::warn!(
                            "{error}; the message stays queued, retrying in {:?}",
                            backoff.delay()
                        );
                        retry_later = true;
                        break;
                    }
                },
            }
        }
        if retry_later {
            backoff.failed();
        } else {
            backoff.reset();
        }
        // Forgotten together, in one transaction; resending one the other node has is harmless.
        if let Err(error) = node.acknowledge(&acknowledged) {
            tracing::error!(connection, "cannot forget acknowledged messages: {error:#}");
        }
    }
}

/// The role of the process that reads the tracker's changes.
pub(crate) const POLL_ROLE: &str = "poll";

/// Whether this process holds `role` (taken or renewed now). A store that cannot be
/// reached holds nothing: the loop tries again at its next round.
pub(crate) fn leads(node: &Node, role: &str) -> bool {
    node.store().lead(role).unwrap_or_else(|error| {
        tracing::warn!("cannot take or renew `{role}`: {error:#}");
        false
    })
}

/// Exponential backoff for a loop that hit a passing failure: 100 ms doubling to 10 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
    until: Option<std::time::Instant>,
}

impl Backoff {
    fn delay(&self) -> Duration {
        Duration::from_millis(100 * (1u64 << self.failures.min(7))).min(Duration::from_secs(10))
    }

    fn failed(&mut self) {
        self.until = Some(std::time::Instant::now() + self.delay());
        self.failures += 1;
    }

    fn reset(&mut self) {
        self.failures = 0;
        self.until = None;
    }

    fn ready(&self) -> bool {
        self.until
            .is_none_or(|until| std::time::Instant::now() >= until)
    }

    fn remaining(&self) -> Duration {
        self.until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(std::time::Instant::now())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tracker_is_polled_sooner_for_a_second_after_it_had_changes() {
        let now = Instant::now() + Duration::from_secs(10);
        assert_eq!(idle_wait(None, now), IDLE_POLL);
        assert_eq!(idle_wait(Some(now), now), BUSY_POLL);
        let earlier = |ms| now - Duration::from_millis(ms);
        assert_eq!(idle_wait(Some(earlier(999)), now), BUSY_POLL);
        assert_eq!(idle_wait(Some(earlier(1_000)), now), IDLE_POLL);
        assert!(BUSY_POLL < IDLE_POLL);
    }
}
