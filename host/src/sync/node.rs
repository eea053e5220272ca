//! A node: one tracker, its connections, its queue. The node turns tracker changes into
//! outgoing events, received messages into incoming events, and processes both in order per
//! twin. Transport between nodes is outside: it moves messages from one node's outbox to the
//! other node's `receive`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::connection::Connection;
use super::effect::Prepared;
use super::failure::Failed;
use super::message::{Receipt, SyncMessage};
use crate::clock::{Clock, from_millis, millis, rfc3339};
use crate::model::{SyncContext, SyncReason};
use crate::runtime::Runtime;
use crate::store::events::{self, Event, Kind, NewEvent};
use crate::store::{NodeStore, get_meta, next_number, outbox, set_meta, twins};
use crate::tracker::Tracker;

/// How long to wait before retrying an event that failed for a passing reason.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter: attempt n waits about first * 2^(n-1), capped, with a
    /// jitter of up to a quarter derived from the event id (so runs are reproducible).
    pub fn delay(&self, attempt: i64, event_id: &str) -> Duration {
        let exponent = attempt.clamp(1, 30) as u32 - 1;
        let base = self
            .first_delay
            .saturating_mul(1u32 << exponent.min(20))
            .min(self.max_delay);
        let hash = event_id.bytes().fold(attempt as u64, |h, b| {
            h.wrapping_mul(31).wrapping_add(b as u64)
        });
        let jitter = base.mul_f64((hash % 1000) as f64 / 4000.0);
        base + jitter
    }
}

/// What one call to [`Node::process_ready`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub failed: usize,
    pub deferred: usize,
}

impl Progress {
    pub fn total(&self) -> usize {
        self.done + self.failed + self.deferred
    }
}

/// Keep the first event of each local issue: an issue synced on two connections has one
/// set of field stamps, which two events of one batch would each stamp on their own. The
/// others run in the next batch.
fn one_per_issue(db: &rusqlite::Connection, ready: Vec<Event>) -> Result<Vec<Event>> {
    let mut issues = std::collections::HashSet::new();
    let mut kept = Vec::with_capacity(ready.len());
    for event in ready {
        // A twin not created yet here (first sync) is its own issue.
        let issue = twins::local_key(db, &event.twin_id)?.unwrap_or_else(|| event.twin_id.clone());
        if issues.insert(issue) {
            kept.push(event);
        }
    }
    Ok(kept)
}

/// How long a batch keeps taking new events to prepare before it commits.
pub const BATCH_TIME: Duration = Duration::from_millis(10);

/// The span every log line about an event is in: event id, twin and connection.
fn event_span(event: &Event) -> tracing::Span {
    tracing::info_span!("event", event = %event.id, twin = %event.twin_id, connection = %event.connection)
}

fn log_outcome(event: &Event, outcome: &Result<Prepared, Failed>) {
    let _span = event_span(event).entered();
    match outcome {
        Ok(prepared) => {
            tracing::info!(kind = ?event.kind, reason = event.reason.as_str(), hop = event.hop, "{}", prepared.note)
        }
        Err(failed) if failed.failure.is_transient() => {
            tracing::warn!(kind = ?event.kind, "will retry: {}", failed.failure)
        }
        Err(failed) => tracing::warn!(
            kind = ?event.kind,
            error_kind = failed.failure.kind(),
            "sync error: {}",
            failed.failure
        ),
    }
}

/// A twinsync node.
pub struct Node {
    pub(super) instance: String,
    pub(super) tracker: Arc<dyn Tracker>,
    pub(super) store: Arc<NodeStore>,
    pub(super) runtime: Arc<Runtime>,
    /// Behind a lock so that an operator can replace a processor while the node runs.
    connections: RwLock<BTreeMap<String, Arc<Connection>>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) retry: RetryPolicy,
}

const CURSOR: &str = "tracker.cursor";

impl Node {
    pub fn new(
        instance: &str,
        tracker: Arc<dyn Tracker>,
        store: Arc<NodeStore>,
        runtime: Arc<Runtime>,
        connections: Vec<Connection>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let mut by_name = BTreeMap::new();
        for connection in connections {
            if connection.remote_instance == instance {
                bail!(
                    "connection `{}` points back at this node's own instance `{instance}`",
                    connection.name
                );
            }
            let name = connection.name.clone();
            if by_name.insert(name.clone(), Arc::new(connection)).is_some() {
                bail!("connection `{name}` is configured twice");
            }
        }
        Ok(Node {
            instance: instance.to_string(),
            tracker,
            store,
            runtime,
            connections: RwLock::new(by_name),
            clock,
            retry: RetryPolicy::default(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn tracker(&self) -> &Arc<dyn Tracker> {
        &self.tracker
    }

    pub fn store(&self) -> &Arc<NodeStore> {
        &self.store
    }

    /// The configured connections, by name.
    pub fn connections(&self) -> Vec<Arc<Connection>> {
        self.connections_read().values().cloned().collect()
    }

    /// Replace a connection's configuration, for example to install a fixed processor; the
    /// queue is untouched, so blocked events can be retried with it.
    pub fn replace_connection(&self, connection: Connection) -> Result<()> {
        let mut connections = self.connections.write().unwrap_or_else(|e| e.into_inner());
        match connections.get_mut(&connection.name) {
            Some(slot) => *slot = Arc::new(connection),
            None => bail!(
                "connection `{}` is not configured on this node",
                connection.name
            ),
        }
        Ok(())
    }

    pub(super) fn connection(&self, name: &str) -> Option<Arc<Connection>> {
        self.connections_read().get(name).cloned()
    }

    fn connections_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Connection>>> {
        self.connections.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn now_ms(&self) -> i64 {
        millis(self.clock.now())
    }

    /// Start syncing local issue `key` over `connection`: the first event of a new twin.
    /// Returns the twin's id.
    pub fn exalate(&self, connection: &str, key: &str) -> Result<String> {
        let conn = self
            .connection(connection)
            .ok_or_else(|| anyhow!("connection `{connection}` is not configured on this node"))?;
        if !conn.can_send() {
            bail!(
                "connection `{connection}` only receives on this node: issues cannot be exalated from here"
            );
        }
        if self.tracker.get(key)?.is_none() {
            bail!("issue {key} does not exist in the tracker");
        }
        let now = self.now_ms();
        self.store.write(|tx| {
            if twins::by_local_key(tx, connection, key)?.is_some() {
                bail!("issue {key} is already under sync on connection `{connection}`");
            }
            let twin_id = format!(
                "{}-{}-t{}",
                self.instance,
                self.store.id(),
                next_number(tx, "twin")?
            );
            twins::insert(tx, &twin_id, connection, key, now)?;
            let id = self.next_event_id(tx)?;
            events::insert(
                tx,
                &NewEvent {
                    id: &id,
                    kind: Kind::Outgoing,
                    connection,
                    twin_id: &twin_id,
                    reason: SyncReason::ManualExalate,
                    hop: 0,
                    message_seq: None,
                    message: None,
                },
                now,
            )?;
            Ok(twin_id)
        })
    }

    /// Stop syncing local issue `key` over `connection`. The stop is queued behind the
    /// twin's other events; when it runs, the other node is told and both forget the link.
    /// Both issues stay.
    pub fn unexalate(&self, connection: &str, key: &str) -> Result<()> {
        let now = self.now_ms();
        self.store.write(|tx| {
            let Some(twin) = twins::by_local_key(tx, connection, key)? else {
                bail!("issue {key} is not under sync on connection `{connection}`");
            };
            let id = self.next_event_id(tx)?;
            events::insert(
                tx,
                &NewEvent {
                    id: &id,
                    kind: Kind::Unexalate,
                    connection,
                    twin_id: &twin.twin_id,
                    reason: SyncReason::LocalChange,
                    hop: 0,
                    message_seq: None,
                    message: None,
                },
                now,
            )
        })
    }

    /// Read the tracker's change feed and queue an outgoing event for every twin of every
    /// issue changed by someone other than twinsync. Returns how many changes were read.
    pub fn poll_changes(&self) -> Result<usize> {
        let cursor = self.store.read(|db| get_meta(db, CURSOR))?;
        let batch = self
            .tracker
            .changes(cursor.as_deref(), 1_000)
            .context("cannot read the tracker's changes")?;
        if batch.changes.is_empty() {
            return Ok(0);
        }
        // Several changes of one issue in a batch make one event: the processor reads the
        // issue as it is now anyway.
        let changed: BTreeSet<&str> = batch
            .changes
            .iter()
            .filter(|c| !c.by_sync)
            .map(|c| c.key.as_str())
            .collect();
        let now = self.now_ms();
        self.store.write(|tx| {
            for key in changed {
                for twin in twins::for_local_key(tx, key)? {
                    if !self
                        .connection(&twin.connection)
                        .is_some_and(|c| c.can_send())
                    {
                        continue;
                    }
                    let id = self.next_event_id(tx)?;
                    events::insert(
                        tx,
                        &NewEvent {
                            id: &id,
                            kind: Kind::Outgoing,
                            connection: &twin.connection,
                            twin_id: &twin.twin_id,
                            reason: SyncReason::LocalChange,
                            hop: 0,
                            message_seq: None,
                            message: None,
                        },
                        now,
                    )?;
                }
            }
            if let Some(cursor) = &batch.cursor {
                set_meta(tx, CURSOR, cursor)?;
            }
            Ok(())
        })?;
        Ok(batch.changes.len())
    }

    /// Process up to `limit` events that are ready, oldest first, at most one per twin per
    /// call (call again to go on).
    pub fn process_ready(&self, limit: usize) -> Result<Progress> {
        self.process_ready_parallel(limit, 1)
    }

    /// Like [`Node::process_ready`], with `workers` threads: events of different twins are
    /// prepared in parallel (processors run concurrently), then the whole batch commits in
    /// one transaction. Preparing stops taking new events after [`BATCH_TIME`], so that a
    /// batch does not hold back the first events' commit for long.
    pub fn process_ready_parallel(&self, limit: usize, workers: usize) -> Result<Progress> {
        let now = self.now_ms();
        let ready = self.store.read(|db| {
            let ready = events::ready(db, now, limit)?;
            one_per_issue(db, ready)
        })?;
        if ready.is_empty() {
            return Ok(Progress::default());
        }
        let prepared = self.prepare_batch(&ready, workers);
        let now = self.now_ms();
        let mut progress = Progress::default();
        self.store.write(|tx| {
            for (event, outcome) in ready.iter().zip(&prepared) {
                match outcome {
                    None => {}
                    Some(Ok(prepared)) => {
                        self.commit(tx, event, prepared, now)?;
                        progress.done += 1;
                    }
                    Some(Err(failed)) => {
                        self.record_failure(tx, event, failed, now)?;
                        if failed.failure.is_transient() {
                            progress.deferred += 1;
                        } else {
                            progress.failed += 1;
                        }
                    }
                }
            }
            Ok(())
        })?;
        for (event, outcome) in ready.iter().zip(&prepared) {
            if let Some(outcome) = outcome {
                log_outcome(event, outcome);
            }
        }
        Ok(progress)
    }

    /// Prepare events with up to `workers` threads; `None` for events left for the next
    /// batch because the time budget ran out.
    fn prepare_batch(
        &self,
        ready: &[Event],
        workers: usize,
    ) -> Vec<Option<Result<Prepared, Failed>>> {
        let deadline = Instant::now() + BATCH_TIME;
        let workers = workers.clamp(1, ready.len());
        let next = AtomicUsize::new(0);
        let take = || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            // The first event of a batch always runs, however long it takes.
            (i < ready.len() && (i == 0 || Instant::now() < deadline)).then_some(i)
        };
        if workers == 1 {
            let mut prepared: Vec<_> = ready.iter().map(|_| None).collect();
            while let Some(i) = take() {
                prepared[i] = Some(self.prepare(&ready[i]));
            }
            return prepared;
        }
        let slots: Vec<Mutex<Option<Result<Prepared, Failed>>>> =
            ready.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some(i) = take() {
                        let outcome = self.prepare(&ready[i]);
                        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                    }
                });
            }
        });
        slots
            .into_iter()
            .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    fn prepare(&self, event: &Event) -> Result<Prepared, Failed> {
        let _span = event_span(event).entered();
        match event.kind {
            Kind::Outgoing => self.prepare_outgoing(event),
            Kind::Incoming => self.prepare_incoming(event),
            Kind::Unexalate => self.prepare_unexalate(event),
        }
    }

    /// Store a failure: transient ones wait and retry, the others become sync errors.
    fn record_failure(
        &self,
        tx: &rusqlite::Connection,
        event: &Event,
        failed: &Failed,
        now: i64,
    ) -> Result<()> {
        let kind = failed.failure.kind();
        let message = failed.failure.to_string();
        if failed.failure.is_transient() {
            let delay = self.retry.delay(event.attempts + 1, &event.id);
            let next = now + delay.as_millis() as i64;
            events::defer(tx, event.seq, kind, &message, &failed.log, now, next)
        } else {
            events::fail(
                tx,
                event.seq,
                kind,
                &message,
                &failed.log,
                failed.input.as_deref(),
                now,
            )
        }
    }

    /// Take a message from the other node. Stored durably before this returns `Accepted`.
    pub fn receive(&self, message: &SyncMessage) -> Result<Receipt> {
        let mut receipts = self.receive_all(std::slice::from_ref(message))?;
        Ok(receipts.pop().unwrap_or(Receipt::Duplicate))
    }

    /// Take several messages in one transaction, in order; one receipt each.
    pub fn receive_all(&self, messages: &[SyncMessage]) -> Result<Vec<Receipt>> {
        let now = self.now_ms();
        self.store.write(|tx| {
            messages
                .iter()
                .map(|message| self.accept(tx, message, now))
                .collect()
        })
    }

    fn accept(
        &self,
        tx: &rusqlite::Connection,
        message: &SyncMessage,
        now: i64,
    ) -> Result<Receipt> {
        if let Err(reason) = message.validate() {
            return Ok(Receipt::Refused { reason });
        }
        let Some(connection) = self.connection(&message.connection) else {
            return Ok(Receipt::Refused {
                reason: format!(
                    "connection `{}` is not configured on this node",
                    message.connection
                ),
            });
        };
        if !connection.can_receive() {
            return Ok(Receipt::Refused {
                reason: format!(
                    "connection `{}` only sends from this node",
                    message.connection
                ),
            });
        }
        if events::exists(tx, &message.id)? {
            return Ok(Receipt::Duplicate);
        }
        let last = events::last_message_seq(tx, &message.twin)?;
        if message.seq <= last {
            return Ok(Receipt::Duplicate);
        }
        if message.seq > last + 1 {
            return Ok(Receipt::OutOfOrder { expected: last + 1 });
        }
        let body = serde_json::to_string(message)?;
        events::insert(
            tx,
            &NewEvent {
                id: &message.id,
                kind: Kind::Incoming,
                connection: &message.connection,
                twin_id: &message.twin,
                reason: message.reason,
                hop: message.hop,
                message_seq: Some(message.seq),
                message: Some(&body),
            },
            now,
        )?;
        Ok(Receipt::Accepted)
    }

    /// Messages waiting to be sent on `connection`, oldest first.
    pub fn outbox(&self, connection: &str, limit: usize) -> Result<Vec<SyncMessage>> {
        let rows = self.store.read(|db| outbox::peek(db, connection, limit))?;
        rows.into_iter()
            .map(|(id, body)| {
                serde_json::from_str(&body)
                    .with_context(|| format!("outbox message {id} is unreadable"))
            })
            .collect()
    }

    /// The other node has these messages: forget them.
    pub fn acknowledge(&self, ids: &[String]) -> Result<()> {
        self.store
            .write(|tx| ids.iter().try_for_each(|id| outbox::remove(tx, id)))
    }

    /// A fresh event id, unique across nodes and across resets of this node's database.
    pub(super) fn next_event_id(&self, db: &rusqlite::Connection) -> Result<String> {
        Ok(format!(
            "{}-{}-{}",
            self.instance,
            self.store.id(),
            next_number(db, "event")?
        ))
    }

    /// The context a processor gets for an event.
    pub(super) fn context(
        &self,
        connection: &Connection,
        event: &Event,
        first_sync: bool,
    ) -> SyncContext {
        SyncContext {
            connection: connection.name.clone(),
            local_instance: self.instance.clone(),
            remote_instance: connection.remote_instance.clone(),
            direction: connection.direction(),
            first_sync,
            event_id: event.id.clone(),
            reason: event.reason,
            hop: event.hop,
            // The event's own time, not the processing time: running the event again gives
            // the processor the same input.
            now: rfc3339(from_millis(event.created_at)),
        }
    }
}
