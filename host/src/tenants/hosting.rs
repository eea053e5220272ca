//! Applies the registry to the running host: a tenant added is started, one whose spec
//! changed (a higher revision) is restarted, one removed is stopped (its directory stays).
//! `serve` reconciles every second, and at once after an admin change, so that the CLI
//! writing the registry while `serve` runs works too. Also finds the tenant a token belongs
//! to, and a tenant's receiver for `/t/{tenant}/v1/messages`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::registry::{Entry, Registry};
use super::spec::TenantSpec;
use super::token;
use crate::clock::Clock;
use crate::config::Secret;
use crate::embed::{ConnectionConfig, Host, HostConfig, Processor, Tenant, TenantConfig};
use crate::service::{Peers, Wake};
use crate::sync::{Flow, Node};
use crate::transport::client::Sender;
use crate::transport::server::Receiver;

/// The tenants of a `serve` process.
pub struct Tenants {
    /// Where the host keeps its compile cache and the tenants' directories, and its sizes.
    config: HostConfig,
    data_dir: PathBuf,
    registry: Registry,
    /// Serve's own node: tenants may not take its instance, and its plugin store holds the
    /// packages tenants name (`plugin:NAME@VERSION`).
    node: Arc<Node>,
    clock: Arc<dyn Clock>,
    /// Started with the first tenant: a serve without tenants pays nothing for it.
    host: OnceLock<Host>,
    hosted: RwLock<BTreeMap<String, Hosted>>,
    /// One reconciliation at a time (the timer's and an admin request's).
    reconciling: Mutex<()>,
    /// How long a tenant that is not running waits before it is tried again (its cause
    /// may pass: a plugin file put back, a file in the way of its directory removed).
    retry_after: Duration,
    /// The registry's pokes as last read (see `Registry::poke`).
    pokes: Mutex<HashMap<String, i64>>,
}

/// A registered tenant as this process runs it.
struct Hosted {
    revision: i64,
    token_sha256: String,
    /// Why it does not run, if it does not (shown by `GET /v1/tenants`, and to its token).
    state: Result<Live, String>,
    /// When it was started, or tried, or stopped by a failure: on this process's clock,
    /// and as wall-clock milliseconds (shown).
    tried: Instant,
    tried_ms: i64,
}

/// How a registered tenant is doing, as `GET /v1/tenants` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantState {
    /// `running`, `failed` (it could not start, or stopped on a failure), or `starting`
    /// (registered, not applied yet).
    pub state: &'static str,
    /// Why it does not run.
    pub reason: Option<String>,
    /// When a failed tenant is tried again (Unix milliseconds; at the first reconciliation
    /// from then on, once a second).
    pub next_try_ms: Option<i64>,
}

/// A running tenant and what serve adds to it.
#[derive(Clone)]
pub struct Live {
    pub tenant: Tenant,
    pub receiver: Arc<Receiver>,
    /// What its senders last saw of the other nodes.
    pub peers: Arc<Peers>,
    /// Its tracker's change notifications (`/t/NAME/v1/changes`), if its spec has a
    /// webhook secret.
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
    senders: Arc<Senders>,
}

impl Live {
    /// Wake its event loop and its senders: an admin request changed something (a retry
    /// of a message the other node refused, say, which no commit will ring for).
    pub fn wake(&self) {
        self.tenant.wake();
        self.senders.wake.ring();
    }
}

/// The HTTP senders of a tenant's connections that have a `remote-url`.
#[derive(Default)]
struct Senders {
    stop: Arc<AtomicBool>,
    wake: Arc<Wake>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Why a sender ended while the tenant runs (it panicked, or returned): the next
    /// reconciliation stops the tenant with this reason, and it is tried again later like
    /// a tenant that could not start. Restarting the sender in place could repeat the same
    /// panic for ever; a tenant that quietly sends nothing would be worse.
    failure: Arc<Mutex<Option<String>>>,
}

impl Senders {
    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.ring();
        for thread in std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = thread.join();
        }
    }
}

/// Whom a tenant token belongs to.
pub enum TokenOwner {
    Running(String, Live),
    /// Registered, but not running (the reason).
    Stopped(String, String),
}

impl Tenants {
    /// `retry_after`: how long a tenant that is not running waits before it is tried again.
    pub fn open(
        config: HostConfig,
        node: Arc<Node>,
        clock: Arc<dyn Clock>,
        retry_after: Duration,
    ) -> Result<Self> {
        let data_dir = config.data_dir.clone();
        let registry = Registry::of(&data_dir, config.postgres.as_ref())?;
        Ok(Tenants {
            config,
            data_dir,
            registry,
            node,
            clock,
            host: OnceLock::new(),
            hosted: RwLock::default(),
            reconciling: Mutex::default(),
            retry_after,
            pokes: Mutex::default(),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The tenant whose token hashes to `token`'s hash. Every tenant's hash is compared, in
    /// constant time each: the time taken says nothing about which one nearly matched.
    pub fn owner_of(&self, presented: &str) -> Option<TokenOwner> {
        let presented = token::hash(presented);
        let hosted = self.hosted.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for (name, h) in hosted.iter() {
            if token::same_hash(&h.token_sha256, &presented) && found.is_none() {
                found = Some(match &h.state {
                    Ok(live) => TokenOwner::Running(name.clone(), live.clone()),
                    Err(why) => TokenOwner::Stopped(name.clone(), why.clone()),
                });
            }
        }
        found
    }

    /// A running tenant.
    pub fn live(&self, name: &str) -> Option<Live> {
        let hosted = self.hosted.read().unwrap_or_else(|e| e.into_inner());
        hosted
            .get(name)
            .and_then(|h| h.state.as_ref().ok().cloned())
    }

    /// Whether a tenant runs, or why not (`None`: not applied yet).
    pub fn status(&self, name: &str) -> Option<Result<(), String>> {
        let hosted = self.hosted.read().unwrap_or_else(|e| e.into_inner());
        hosted
            .get(name)
            .map(|h| h.state.as_ref().map(|_| ()).map_err(Clone::clone))
    }

    /// How a registered tenant is doing.
    pub fn state(&self, name: &str) -> TenantState {
        let hosted = self.hosted.read().unwrap_or_else(|e| e.into_inner());
        match hosted.get(name) {
            None => TenantState {
                state: "starting",
                reason: None,
                next_try_ms: None,
            },
            Some(Hosted { state: Ok(_), .. }) => TenantState {
                state: "running",
                reason: None,
                next_try_ms: None,
            },
            Some(
                h @ Hosted {
                    state: Err(why), ..
                },
            ) => TenantState {
                state: "failed",
                reason: Some(why.clone()),
                next_try_ms: Some(
                    h.tried_ms
                        .saturating_add(self.retry_after.as_millis() as i64),
                ),
            },
        }
    }

    fn now_ms(&self) -> i64 {
        crate::clock::millis(self.clock.now())
    }

    /// Everything about a spec that can be checked before it is stored: its fields, and
    /// that the plugins it names are in the plugin store.
    pub fn check(&self, spec: &TenantSpec) -> Result<()> {
        super::processors::check(
            spec,
            self.node.instance(),
            self.node.store(),
            &self.data_dir,
        )
    }

    /// Bring the running tenants in line with the registry.
    /// Wake the tenants whose database a command wrote since the last look: the host
    /// looks only at tenants given work, and a write from outside gives it none.
    fn answer_pokes(&self) -> Result<()> {
        let mut seen = self.pokes.lock().unwrap_or_else(|e| e.into_inner());
        for (tenant, count) in self.registry.pokes()? {
            if seen.insert(tenant.clone(), count) != Some(count)
                && let Some(live) = self.live(&tenant)
            {
                live.wake();
            }
        }
        Ok(())
    }

    pub fn reconcile(&self) -> Result<()> {
        let _one = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
        let entries: BTreeMap<String, Entry> = self
            .registry
            .list()?
            .into_iter()
            .map(|e| (e.spec.name.clone(), e))
            .collect();
        self.stop_failed_senders();
        self.answer_pokes()?;
        // Stopped first: a tenant whose instance moved to another one frees it.
        let gone: Vec<String> = {
            let hosted = self.hosted.read().unwrap_or_else(|e| e.into_inner());
            hosted
                .iter()
                .filter(|(name, h)| entries.get(*name).is_none_or(|e| e.revision != h.revision))
                .map(|(name, _)| name.clone())
                .collect()
        };
        for name in gone {
            let removed = self
                .hosted
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            if let Some(Hosted {
                state: Ok(live), ..
            }) = removed
            {
                live.senders.stop();
                if let Some(host) = self.host.get()
                    && let Err(error) = host.remove_tenant(&name)
                {
                    tracing::warn!(tenant = name, "cannot stop the tenant: {error:#}");
                }
                tracing::info!(tenant = name, "stopped the tenant");
            }
        }
        for (name, entry) in &entries {
            let known = {
                let mut hosted = self.hosted.write().unwrap_or_else(|e| e.into_inner());
                match hosted.get_mut(name) {
                    Some(h) if h.state.is_err() && h.tried.elapsed() >= self.retry_after => {
                        hosted.remove(name);
                        false
                    }
                    Some(h) => {
                        // A new token takes effect without a restart.
                        h.token_sha256.clone_from(&entry.token_sha256);
                        true
                    }
                    None => false,
                }
            };
            if known {
                continue;
            }
            let state = self.start(&entry.spec).map_err(|error| {
                tracing::error!(tenant = name, "cannot start the tenant: {error:#}");
                format!("{error:#}")
            });
            if state.is_ok() {
                tracing::info!(
                    tenant = name,
                    instance = entry.spec.instance,
                    "started the tenant"
                );
            }
            self.hosted
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    name.clone(),
                    Hosted {
                        revision: entry.revision,
                        token_sha256: entry.token_sha256.clone(),
                        state,
                        tried: Instant::now(),
                        tried_ms: self.now_ms(),
                    },
                );
        }
        Ok(())
    }

    /// Stop each running tenant one of whose senders ended (see `Senders::failure`): it is
    /// shown as not running, with the reason, and tried again like one that could not start.
    fn stop_failed_senders(&self) {
        let failed: Vec<(String, Live, String)> = {
            let hosted = self.hosted.read().unwrap_or_else(|e| e.into_inner());
            hosted
                .iter()
                .filter_map(|(name, h)| {
                    let live = h.state.as_ref().ok()?;
                    Some((name.clone(), live.clone(), live.senders.failure()?))
                })
                .collect()
        };
        for (name, live, why) in failed {
            live.senders.stop();
            if let Some(host) = self.host.get()
                && let Err(error) = host.remove_tenant(&name)
            {
                tracing::warn!(tenant = name, "cannot stop the tenant: {error:#}");
            }
            tracing::error!(tenant = name, "stopped the tenant: {why}");
            let mut hosted = self.hosted.write().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = hosted.get_mut(&name) {
                h.state = Err(format!("stopped: {why}"));
                h.tried = Instant::now();
                h.tried_ms = self.now_ms();
            }
        }
    }

    fn host(&self) -> Result<&Host> {
        if let Some(host) = self.host.get() {
            return Ok(host);
        }
        let host = Host::start(self.config.clone())?;
        Ok(self.host.get_or_init(|| host))
    }

    /// Start one tenant: its node in the host, and a sender per connection with a URL.
    fn start(&self, spec: &TenantSpec) -> Result<Live> {
        spec.check(self.node.instance())?;
        let dir = self.data_dir.join("tenants").join(&spec.name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let tracker = super::trackers::open(&spec.tracker, &dir, self.clock.clone())?;
        let mut config = TenantConfig::new(&spec.name, &spec.instance, tracker);
        if let Some(quota) = &spec.quota {
            config = config.quota(quota.quota());
        }
        for c in &spec.connections {
            let mut connection = ConnectionConfig::new(&c.name, &c.remote_instance)
                .direction(c.direction)
                .limits(c.limits.clone())
                .policies(c.conflicts.clone());
            if let Some(p) = &c.incoming {
                connection = connection.incoming(self.processor(p)?);
            }
            if let Some(p) = &c.outgoing {
                connection = connection.outgoing(self.processor(p)?);
            }
            config = config.connection(connection);
        }
        let tenant = self.host()?.add_tenant(config)?;
        let senders = Arc::new(Senders::default());
        let live = self.wire(spec, tenant.clone(), senders.clone());
        if live.is_err() {
            senders.stop();
            let _ = self.host()?.remove_tenant(&spec.name);
        }
        live
    }

    /// The receiver and the senders of a started tenant.
    fn wire(&self, spec: &TenantSpec, tenant: Tenant, senders: Arc<Senders>) -> Result<Live> {
        let node = tenant.node().clone();
        let mut secrets = HashMap::new();
        // The link state of its senders: its own, its connection names are not serve's.
        let peers = Arc::new(Peers::default());
        for c in &spec.connections {
            let Some(secret) = c.secret.as_deref().map(Secret::new) else {
                continue;
            };
            if c.direction != Flow::SendOnly {
                secrets.insert(c.name.clone(), secret.clone());
            }
            let Some(url) = &c.remote_url else { continue };
            if c.direction == Flow::ReceiveOnly {
                continue;
            }
            let sender = Sender::new(&c.name, url, secret, None)?;
            let (node, name, clock, wake, stop, peers, failure) = (
                node.clone(),
                c.name.clone(),
                self.clock.clone(),
                senders.wake.clone(),
                senders.stop.clone(),
                peers.clone(),
                senders.failure.clone(),
            );
            let tenant_name = spec.name.clone();
            let thread = std::thread::Builder::new()
                .name(format!("twinsync-{}-sender", spec.name))
                .spawn(move || {
                    let connection = name.clone();
                    let stopped = stop.clone();
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // A fault the supervision test (`tests/tenants_serve.rs`) injects;
                        // debug builds only.
                        #[cfg(debug_assertions)]
                        if std::env::var_os("TWINSYNC_TEST_PANIC_TENANT_SENDER")
                            .is_some_and(|t| *t == *tenant_name)
                        {
                            panic!("injected by TWINSYNC_TEST_PANIC_TENANT_SENDER");
                        }
                        crate::service::workers::sender_loop(
                            node, name, sender, clock, wake, stop, peers,
                        )
                    }));
                    let why = match outcome {
                        Err(panic) => format!(
                            "the sender of connection `{connection}` panicked: {}",
                            crate::service::supervise::panic_message(&*panic)
                        ),
                        Ok(()) if !stopped.load(Ordering::Relaxed) => {
                            format!("the sender of connection `{connection}` stopped by itself")
                        }
                        Ok(()) => return,
                    };
                    tracing::error!(
                        tenant = tenant_name,
                        "{why}; the tenant stops, and is tried again later"
                    );
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(why);
                })?;
            senders
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(thread);
        }
        // The senders sleep until the tenant commits events (which queue their messages);
        // a message received or a change notified is work for its event loop only.
        tenant.ring_on_commit(senders.wake.clone());
        let webhooks = spec.webhook_secret.as_deref().map(|secret| {
            let tenant = tenant.clone();
            Arc::new(crate::webhooks::Webhooks::new(
                node.clone(),
                Secret::new(secret),
                self.clock.clone(),
                Box::new(move || tenant.wake()),
            ))
        });
        let on_accept = tenant.clone();
        let receiver = Arc::new(Receiver {
            node,
            secrets,
            clock: self.clock.clone(),
            on_accept: Box::new(move || on_accept.wake()),
        });
        Ok(Live {
            tenant,
            receiver,
            peers,
            webhooks,
            senders,
        })
    }

    fn processor(&self, spec: &str) -> Result<Processor> {
        super::processors::resolve(spec, self.node.store(), &self.data_dir)
    }

    /// Stop every tenant's senders (serve is stopping; the host stops the tenants).
    pub fn stop(&self) {
        let hosted = std::mem::take(&mut *self.hosted.write().unwrap_or_else(|e| e.into_inner()));
        for h in hosted.values() {
            if let Ok(live) = &h.state {
                live.senders.stop();
            }
        }
    }
}
