//! What a tenant is made of ([`TenantConfig`], [`ConnectionConfig`], [`Processor`]) and the
//! handle an embedder holds to act on a running one ([`Tenant`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Result;

use super::schedule::{Quota, QuotaLimit, Work};
use crate::runtime::Limits;
use crate::service::Wake;
use crate::sync::{Flow, Node, Policies};
use crate::tracker::Tracker;

/// A processor a connection runs: one of the built-in ones or a WebAssembly component.
/// The host compiles each distinct component once, whichever tenants use it.
#[derive(Clone)]
pub enum Processor {
    /// `mirror`, `remote-key` or `status-guard`.
    Builtin(String),
    /// A component implementing `wit/processor.wit`; `name` is how logs and errors call it.
    Wasm { name: String, bytes: Arc<[u8]> },
}

impl Processor {
    /// A built-in processor by name (`mirror`, `remote-key`, `status-guard`).
    pub fn builtin(name: &str) -> Self {
        Processor::Builtin(name.to_string())
    }

    /// A component from its bytes (a `.wasm` file).
    pub fn wasm(name: &str, bytes: impl Into<Arc<[u8]>>) -> Self {
        Processor::Wasm {
            name: name.to_string(),
            bytes: bytes.into(),
        }
    }
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Processor::Builtin(name) => write!(f, "Builtin({name})"),
            Processor::Wasm { name, bytes } => write!(f, "Wasm({name}, {} bytes)", bytes.len()),
        }
    }
}

/// One connection of a tenant to another node (for now: another tenant of the same host,
/// found by its instance name).
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub(super) name: String,
    pub(super) remote_instance: String,
    pub(super) direction: Flow,
    pub(super) incoming: Option<Processor>,
    pub(super) outgoing: Option<Processor>,
    pub(super) limits: Limits,
    pub(super) policies: Policies,
}

impl ConnectionConfig {
    /// A bidirectional connection called `name` (the same name on both sides) to the node
    /// of instance `remote_instance`, running `mirror` both ways until told otherwise.
    pub fn new(name: &str, remote_instance: &str) -> Self {
        ConnectionConfig {
            name: name.to_string(),
            remote_instance: remote_instance.to_string(),
            direction: Flow::Bidirectional,
            incoming: Some(Processor::builtin("mirror")),
            outgoing: Some(Processor::builtin("mirror")),
            limits: Limits::default(),
            policies: Policies::default(),
        }
    }

    /// Run `processor` both ways.
    pub fn processor(self, processor: Processor) -> Self {
        self.incoming(processor.clone()).outgoing(processor)
    }

    /// The processor that applies what the other side sends.
    pub fn incoming(mut self, processor: Processor) -> Self {
        self.incoming = Some(processor);
        self
    }

    /// The processor that makes what this side sends.
    pub fn outgoing(mut self, processor: Processor) -> Self {
        self.outgoing = Some(processor);
        self
    }

    /// Which way changes flow, seen from this tenant.
    pub fn direction(mut self, direction: Flow) -> Self {
        self.direction = direction;
        self
    }

    /// The sandbox's limits for each call of this connection's processors.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How conflicts are settled, per field.
    pub fn policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }
}

/// A tenant to add to a [`Host`](super::Host): a node with its own tracker, database and
/// connections.
pub struct TenantConfig {
    pub(super) name: String,
    pub(super) instance: String,
    pub(super) tracker: Arc<dyn Tracker>,
    pub(super) connections: Vec<ConnectionConfig>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) poll_tracker: bool,
    pub(super) verify_every: Option<Duration>,
    pub(super) quota: Quota,
}

impl TenantConfig {
    /// Tenant `name` (letters, digits, `-` and `_`; it names the tenant's directory), whose
    /// node is tracker instance `instance` (as the other side names it) on `tracker`.
    pub fn new(name: &str, instance: &str, tracker: Arc<dyn Tracker>) -> Self {
        TenantConfig {
            name: name.to_string(),
            instance: instance.to_string(),
            tracker,
            connections: Vec::new(),
            data_dir: None,
            poll_tracker: true,
            verify_every: Some(Duration::from_secs(600)),
            quota: Quota::default(),
        }
    }

    pub fn connection(mut self, connection: ConnectionConfig) -> Self {
        self.connections.push(connection);
        self
    }

    /// Keep the tenant's database here instead of `HOST_DIR/tenants/NAME`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The embedder tells the tenant which issues changed ([`Tenant::issues_changed`]): the
    /// tracker's change feed ([`Tracker::changes`]) is not polled. Reconciliation (see
    /// [`TenantConfig::verify_every`]) still finds a change nobody pushed: it reads the
    /// feed, if the tracker has one, and compares every twin with what was last exchanged.
    pub fn push_changes(mut self) -> Self {
        self.poll_tracker = false;
        self
    }

    /// How often each twin is compared with what was last exchanged for it, and resent if
    /// it differs (`None`: never). Default: 10 minutes.
    pub fn verify_every(mut self, every: Option<Duration>) -> Self {
        self.verify_every = every;
        self
    }
}

// Quotas (fair share between tenants is the host's, see `HostConfig::workers_per_tenant`).
impl TenantConfig {
    /// What the tenant may use: past a quota its events wait (nothing fails, nothing is
    /// lost) and [`Tenant::queue`] says which quota they wait for. Default: no quota.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use twinsync::tracker::ReferenceTracker;
    /// use twinsync::{Quota, TenantConfig};
    /// # fn main() -> anyhow::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let issues = Arc::new(ReferenceTracker::new(&dir.path().join("acme.db"), "ACME")?);
    /// let acme = TenantConfig::new("acme", "Acme", issues).quota(Quota {
    ///     events_per_second: Some(50.0),
    ///     fuel_per_second: Some(500_000_000),
    ///     stored_bytes: Some(1 << 30),
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }
}

/// A tenant's queue, as [`Tenant::queue`] shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueInfo {
    /// Events waiting to be processed (including those waiting to retry after a passing
    /// failure, and those waiting for a quota).
    pub pending: u64,
    /// Sync errors, waiting for the embedder to retry or skip them.
    pub failed: u64,
    /// Messages sent and not yet acknowledged by the other side.
    pub unacknowledged: u64,
    /// The quota the tenant's events wait for, if they wait for one.
    pub waiting_for_quota: Option<QuotaLimit>,
}

/// What became of one key given to [`Tenant::issues_changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Events were queued to send the issue (one per connection it syncs on).
    Queued(usize),
    /// The issue syncs, and an event that will send it is already waiting (or its
    /// connections only receive).
    AlreadyQueued,
    /// The issue is not under sync: nothing to do.
    NotSynced,
}

/// A synchronised pair of issues, as a tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinInfo {
    pub twin: String,
    pub connection: String,
    pub local_key: String,
    /// The other side's key, once known.
    pub remote_key: Option<String>,
}

/// A sync error: an event that failed for good; its twin's later events wait until it is
/// retried or skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncErrorInfo {
    pub event: String,
    pub connection: String,
    pub twin: String,
    /// The local issue, if the twin exists here.
    pub issue: Option<String>,
    /// What kind of failure (`processor-error`, `timeout`, `tracker-rejected`...).
    pub kind: String,
    pub message: String,
    pub attempts: i64,
}

/// A running tenant, shared by the host and the embedder's handles.
pub(super) struct Running {
    pub(super) name: String,
    pub(super) node: Arc<Node>,
    pub(super) wake: Arc<Bell>,
    pub(super) stop: Arc<AtomicBool>,
    /// Its part of the host's event loop (`None` once stopped). Held by the loop while it
    /// works on the tenant, so that removing it waits for that.
    pub(super) work: Mutex<Option<Work>>,
    /// Held while its twins are being verified.
    pub(super) verifying: Mutex<()>,
    pub(super) verify_every: Option<Duration>,
    /// The quota its events wait for, if any (what [`Tenant::queue`] shows).
    pub(super) waiting: Mutex<Option<QuotaLimit>>,
    /// Held while the tenant runs (one host or `serve` per tenant database), and let go
    /// when it stops, even if the embedder still holds a handle.
    pub(super) lock: Mutex<Option<crate::service::DataDirLock>>,
}

/// A tenant's doorbell: whoever gives it work (the embedder, a message from another
/// tenant) rings it; the host's loops then look at this tenant, and only at the tenants
/// that rang (an idle tenant costs nothing).
pub(super) struct Bell {
    name: String,
    /// Its queue may have ready events.
    events: AtomicBool,
    /// Its outbox may have messages.
    outbox: AtomicBool,
    event_loop: Arc<Rung>,
    delivery: Arc<Rung>,
    /// Rung when its events are committed, besides the in-process delivery: `serve`'s HTTP
    /// senders of the tenant, if it has any (set once, when they start).
    senders: OnceLock<Arc<Wake>>,
}

impl Bell {
    pub(super) fn new(name: &str, event_loop: Arc<Rung>, delivery: Arc<Rung>) -> Self {
        Bell {
            name: name.to_string(),
            events: AtomicBool::new(false),
            outbox: AtomicBool::new(false),
            event_loop,
            delivery,
            senders: OnceLock::new(),
        }
    }

    pub(super) fn ring(&self) {
        // Named once until the loop takes it.
        if !self.events.swap(true, Ordering::AcqRel) {
            self.event_loop.push(&self.name);
        }
        self.outbox_changed();
    }

    /// Its events were committed: the messages they queued wait in its outbox, for the
    /// in-process delivery or for its HTTP senders.
    pub(super) fn committed(&self) {
        self.outbox_changed();
        if let Some(senders) = self.senders.get() {
            senders.ring();
        }
    }

    pub(super) fn outbox_changed(&self) {
        if !self.outbox.swap(true, Ordering::AcqRel) {
            self.delivery.push(&self.name);
        }
    }

    /// Whether it rang for its queue since last asked.
    pub(super) fn take_events(&self) -> bool {
        self.events.swap(false, Ordering::AcqRel)
    }

    /// Whether it rang for its outbox since last asked.
    pub(super) fn take_outbox(&self) -> bool {
        self.outbox.swap(false, Ordering::AcqRel)
    }
}

/// The tenants that rang one of the host's loops since it last looked, and its bell.
#[derive(Default)]
pub(super) struct Rung {
    names: Mutex<Vec<String>>,
    pub(super) bell: Arc<Wake>,
}

impl Rung {
    fn push(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.to_string());
        self.bell.ring();
    }

    /// The tenants that rang, each once.
    pub(super) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.names.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A handle on a running tenant, from [`Host::add_tenant`](super::Host::add_tenant) or
/// [`Host::tenant`](super::Host::tenant). Cheap to clone. Its calls read and write the
/// tenant's database; they fail once the tenant is removed or stopped.
#[derive(Clone)]
pub struct Tenant {
    pub(super) running: Arc<Running>,
}

impl Tenant {
    pub fn name(&self) -> &str {
        &self.running.name
    }

    /// The tracker instance the tenant's node is.
    pub fn instance(&self) -> &str {
        self.running.node.instance()
    }

    fn live(&self) -> Result<&Node> {
        if self.running.stop.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!(
                "tenant `{}` is not running (removed from the host, or stopped by a failure)",
                self.running.name
            );
        }
        Ok(&self.running.node)
    }

    /// Start syncing issue `key` over `connection`. Returns the twin's id.
    pub fn exalate(&self, connection: &str, key: &str) -> Result<String> {
        let twin = self.live()?.exalate(connection, key)?;
        self.running.wake.ring();
        Ok(twin)
    }

    /// Stop syncing issue `key` over `connection`; both sides keep their issue.
    pub fn unexalate(&self, connection: &str, key: &str) -> Result<()> {
        self.live()?.unexalate(connection, key)?;
        self.running.wake.ring();
        Ok(())
    }

    /// Tell the tenant that these issues changed (made by a person or an integration, not
    /// by twinsync's own writes): each is sent on every connection it syncs on. At most
    /// 1,000 keys per call. Instead of, or besides, the tracker's change feed.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use twinsync::model::Issue;
    /// # use twinsync::tracker::{Origin, ReferenceTracker, Tracker};
    /// # use twinsync::{Host, HostConfig, Pushed, TenantConfig};
    /// # fn main() -> anyhow::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let host = Host::start(HostConfig::new(dir.path()))?;
    /// let issues = Arc::new(ReferenceTracker::new(&dir.path().join("acme.db"), "ACME")?);
    /// let acme = host.add_tenant(TenantConfig::new("acme", "Acme", issues.clone()).push_changes())?;
    /// let issue = Issue { summary: "Not synced yet".into(), ..Issue::default() };
    /// let key = issues.create(&issue, Origin::User)?.key.unwrap();
    /// // Nothing to send: the issue was never exalated.
    /// assert_eq!(acme.issues_changed(&[key.as_str()])?, [Pushed::NotSynced]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn issues_changed(&self, keys: &[&str]) -> Result<Vec<Pushed>> {
        if keys.len() > MAX_PUSHED_KEYS {
            anyhow::bail!("{} keys in one call: at most {MAX_PUSHED_KEYS}", keys.len());
        }
        let results = self.live()?.local_changes(keys)?;
        self.running.wake.ring();
        Ok(results.into_iter().map(pushed).collect())
    }

    /// The tenant's twins.
    pub fn twins(&self) -> Result<Vec<TwinInfo>> {
        let rows = crate::ops::twins(self.live()?.store())?;
        Ok(rows
            .into_iter()
            .map(|row| TwinInfo {
                twin: row.twin,
                connection: row.connection,
                local_key: row.local_key,
                remote_key: row.remote_key,
            })
            .collect())
    }

    /// The tenant's sync errors, oldest first.
    pub fn sync_errors(&self) -> Result<Vec<SyncErrorInfo>> {
        let rows = crate::ops::errors(self.live()?.store())?;
        Ok(rows
            .into_iter()
            .map(|row| SyncErrorInfo {
                event: row.event,
                connection: row.connection,
                twin: row.twin,
                issue: row.issue,
                kind: row.kind,
                message: row.reason,
                attempts: row.attempts,
            })
            .collect())
    }

    /// Put a sync error's event back in the queue (after fixing its cause).
    pub fn retry(&self, event: &str) -> Result<()> {
        crate::ops::retry(self.live()?.store(), event)?;
        self.running.wake.ring();
        Ok(())
    }

    /// The tenant's queue: events pending and failed, messages not yet acknowledged, and
    /// the quota its events wait for, if any.
    pub fn queue(&self) -> Result<QueueInfo> {
        let rows = crate::ops::queue(self.live()?.store())?;
        let sum = |f: fn(&crate::ops::QueueRow) -> i64| -> u64 {
            rows.iter().map(|r| f(r).max(0) as u64).sum()
        };
        Ok(QueueInfo {
            pending: sum(|r| r.pending),
            failed: sum(|r| r.failed),
            unacknowledged: sum(|r| r.in_flight),
            waiting_for_quota: *self
                .running
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        })
    }

    /// Drop a sync error's event; its twin goes on.
    pub fn skip(&self, event: &str) -> Result<()> {
        crate::ops::skip(self.live()?.store(), event)?;
        self.running.wake.ring();
        Ok(())
    }
}

/// Keys one push may name: the work is one transaction.
pub const MAX_PUSHED_KEYS: usize = 1_000;

fn pushed((twins, queued): (usize, usize)) -> Pushed {
    match (twins, queued) {
        (0, _) => Pushed::NotSynced,
        (_, 0) => Pushed::AlreadyQueued,
        (_, n) => Pushed::Queued(n),
    }
}

// Crate-private accessors for `twinsync serve`'s tenants (host/src/tenants): serve's admin
// API acts on a tenant's node, and wakes its loops after a change. Kept in one block.
impl Tenant {
    /// The tenant's node.
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.running.node
    }

    /// Wake the tenant's loops: something it should act on changed (an admin request).
    pub(crate) fn wake(&self) {
        self.running.wake.ring();
    }

    /// Ring `senders` whenever the tenant commits events: `serve`'s HTTP senders of its
    /// connections, which sleep until their outbox may have messages. Set once.
    pub(crate) fn ring_on_commit(&self, senders: Arc<Wake>) {
        let _ = self.running.wake.senders.set(senders);
    }
}
