//! Wiring nodes: from a configuration file (`twinsync serve` and the operator commands), or
//! on the reference tracker in a directory (the demo, the tests, the benchmarks).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::clock::{Clock, SystemClock};
use crate::config::{NodeConfig, TrackerConfig};
use crate::plugins::Library;
use crate::runtime::{Plugin, PoolConfig, Runtime, RuntimeConfig};
use crate::store::{NodeStore, PgTarget};
use crate::sync::{Connection, Node};
use crate::tracker::{PostgresTracker, RedmineTracker, ReferenceTracker, Tracker};

/// A node and its reference tracker, both in SQLite files under one directory.
pub struct ReferenceNode {
    pub node: Arc<Node>,
    pub tracker: Arc<ReferenceTracker>,
}

/// Open (or create) `dir/tracker.db` and `dir/twinsync.db` and build a node on them. New
/// issues get keys `PROJECT-n`.
pub fn reference_node(
    dir: &Path,
    instance: &str,
    project: &str,
    runtime: Arc<Runtime>,
    connections: Vec<Connection>,
    clock: Arc<dyn Clock>,
) -> Result<ReferenceNode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = Arc::new(NodeStore::open(&dir.join("twinsync.db"))?);
    reference_node_on(store, dir, instance, project, runtime, connections, clock)
}

/// [`reference_node`], with the node's state in `store` (PostgreSQL, say) instead of
/// `dir/twinsync.db`.
pub fn reference_node_on(
    store: Arc<NodeStore>,
    dir: &Path,
    instance: &str,
    project: &str,
    runtime: Arc<Runtime>,
    connections: Vec<Connection>,
    clock: Arc<dyn Clock>,
) -> Result<ReferenceNode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tracker = Arc::new(ReferenceTracker::open(
        &dir.join("tracker.db"),
        project,
        clock.clone(),
    )?);
    let node = Node::new(
        instance,
        tracker.clone(),
        store,
        runtime,
        connections,
        clock,
    )?;
    Ok(ReferenceNode {
        node: Arc::new(node),
        tracker,
    })
}

/// A node built from its configuration file, with what it runs on.
pub struct ConfiguredNode {
    pub node: Arc<Node>,
    pub tracker: Arc<dyn Tracker>,
    pub runtime: Arc<Runtime>,
    pub clock: Arc<dyn Clock>,
}

/// The node's database alone, for operator commands that need no processor.
pub fn open_store(config: &NodeConfig) -> Result<Arc<NodeStore>> {
    let dir = config.data_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = match postgres(config)? {
        None => NodeStore::open(&dir.join("twinsync.db"))?,
        Some(target) => NodeStore::connect_in_schema(&target, None)
            .context("cannot use the node's store in PostgreSQL ([store] url)")?,
    };
    Ok(Arc::new(store))
}

/// The PostgreSQL database of `[store] url`, if the configuration names one: the node's
/// state, and its tenants' (registry and states), are there.
pub fn postgres(config: &NodeConfig) -> Result<Option<PgTarget>> {
    let Some(url) = &config.store.url else {
        return Ok(None);
    };
    Ok(Some(PgTarget {
        url: url.clone(),
        password: config.store_password()?,
        ca_file: config.store.ca_file.as_ref().map(|f| config.resolve(f)),
    }))
}

/// Everything the configuration describes: runtime (with the compile cache under the data
/// directory), processors, tracker, store and node.
pub fn open_node(config: &NodeConfig) -> Result<ConfiguredNode> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = config.data_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = open_store(config)?;
    // Processes sharing a store share the key too: an event one starts and another takes
    // over draws the same random bytes in both.
    let key = if store.is_shared() {
        shared_random_key(&store)?
    } else {
        random_key(&dir.join("random.key"))?
    };
    let runtime = Arc::new(Runtime::new(&RuntimeConfig {
        pool: Some(PoolConfig::for_workers(config.workers())),
        cache_dir: Some(dir.join("cache")),
        random_key: Some(key),
        ..RuntimeConfig::default()
    })?);
    let tracker: Arc<dyn Tracker> = match &config.tracker {
        TrackerConfig::Reference {
            project,
            postgres_url: None,
            ..
        } => Arc::new(ReferenceTracker::open(
            &dir.join("tracker.db"),
            project,
            clock.clone(),
        )?),
        TrackerConfig::Reference {
            project,
            postgres_url: Some(url),
            postgres_password_file,
        } => {
            let password = postgres_password_file
                .as_ref()
                .map(|file| crate::config::Secret::from_file(&config.resolve(file)))
                .transpose()?;
            Arc::new(
                PostgresTracker::open(url, password.as_ref(), project, clock.clone())
                    .context("cannot use the reference tracker in PostgreSQL")?,
            )
        }
        // Connects and checks URL, key, project and fields now: a wrong setting stops
        // `twinsync serve` at once instead of failing every event.
        TrackerConfig::Redmine(redmine) => Arc::new(
            RedmineTracker::connect(&redmine.settings(|p| config.resolve(p))?)
                .context("cannot use the Redmine tracker of the configuration")?,
        ),
    };
    let base = config.path.parent().unwrap_or(Path::new("."));
    let mut connections = Vec::new();
    for c in &config.connections {
        let name = c.name.get_ref();
        let load = |spec: &Option<String>| -> Result<Option<Arc<Plugin>>> {
            spec.as_deref()
                .map(|spec| load_processor(&runtime, spec, base))
                .transpose()
                .with_context(|| format!("connection `{name}`"))
        };
        if let Some(max) = runtime.max_memory()
            && c.limits.memory_bytes > max
        {
            anyhow::bail!(
                "connection `{name}`: memory limit {} is above the largest instance memory of the pool ({max} bytes)",
                c.limits.memory_bytes
            );
        }
        connections.push(
            Connection::new(
                name,
                &c.remote_instance,
                c.direction,
                load(&c.incoming)?,
                load(&c.outgoing)?,
                c.limits.clone(),
            )?
            .with_policies(c.conflicts.clone()),
        );
    }
    let node = Node::new(
        config.instance.get_ref(),
        tracker.clone(),
        store,
        runtime.clone(),
        connections,
        clock.clone(),
    )?
    .keeping_events_for(config.keep_events());
    // The plugin store overrides the processors named above where it names a package.
    // Not applied yet (see `use_plugin_store`): commands that manage the store must work
    // even when a package in it cannot be loaded.
    node.attach_plugins(Arc::new(Library::new(dir.join("plugins"), runtime.clone())))?;
    Ok(ConfiguredNode {
        node: Arc::new(node),
        tracker,
        runtime,
        clock,
    })
}

/// Switch the node's connections to the packages its plugin store names: before running
/// processors (serving, replaying, trying). A package that cannot be loaded stops it.
pub fn use_plugin_store(node: &Node) -> Result<()> {
    node.refresh_plugins().map(|_| ()).context(
        "cannot use the plugin store's packages (see `twinsync plugin list` and `plugin history`)",
    )
}

/// A processor given as the name of a built-in one (`mirror`, `remote-key`,
/// `status-guard`) or as the path of a `.wasm` file (relative to `base`).
pub fn load_processor(runtime: &Runtime, spec: &str, base: &Path) -> Result<Arc<Plugin>> {
    let plugin = match crate::builtin::get(spec) {
        Some(wasm) => runtime.load(spec, wasm)?,
        None => {
            let path = base.join(spec);
            let wasm = std::fs::read(&path).with_context(|| {
                let builtins: Vec<&str> =
                    crate::builtin::ALL.iter().map(|(name, _)| *name).collect();
                format!(
                    "cannot read processor {} (give a .wasm file or a built-in processor: {})",
                    path.display(),
                    builtins.join(", ")
                )
            })?;
            runtime.load(spec, &wasm)?
        }
    };
    Ok(Arc::new(plugin))
}

/// [`random_key`], kept in a store several processes share: made by the first of them.
pub fn shared_random_key(store: &NodeStore) -> Result<[u8; 32]> {
    const NAME: &str = "random.key";
    store.write(|tx| {
        if let Some(text) = crate::store::get_meta(tx, NAME)? {
            return crate::hex::decode(&text)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| anyhow::anyhow!("the store's `{NAME}` is not a 32-byte key"));
        }
        let key: [u8; 32] = rand::random();
        crate::store::set_meta(tx, NAME, &crate::hex::encode(&key))?;
        Ok(key)
    })
}

/// The node's key for the random bytes processors get (see `RuntimeConfig::random_key`):
/// made once, kept in the data directory (readable by the owner only), so that a replay
/// after a restart gets the same bytes.
pub(crate) fn random_key(path: &Path) -> Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path) {
        return bytes.try_into().map_err(|bytes: Vec<u8>| {
            anyhow::anyhow!(
                "{} holds {} bytes, not the 32 of a key: delete it to make a new one",
                path.display(),
                bytes.len()
            )
        });
    }
    let key: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, &key)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}
