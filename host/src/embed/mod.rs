//! The embedding API: a [`Host`] runs tenants in the embedder's process. A tenant is a node
//! (its own tracker, database and connections); all tenants share one WebAssembly engine,
//! one compile cache and one copy of each compiled processor. Tenants reach each other by
//! instance name, in process.
//!
//! Tenants share the host's threads: one event loop and a fixed pool of workers for all
//! of them, with fair share between tenants and per-tenant quotas (see `schedule`), one
//! thread that delivers messages between tenants (`delivery`) and one that reconciles
//! them in turn (`verify`). An idle tenant has no thread, and its database is closed until
//! it is needed.

mod delivery;
mod events;
mod roster;
mod schedule;
mod tenant;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow, bail};

pub use events::{EventKind, HostEvent, SUBSCRIBER_BACKLOG};
pub use schedule::{Quota, QuotaLimit};
pub use tenant::{
    ConnectionConfig, MAX_PUSHED_KEYS, Processor, Pushed, QueueInfo, SyncErrorInfo, Tenant,
    TenantConfig, TwinInfo,
};

use crate::clock::SystemClock;
use crate::runtime::{Plugin, PoolConfig, Runtime, RuntimeConfig};
use crate::service::DataDirLock;
use crate::store::{NodeStore, PgTarget};
use crate::sync::{Connection, Node, Workers};
use events::Subscribers;
use schedule::Work;
use tenant::{Bell, Rung, Running};

/// How a [`Host`] is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The compile cache (`cache/`), the key of processors' random bytes (`random.key`) and
    /// the tenants' databases (`tenants/NAME/`) live here.
    pub data_dir: PathBuf,
    /// Worker threads running processors, for all tenants together. Default: the number
    /// of cores.
    pub workers: usize,
    /// Events of one tenant processed at once, at most (of different twins): a tenant with
    /// a backlog, or whose processor always runs to its time limit, holds no more workers
    /// than this, and the others' events go on with the rest.
    pub workers_per_tenant: usize,
    /// Processor calls that can run at once in the whole host: instances are reserved up
    /// front for this many. At least `workers + 1` (the workers and reconciliation).
    pub max_parallel_calls: usize,
    /// Keep each tenant's state in schema `tenant_NAME` of this PostgreSQL database (see
    /// [`crate::store::tenant_schema`]) instead of `tenants/NAME/twinsync.db`: several
    /// hosts on one database may then run the same tenants, each tenant's events claimed
    /// and its sending and polling elected as a node's are. Default: none.
    pub postgres: Option<PgTarget>,
}

impl HostConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        HostConfig {
            data_dir: data_dir.into(),
            workers: crate::runtime::available_cores(),
            workers_per_tenant: 1,
            max_parallel_calls: 0,
            postgres: None,
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
    threads: Vec<JoinHandle<()>>,
}

/// A component's bytes and their SHA-256.
type Known = (Arc<[u8]>, String);

/// One of the host's loops.
type Loop = fn(&Shared);

/// What the host's threads share.
struct Shared {
    data_dir: PathBuf,
    /// Where the tenants' states are, if not in their directories.
    postgres: Option<PgTarget>,
    runtime: Arc<Runtime>,
    workers: Arc<Workers>,
    /// Events of one tenant that may run at once (`HostConfig::workers_per_tenant`).
    per_tenant: usize,
    /// Each distinct component compiled once, by SHA-256.
    plugins: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Each distinct component's bytes and SHA-256, by length: comparing bytes is far
    /// cheaper than hashing them, and 10,000 tenants add the same vendor component.
    hashes: Mutex<HashMap<usize, Vec<Known>>>,
    tenants: RwLock<BTreeMap<String, Arc<Running>>>,
    /// Which tenant each instance is (changed with `tenants`, under its write lock): a
    /// check per tenant added, not a search of 10,000.
    instances: Mutex<HashMap<String, String>>,
    /// Bumped whenever a tenant comes or goes: the loops then read the tenants again.
    generation: AtomicU64,
    subscribers: Subscribers,
    /// The tenants that may have events to process; its bell also rings when a worker
    /// finished an event.
    event_rung: Arc<Rung>,
    /// The tenants whose outbox may have new messages.
    delivery_rung: Arc<Rung>,
    stop: AtomicBool,
}

impl Host {
    /// Start a host with no tenant.
    pub fn start(config: HostConfig) -> Result<Host> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let workers = config.workers.max(1);
        // The workers, and reconciliation.
        let calls = config.max_parallel_calls.max(workers + 1);
        let runtime = Arc::new(Runtime::new(&RuntimeConfig {
            pool: Some(PoolConfig::for_workers(calls)),
            cache_dir: Some(dir.join("cache")),
            random_key: Some(crate::setup::random_key(&dir.join("random.key"))?),
            ..RuntimeConfig::default()
        })?);
        let event_rung = Arc::new(Rung::default());
        let shared = Arc::new(Shared {
            data_dir: dir.clone(),
            postgres: config.postgres.clone(),
            runtime,
            workers: Workers::start(
                workers,
                Some(config.workers_per_tenant.max(1)),
                Some(event_rung.bell.clone()),
            )?,
            per_tenant: config.workers_per_tenant.max(1),
            plugins: Mutex::default(),
            hashes: Mutex::default(),
            tenants: RwLock::default(),
            instances: Mutex::default(),
            generation: AtomicU64::new(0),
            subscribers: Subscribers::default(),
            event_rung,
            delivery_rung: Arc::default(),
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        let loops: [(&str, Loop); 3] = [
            ("events", Shared::event_loop),
            ("delivery", Shared::deliver_loop),
            ("verify", Shared::verify_loop),
        ];
        for (what, run) in loops {
            let own = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("twinsync-host-{what}"))
                .spawn(move || run(&own));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    // The threads started stop with the host.
                    drop(Host { shared, threads });
                    return Err(error.into());
                }
            }
        }
        Ok(Host { shared, threads })
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
        let database = dir.join("twinsync.db");
        // An existing database is opened when first needed; a new one now, so that a
        // directory it cannot be made in is refused here.
        let store = Arc::new(match &shared.postgres {
            Some(target) => {
                let schema = crate::store::tenant_schema(&config.name);
                let store = NodeStore::connect_in_schema(target, Some(&schema))
                    .with_context(|| format!("tenant `{}`", config.name))?;
                // Set up: its connection closed until its first look, like the others.
                store.release();
                store
            }
            None if database.exists() => NodeStore::open_lazily(&database),
            None => {
                let store = NodeStore::open(&database)?;
                // Made: closed until its first look, like the others.
                store.release();
                store
            }
        });
        let node = Arc::new(Node::new(
            &config.instance,
            config.tracker.clone(),
            store,
            shared.runtime.clone(),
            connections,
            Arc::new(SystemClock),
        )?);
        let wake = Arc::new(Bell::new(
            &config.name,
            shared.event_rung.clone(),
            shared.delivery_rung.clone(),
        ));
        let weak = Arc::downgrade(&self.shared);
        let (name, bell) = (config.name.clone(), wake.clone());
        node.observe(Box::new(move |event, outcome| {
            if let Some(shared) = Weak::upgrade(&weak) {
                if outcome.is_ok() {
                    bell.outbox_changed();
                }
                shared
                    .subscribers
                    .send(&HostEvent::of(&name, event, outcome));
            }
        }));
        let work = Work::new(
            node.clone(),
            shared.workers.clone(),
            &config,
            database,
            shared.per_tenant,
        );
        let running = Arc::new(Running {
            name: config.name.clone(),
            node,
            wake,
            stop: Arc::default(),
            work: Mutex::new(Some(work)),
            verifying: Mutex::default(),
            verify_every: config.verify_every,
            waiting: Mutex::default(),
            lock: Mutex::new(Some(lock)),
        });
        // Opening took the time: the map is locked for the last checks and the insert
        // only, so that the other tenants' messages keep moving meanwhile.
        let mut tenants = shared.tenants.write().unwrap_or_else(|e| e.into_inner());
        let mut instances = shared.instances.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(error) = check_free(&tenants, &instances, &config) {
            drop((tenants, instances));
            stop(&running);
            return Err(error);
        }
        instances.insert(config.instance.clone(), config.name.clone());
        drop(instances);
        tenants.insert(config.name.clone(), running.clone());
        shared.generation.fetch_add(1, Ordering::AcqRel);
        drop(tenants);
        running.wake.ring();
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
        let mut tenants = self
            .shared
            .tenants
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let running = tenants
            .remove(name)
            .ok_or_else(|| anyhow!("no tenant `{name}` in the host"))?;
        self.shared
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(running.node.instance());
        drop(tenants);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
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
        // No event starts any more; the running ones are interrupted.
        self.shared.workers.close();
        self.shared.runtime.interrupt_all();
        self.shared.event_rung.bell.ring();
        self.shared.delivery_rung.bell.ring();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
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
    }
}

/// Stop a tenant: what the workers run of it finishes (nothing is committed halfway), the
/// rest of its queue stays in its database.
fn stop(running: &Running) {
    running.stop.store(true, Ordering::Relaxed);
    running
        .work
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    drop(running.verifying.lock().unwrap_or_else(|e| e.into_inner()));
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
    instances: &HashMap<String, String>,
    config: &TenantConfig,
) -> Result<()> {
    if tenants.contains_key(&config.name) {
        bail!("tenant `{}` is already in the host", config.name);
    }
    if let Some(other) = instances.get(&config.instance) {
        bail!(
            "tenant `{}`: instance `{}` is tenant `{other}`'s already (tenants reach each other by instance)",
            config.name,
            config.instance,
        );
    }
    Ok(())
}

/// A tenant's name names its directory: nothing that could climb out of it. (Also what
/// `serve`'s tenant specs are checked with.)
pub(crate) fn check_name(name: &str) -> Result<()> {
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
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        let instances = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        check_free(&tenants, &instances, config)
    }

    /// The tenants, for a loop to go through.
    fn running(&self) -> Vec<Arc<Running>> {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        tenants.values().cloned().collect()
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
        let sha256 = match processor {
            Processor::Builtin(name) => format!("builtin:{name}"),
            Processor::Wasm { bytes, .. } => self.sha256(bytes),
        };
        // Held while compiling: two tenants adding the same component compile it once.
        let mut plugins = self.plugins.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plugin) = plugins.get(&sha256) {
            return Ok(plugin.clone());
        }
        let plugin = Arc::new(self.runtime.load(name, wasm)?);
        plugins.insert(sha256, plugin.clone());
        Ok(plugin)
    }

    /// The SHA-256 of a component's bytes, computed once per distinct component.
    fn sha256(&self, bytes: &Arc<[u8]>) -> String {
        let mut hashes = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        let same = hashes.entry(bytes.len()).or_default();
        if let Some((_, sha256)) = same
            .iter()
            .find(|(known, _)| Arc::ptr_eq(known, bytes) || known[..] == bytes[..])
        {
            return sha256.clone();
        }
        let sha256 = crate::runtime::sha256_hex(bytes);
        same.push((bytes.clone(), sha256.clone()));
        sha256
    }
}
