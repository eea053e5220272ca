//! A tenant's node outside the host, for the CLI's `--tenant NAME`: its database and
//! tracker in `DATA_DIR/tenants/NAME/` (its state in schema `tenant_NAME` of the
//! PostgreSQL database instead, with `[store] url`), its connections and processors from
//! the registry.
//! Like the operator commands on serve's own node, it works whether `serve` runs or not.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};

use super::registry::Registry;
use crate::clock::{Clock, SystemClock};
use crate::config::NodeConfig;
use crate::runtime::{PoolConfig, Runtime, RuntimeConfig};
use crate::setup::ConfiguredNode;
use crate::store::NodeStore;
use crate::sync::{Connection, Node};

/// The directory of a registered tenant, or an error naming the registry.
fn tenant_dir(config: &NodeConfig, name: &str) -> Result<(std::path::PathBuf, super::TenantSpec)> {
    let data_dir = config.data_dir();
    let registry = Registry::of_node(config)?;
    let entry = registry.get(name)?.ok_or_else(|| {
        anyhow!(
            "no tenant `{name}` in {} (see `twinsync tenants list`)",
            registry.place(&data_dir)
        )
    })?;
    Ok((data_dir.join("tenants").join(name), entry.spec))
}

/// A registered tenant's database alone.
pub fn open_store(config: &NodeConfig, name: &str) -> Result<Arc<NodeStore>> {
    let (dir, _) = tenant_dir(config, name)?;
    if let Some(target) = crate::setup::postgres(config)? {
        let schema = crate::store::tenant_schema(name);
        return Ok(Arc::new(
            NodeStore::connect_in_schema(&target, Some(&schema))
                .with_context(|| format!("tenant `{name}`"))?,
        ));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(Arc::new(NodeStore::open(&dir.join("twinsync.db"))?))
}

/// A registered tenant's node, with its tracker and processors.
pub fn open_node(config: &NodeConfig, name: &str) -> Result<ConfiguredNode> {
    let (dir, spec) = tenant_dir(config, name)?;
    let store = open_store(config, name)?;
    let data_dir = config.data_dir();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let runtime = Arc::new(Runtime::new(&RuntimeConfig {
        pool: Some(PoolConfig::for_workers(1)),
        cache_dir: Some(data_dir.join("cache")),
        random_key: Some(crate::setup::random_key(&data_dir.join("random.key"))?),
        ..RuntimeConfig::default()
    })?);
    let tracker = super::trackers::open(&spec.tracker, &dir, clock.clone())?;
    // Plugins named by the spec come from serve's own plugin store.
    let host_store = crate::setup::open_store(config)?;
    let mut connections = Vec::new();
    for c in &spec.connections {
        let load = |p: &Option<String>| -> Result<Option<Arc<crate::runtime::Plugin>>> {
            let named = p.as_deref().unwrap_or("mirror");
            let processor = super::processors::resolve(named, &host_store, &data_dir)?;
            let (id, wasm) = super::processors::wasm(&processor)?;
            Ok(Some(Arc::new(runtime.load(id, wasm)?)))
        };
        connections.push(
            Connection::new(
                &c.name,
                &c.remote_instance,
                c.direction,
                load(&c.incoming).with_context(|| format!("connection `{}`", c.name))?,
                load(&c.outgoing).with_context(|| format!("connection `{}`", c.name))?,
                c.limits.clone(),
            )?
            .with_policies(c.conflicts.clone()),
        );
    }
    let node = Node::new(
        &spec.instance,
        tracker.clone(),
        store,
        runtime.clone(),
        connections,
        clock.clone(),
    )?;
    Ok(ConfiguredNode {
        node: Arc::new(node),
        tracker,
        runtime,
        clock,
    })
}
