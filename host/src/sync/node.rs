//! A node: one tracker, its connections, its queue. The node turns tracker changes into
//! outgoing events, received messages into incoming events, and processes both in order per
//! twin. Transport between nodes is outside: it moves messages from one node's outbox to the
//! other node's `receive`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::batch::RetryPolicy;
use super::connection::Connection;
use super::crash::{self, CrashHook, CrashPoint};
use super::message::{MessageKind, Receipt, SyncMessage};
use crate::clock::{Clock, from_millis, millis, rfc3339};
use crate::model::{Origin, SyncContext, SyncReason};
use crate::runtime::Runtime;
use crate::store::events::{self, Event, Kind, NewEvent};
use crate::store::sql::Sql;
use crate::store::{NodeStore, get_meta, next_number, outbox, set_meta, twins};
use crate::tracker::Tracker;

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
    /// How long finished events are kept (for `twinsync events`, replays and audits).
    keep_events: Duration,
    /// Called at each crash point (tests only; see `crash`).
    crash: std::sync::OnceLock<CrashHook>,
    /// The plugin store, if the node has one, and which plugin each event runs with.
    pub(crate) plugins: crate::plugins::NodePlugins,
    /// Told about each event once its outcome is committed (see [`Node::observe`]).
    observer: std::sync::OnceLock<Observer>,
    /// Fuel its processors used so far (see [`Node::fuel_used`]).
    fuel: std::sync::atomic::AtomicU64,
}

/// What [`Node::observe`] calls for each event whose outcome was committed: the event, and
/// the note of what it did or the failure (transient ones will be retried).
pub type Observer = Box<dyn Fn(&Event, Result<&str, &super::SyncFailure>) + Send + Sync>;

/// Finished events are kept this long unless configured otherwise.
pub const KEEP_EVENTS: Duration = Duration::from_secs(7 * 24 * 3600);

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
            keep_events: KEEP_EVENTS,
            crash: crash::from_env()
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
            plugins: Default::default(),
            observer: Default::default(),
            fuel: Default::default(),
        })
    }

    /// Call `observer` for each event after its outcome is committed (the embedding API's
    /// events). Returns false if the node has an observer already.
    pub fn observe(&self, observer: Observer) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// Fuel (WebAssembly instructions, about) its processors used since it started: what a
    /// host's fuel quota counts.
    pub fn fuel_used(&self) -> u64 {
        self.fuel.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A processor call of this node used `fuel`.
    pub(super) fn burned(&self, fuel: u64) {
        self.fuel
            .fetch_add(fuel, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tell the observer, if any, what became of an event.
    pub(super) fn observed(&self, event: &Event, outcome: Result<&str, &super::SyncFailure>) {
        if let Some(observer) = self.observer.get() {
            observer(event, outcome);
        }
    }

    /// Call `hook` at every crash point (see `crash`), for tests that stop a node at a
    /// chosen moment. Returns false if the node has a hook already.
    pub fn set_crash_hook(&self, hook: CrashHook) -> bool {
        self.crash.set(hook).is_ok()
    }

    /// A moment at which a crash must leave nothing that later decisions misread.
    pub(super) fn crash_point(&self, point: CrashPoint) {
        if let Some(hook) = self.crash.get() {
            hook(point);
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn keeping_events_for(mut self, keep: Duration) -> Self {
        self.keep_events = keep;
        self
    }

    /// Forget up to `limit` events that finished longer ago than the node keeps them; how
    /// many went. Failed and pending events stay whatever their age.
    pub fn forget_old_events(&self, limit: usize) -> Result<usize> {
        let before = self.now_ms() - self.keep_events.as_millis() as i64;
        self.store.write(|tx| {
            // The twins' history goes with the events it tells of.
            crate::store::history::forget(tx, before, limit)?;
            events::forget_finished(tx, before, limit)
        })
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

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
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
        let queued = self.store.write(|tx| {
            // Another process of the node read these changes and moved the cursor on
            // meanwhile (it took over reading them): they are queued already.
            if get_meta(tx, CURSOR)? != cursor {
                return Ok(false);
            }
            for key in changed {
                self.queue_local_change(tx, key, now)?;
            }
            if let Some(cursor) = &batch.cursor {
                set_meta(tx, CURSOR, cursor)?;
            }
            Ok(true)
        })?;
        Ok(if queued { batch.changes.len() } else { 0 })
    }

    /// Issues the tracker says were changed by someone other than twinsync (a webhook, an
    /// embedder's push), instead of or besides its change feed: an outgoing event for every
    /// twin of each, as `poll_changes` queues. For each key: how many twins the issue has
    /// (0: not under sync) and how many events were queued.
    pub fn local_changes(&self, keys: &[&str]) -> Result<Vec<(usize, usize)>> {
        let now = self.now_ms();
        self.store.write(|tx| {
            keys.iter()
                .map(|key| self.queue_local_change(tx, key, now))
                .collect()
        })
    }

    /// Queue an outgoing event for each twin of local issue `key` that sends; how many twins
    /// it has and how many events were queued.
    fn queue_local_change(&self, tx: &dyn Sql, key: &str, now: i64) -> Result<(usize, usize)> {
        let twins = twins::of_issue(tx, key)?;
        let mut queued = 0;
        for (twin_id, connection) in &twins {
            // A change made while an event of the twin waits to send one is sent by that
            // event: under load, a busy issue costs one event, not one per edit.
            if self.connection(connection).is_some_and(|c| c.can_send())
                && !events::local_change_waiting(tx, twin_id)?
            {
                self.queue(
                    tx,
                    Kind::Outgoing,
                    connection,
                    twin_id,
                    SyncReason::LocalChange,
                    0,
                    now,
                )?;
                queued += 1;
            }
        }
        Ok((twins.len(), queued))
    }

    /// Take a message from the other node. Stored durably before this returns `Accepted`.
    pub fn receive(&self, message: &SyncMessage) -> Result<Receipt> {
        let mut receipts = self.receive_all(std::slice::from_ref(message))?;
        Ok(receipts.pop().unwrap_or(Receipt::Duplicate))
    }

    /// Take several messages in one transaction, in order; one receipt each.
    pub fn receive_all(&self, messages: &[SyncMessage]) -> Result<Vec<Receipt>> {
        let now = self.now_ms();
        // Encoded and packed before the transaction, so as not to hold the write lock for
        // it (a message refused or seen before is packed for nothing: those are rare).
        let bodies = messages
            .iter()
            .map(|message| self.pack(&serde_json::to_string(message)?))
            .collect::<Result<Vec<_>>>()?;
        self.store.write(|tx| {
            messages
                .iter()
                .zip(&bodies)
                .map(|(message, body)| self.accept(tx, message, body, now))
                .collect()
        })
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

    /// The other node refused `message` for good (an invalid message, a twin it does not
    /// take...): it becomes a sync error of its twin, its event failed with the reason. It
    /// stays in the outbox, holding back the twin's later messages and only those, until
    /// an operator retries it (sent again) or skips it (dropped).
    pub fn refused(&self, message: &SyncMessage, reason: &str) -> Result<()> {
        // The other node's words: kept, but not without bound.
        let reason = &reason[..reason.floor_char_boundary(2048)];
        let now = self.now_ms();
        self.store.write(|tx| {
            outbox::hold(
                tx,
                &message.id,
                &message.connection,
                &message.twin,
                reason,
                now,
            )?;
            if events::get(tx, &message.id)?.is_none() {
                // Its event was deleted after the keeping time: the error needs one.
                events::insert(
                    tx,
                    &NewEvent {
                        id: &message.id,
                        kind: match message.kind {
                            MessageKind::Update => Kind::Outgoing,
                            MessageKind::Unexalate => Kind::Unexalate,
                        },
                        connection: &message.connection,
                        twin_id: &message.twin,
                        reason: message.reason,
                        hop: message.hop,
                        message_seq: None,
                        message: None,
                    },
                    now,
                )?;
            }
            let event = events::get(tx, &message.id)?.context("the event was just stored")?;
            events::fail(
                tx,
                event.seq,
                "refused-by-peer",
                &format!(
                    "the other node refused message {} of twin {}: {reason}",
                    message.seq, message.twin
                ),
                "",
                None,
                now,
            )
        })
    }

    /// The other node has these messages: forget them.
    pub fn acknowledge(&self, ids: &[String]) -> Result<()> {
        self.store
            .write(|tx| ids.iter().try_for_each(|id| outbox::remove(tx, id)))
    }

    /// A fresh event id, unique across nodes and across resets of this node's database.
    pub(super) fn next_event_id(&self, db: &dyn Sql) -> Result<String> {
        // The number is zero-padded, so that ids sort in the order they are made and each
        // index keyed by an event id (the events', the outbox's, a tracker's record of its
        // sync writes) grows at its end. Unpadded, `…-10001` sorts beside `…-1000`, and a
        // batch of events wrote a leaf page of such an index for every ten ids.
        Ok(format!(
            "{}-{}-{:010}",
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
            origin: self.origin_of(&event.twin_id),
        }
    }

    /// Which side created a twin: the side that exalates names the twin after its own
    /// instance and database (see `exalate`).
    pub(super) fn origin_of(&self, twin_id: &str) -> Origin {
        let own = format!("{}-{}-t", self.instance, self.store.id());
        if twin_id.starts_with(&own) {
            Origin::Local
        } else {
            Origin::Remote
        }
    }
}
