//! The embedding API: a [`Host`] runs tenants in the embedder's process. A tenant is a node
//! (its own tracker, database and connections); all tenants share one WebAssembly engine,
//! one compile cache and one copy of each compiled processor. Tenants reach each other by
//! instance name, in process.
//!
//! Each tenant runs on threads of its own (an event loop, its workers, a reconciliation
//! loop); scheduling many tenants on shared workers, with quotas, is not done yet.

mod events;
mod tenant;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

pub use events::{EventKind, HostEvent, SUBSCRIBER_BACKLOG};
pub use tenant::{
    ConnectionConfig, MAX_PUSHED_KEYS, Processor, Pushed, SyncErrorInfo, Tenant, TenantConfig,
    TwinInfo,
};

use crate::clock::SystemClock;
use crate::runtime::{Plugin, PoolConfig, Runtime, RuntimeConfig};
use crate::service::{DataDirLock, Wake};
use crate::store::NodeStore;
use crate::sync::{Connection, Node};
use crate::transport::local::LocalNetwork;
use events::Subscribers;
use tenant::Running;

/// How a [`Host`] is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The compile cache (`cache/`), the key of processors' random bytes (`random.key`) and
    /// the tenants' databases (`tenants/NAME/`) live here.
    pub data_dir: PathBuf,
    /// Worker threads per tenant (events of different twins processed in parallel).
    pub workers_per_tenant: usize,
    /// Processor calls that can run at once in the whole host: instances are reserved up
    /// front for this many. Each tenant may run `workers_per_tenant` calls, plus one for
    /// reconciliation; a tenant that would take the host past this is refused.
    pub max_parallel_calls: usize,
}

impl HostConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        HostConfig {
            data_dir: data_dir.into(),
            workers_per_tenant: 1,
            max_parallel_calls: 64,
        }
    }
}

/// Runs tenants: see the [crate documentation](crate) for syncing between two. Tenants
/// come and go while the host runs. Dropping it stops every tenant (running processors are
/// interrupted; their events stay queued).
///
/// ```
/// use std::sync::Arc;
///
/// use twinsync::tracker::ReferenceTracker;
/// use twinsync::{Host, HostConfig, TenantConfig};
///
/// # fn main() -> anyhow::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let host = Host::start(HostConfig::new(dir.path()))?;
/// let issues = Arc::new(ReferenceTracker::new(&dir.path().join("acme.db"), "ACME")?);
/// host.add_tenant(TenantConfig::new("acme", "Acme", issues.clone()))?;
/// assert_eq!(host.tenants(), ["acme"]);
///
/// // A name or an instance taken already is refused.
/// let taken = host.add_tenant(TenantConfig::new("acme-2", "Acme", issues.clone()));
/// assert!(taken.is_err());
///
/// // Its database stays: added again, it resumes where it stopped.
/// host.remove_tenant("acme")?;
/// assert!(host.tenant("acme").is_none());
/// host.add_tenant(TenantConfig::new("acme", "Acme", issues))?;
/// # Ok(())
/// # }
/// ```
pub struct Host {
    shared: Arc<Shared>,
    delivery: Option<JoinHandle<()>>,
}

/// What the host's threads share.
struct Shared {
    data_dir: PathBuf,
    workers: usize,
    /// Processor calls the instance pool has room for at once (`None`: no pool, no bound).
    max_calls: Option<usize>,
    runtime: Arc<Runtime>,
    /// Each distinct component compiled once, by SHA-256.
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    tenants: RwLock<BTreeMap<String, Arc<Running>>>,
    subscribers: Subscribers,
    /// Rung when an outbox may have new messages.
    outboxes: Wake,
    stop: AtomicBool,
}

impl Host {
    /// Start a host with no tenant.
    pub fn start(config: HostConfig) -> Result<Host> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let runtime = Arc::new(Runtime::new(&RuntimeConfig {
            pool: Some(PoolConfig::for_workers(config.max_parallel_calls.max(1))),
            cache_dir: Some(dir.join("cache")),
            random_key: Some(crate::setup::random_key(&dir.join("random.key"))?),
            ..RuntimeConfig::default()
        })?);
        let shared = Arc::new(Shared {
            data_dir: dir.clone(),
            workers: config.workers_per_tenant.max(1),
            max_calls: (runtime.allocator() == "pooling")
                .then_some(config.max_parallel_calls.max(1)),
            runtime,
            plugins: Mutex::default(),
            tenants: RwLock::default(),
            subscribers: Subscribers::default(),
            outboxes: Wake::default(),
            stop: AtomicBool::new(false),
        });
        let delivery = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("twinsync-host-delivery".into())
                .spawn(move || shared.deliver_loop())?
        };
        Ok(Host {
            shared,
            delivery: Some(delivery),
        })
    }

    /// Notifications of what happens in every tenant, from now on (see [`HostEvent`]).
    pub fn subscribe(&self) -> Receiver<HostEvent> {
        self.shared.subscribers.subscribe()
    }

    /// Open the tenant's database (created on first use) and start syncing it.
    pub fn add_tenant(&self, config: TenantConfig) -> Result<Tenant> {
        let shared = &self.shared;
        check_name(&config.name)?;
        if config.instance.trim().is_empty() {
            bail!("tenant `{}`: the instance name is empty", config.name);
        }
        shared.check_free(&config)?;
        let dir = config
            .data_dir
            .clone()
            .unwrap_or_else(|| shared.data_dir.join("tenants").join(&config.name));
        let lock = DataDirLock::take(&dir).with_context(|| format!("tenant `{}`", config.name))?;
        let connections = config
            .connections
            .iter()
            .map(|c| shared.connection(c))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("tenant `{}`", config.name))?;
        let store = Arc::new(NodeStore::open(&dir.join("twinsync.db"))?);
        let node = Arc::new(Node::new(
            &config.instance,
            config.tracker.clone(),
            store,
            shared.runtime.clone(),
            connections,
            Arc::new(SystemClock),
        )?);
        let weak = Arc::downgrade(&self.shared);
        let name = config.name.clone();
        node.observe(Box::new(move |event, outcome| {
            if let Some(shared) = Weak::upgrade(&weak) {
                if outcome.is_ok() {
                    shared.outboxes.ring();
                }
                shared
                    .subscribers
                    .send(&HostEvent::of(&name, event, outcome));
            }
        }));
        let running = Arc::new(Running {
            name: config.name.clone(),
            node,
            wake: Arc::default(),
            stop: Arc::default(),
            threads: Mutex::default(),
            lock: Mutex::new(Some(lock)),
            calls: shared.calls_of(&config),
        });
        // Compiling took the time: the map is locked for the last checks and the insert
        // only, so that the other tenants' messages keep moving meanwhile.
        let mut tenants = shared.tenants.write().unwrap_or_else(|e| e.into_inner());
        check_free(&tenants, &config, running.calls, shared.max_calls)?;
        match shared.start(&running, &config) {
            Ok(threads) => *running.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads,
            Err(error) => {
                stop(&running);
                return Err(error);
            }
        }
        tenants.insert(config.name.clone(), running.clone());
        drop(tenants);
        // Messages for it may be waiting in other tenants' outboxes.
        shared.outboxes.ring();
        Ok(Tenant { running })
    }

    /// A running tenant.
    pub fn tenant(&self, name: &str) -> Option<Tenant> {
        let tenants = self
            .shared
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner());
        tenants.get(name).map(|running| Tenant {
            running: running.clone(),
        })
    }

    /// The names of the running tenants.
    pub fn tenants(&self) -> Vec<String> {
        let tenants = self
            .shared
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner());
        tenants.keys().cloned().collect()
    }

    /// Stop a tenant: its loops finish the events they are on (nothing is committed halfway)
    /// and stop. Its database stays; adding it again resumes where it stopped.
    pub fn remove_tenant(&self, name: &str) -> Result<()> {
        let running = self
            .shared
            .tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| anyhow!("no tenant `{name}` in the host"))?;
        stop(&running);
        Ok(())
    }

    /// Compiled components the host holds: each distinct one once, whatever number of
    /// tenants and connections use it.
    pub fn compiled_processors(&self) -> usize {
        self.shared
            .plugins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.runtime.interrupt_all();
        self.shared.outboxes.ring();
        let tenants = std::mem::take(
            &mut *self
                .shared
                .tenants
                .write()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for running in tenants.values() {
            stop(running);
        }
        if let Some(delivery) = self.delivery.take() {
            let _ = delivery.join();
        }
    }
}

fn stop(running: &Running) {
    running.stop.store(true, Ordering::Relaxed);
    running.wake.ring();
    let threads = std::mem::take(&mut *running.threads.lock().unwrap_or_else(|e| e.into_inner()));
    for thread in threads {
        let _ = thread.join();
    }
    // Nothing of it runs any more: another host may take its database.
    running
        .lock
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
}

/// Whether `config` can join `tenants`: a name and an instance of its own (tenants reach
/// each other by instance).
fn check_free(
    tenants: &BTreeMap<String, Arc<Running>>,
    config: &TenantConfig,
    calls: usize,
    max_calls: Option<usize>,
) -> Result<()> {
    let used: usize = tenants.values().map(|t| t.calls).sum();
    if let Some(max) = max_calls
        && used + calls > max
    {
        // Past the pool, an invocation would fail for want of an instance: a sync error
        // that has nothing to do with the event.
        bail!(
            "tenant `{}`: the host runs {used} of its {max} parallel processor calls, and this tenant needs {calls} more (raise HostConfig::max_parallel_calls)",
            config.name
        );
    }
    if tenants.contains_key(&config.name) {
        bail!("tenant `{}` is already in the host", config.name);
    }
    if let Some(other) = tenants
        .values()
        .find(|t| t.node.instance() == config.instance)
    {
        bail!(
            "tenant `{}`: instance `{}` is tenant `{}`'s already (tenants reach each other by instance)",
            config.name,
            config.instance,
            other.name
        );
    }
    Ok(())
}

/// A tenant's name names its directory: nothing that could climb out of it.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("tenant name `{name}`: use 1 to 64 letters, digits, `-` and `_`");
    }
    Ok(())
}

impl Shared {
    fn check_free(&self, config: &TenantConfig) -> Result<()> {
        check_free(
            &self.tenants.read().unwrap_or_else(|e| e.into_inner()),
            config,
            self.calls_of(config),
            self.max_calls,
        )
    }

    /// Processor calls a tenant may run at once: its workers, and its reconciliation.
    fn calls_of(&self, config: &TenantConfig) -> usize {
        self.workers + usize::from(config.verify_every.is_some())
    }

    /// A connection with its processors, each component compiled once for the whole host.
    fn connection(&self, config: &ConnectionConfig) -> Result<Connection> {
        let load = |processor: &Option<Processor>| -> Result<Option<Arc<Plugin>>> {
            processor.as_ref().map(|p| self.plugin(p)).transpose()
        };
        if let Some(max) = self.runtime.max_memory()
            && config.limits.memory_bytes > max
        {
            bail!(
                "connection `{}`: memory limit {} is above the largest instance memory of the pool ({max} bytes)",
                config.name,
                config.limits.memory_bytes
            );
        }
        Ok(Connection::new(
            &config.name,
            &config.remote_instance,
            config.direction,
            load(&config.incoming)?,
            load(&config.outgoing)?,
            config.limits.clone(),
        )?
        .with_policies(config.policies.clone()))
    }

    fn plugin(&self, processor: &Processor) -> Result<Arc<Plugin>> {
        let (name, wasm): (&str, &[u8]) = match processor {
            Processor::Builtin(name) => (
                name,
                crate::builtin::get(name).ok_or_else(|| {
                    let all: Vec<&str> = crate::builtin::ALL.iter().map(|(n, _)| *n).collect();
                    anyhow!(
                        "no built-in processor `{name}` (there are: {})",
                        all.join(", ")
                    )
                })?,
            ),
            Processor::Wasm { name, bytes } => (name, bytes),
        };
        let sha256 = crate::runtime::sha256_hex(wasm);
        // Held while compiling: two tenants adding the same component compile it once.
        let mut plugins = self.plugins.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plugin) = plugins.get(&sha256) {
            return Ok(plugin.clone());
        }
        let plugin = Arc::new(self.runtime.load(name, wasm)?);
        plugins.insert(sha256, plugin.clone());
        Ok(plugin)
    }

    /// The tenant's threads: its event loop (with its workers) and its reconciliation.
    fn start(
        self: &Arc<Self>,
        running: &Arc<Running>,
        config: &TenantConfig,
    ) -> Result<Vec<JoinHandle<()>>> {
        let mut threads = Vec::new();
        let (node, wake, stop) = (
            running.node.clone(),
            running.wake.clone(),
            running.stop.clone(),
        );
        let (workers, poll) = (self.workers, config.poll_tracker);
        threads.push(self.spawn(running, "event loop", move || {
            crate::service::workers::event_loop_with(node, workers, wake, stop, poll)
        })?);
        if let Some(every) = config.verify_every {
            let (node, wake, stop) = (
                running.node.clone(),
                running.wake.clone(),
                running.stop.clone(),
            );
            threads.push(self.spawn(running, "verify loop", move || {
                crate::service::verify_loop(node, every, wake, stop)
            })?);
        }
        Ok(threads)
    }

    /// Run one of a tenant's loops on a thread of its own. A panic (a bug, in twinsync or
    /// in the embedder's tracker) stops that tenant only, and the embedder is told.
    fn spawn(
        self: &Arc<Self>,
        running: &Running,
        what: &'static str,
        work: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let weak = Arc::downgrade(self);
        let name = running.name.clone();
        let stop = running.stop.clone();
        std::thread::Builder::new()
            .name(format!("twinsync-{name}-{}", what.replace(' ', "-")))
            .spawn(move || {
                let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                else {
                    return;
                };
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                tracing::error!(tenant = name, "the {what} panicked: {reason}");
                // Its other loop stops too: a tenant half running would look alive.
                stop.store(true, Ordering::Relaxed);
                if let Some(shared) = weak.upgrade() {
                    shared.subscribers.send(&HostEvent::TenantStopped {
                        tenant: name,
                        reason: format!("the {what} panicked: {reason}"),
                    });
                }
            })
    }

    /// Move messages between the tenants' outboxes until the host stops.
    fn deliver_loop(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            let seen = self.outboxes.rings();
            let tenants: Vec<Arc<Running>> = {
                let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
                tenants.values().cloned().collect()
            };
            let network = LocalNetwork::new(tenants.iter().map(|t| t.node.clone()).collect());
            match network.deliver() {
                Ok(0) => self.outboxes.wait(seen, IDLE),
                Ok(_) => {
                    for tenant in &tenants {
                        tenant.wake.ring();
                    }
                }
                Err(error) => {
                    tracing::error!("cannot deliver messages between tenants: {error:#}");
                    self.outboxes.wait(seen, IDLE);
                }
            }
        }
    }
}

/// How long the delivery loop sleeps when nothing rang.
const IDLE: Duration = Duration::from_millis(100);
