//! A running node and its plugin store: which package each connection side runs, picked
//! up without a restart, and which plugin processed each event.
//!
//! A change in the store (from the CLI in another process, or the admin API) moves a
//! counter; the node's event loop looks at it often ([`Node::refresh_plugins`]) and then
//! replaces the connections whose plugins changed. Events already being prepared hold the
//! connection they started with (an `Arc`), so they finish with the version they started
//! with; the next events get the new one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use crate::store::sql::Sql;
use anyhow::Result;

use super::library::Library;
use super::store::{self, Side};
use crate::runtime::{Plugin, PluginIdentity};
use crate::sync::{Connection, Node};

/// A node's view of its plugin store. Empty (no store) for nodes built without one.
#[derive(Default)]
pub struct NodePlugins {
    library: OnceLock<Arc<Library>>,
    /// The connections as configured, before any package replaced a processor: what a side
    /// goes back to when the store stops naming a package for it.
    configured: OnceLock<BTreeMap<String, Connection>>,
    /// The store's counter when the connections were last brought up to date.
    seen: Mutex<Option<i64>>,
    /// The plugin each event in preparation runs with, until its result commits.
    running: Mutex<HashMap<String, PluginIdentity>>,
}

impl NodePlugins {
    pub fn library(&self) -> Option<&Arc<Library>> {
        self.library.get()
    }

    /// A connection as configured, before the store replaced any of its processors.
    pub fn configured(&self, name: &str) -> Option<&Connection> {
        self.configured.get()?.get(name)
    }

    /// An event's processor is about to run.
    pub fn started(&self, event_id: &str, plugin: &Plugin) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(event_id.to_string(), plugin.identity());
    }

    /// Record, in the transaction committing them, which plugin ran for these events.
    pub fn record<'a>(&self, db: &dyn Sql, events: impl Iterator<Item = &'a str>) -> Result<()> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for id in events {
            if let Some(plugin) = running.remove(id) {
                store::record_event(db, id, &plugin)?;
            }
        }
        Ok(())
    }
}

impl Node {
    /// Give the node its plugin store: from [`Node::refresh_plugins`] on, the store's
    /// choices override the processors the node was configured with. Once per node; a
    /// second call is refused.
    pub fn attach_plugins(&self, library: Arc<Library>) -> Result<()> {
        let configured = self
            .connections()
            .iter()
            .map(|c| (c.name.clone(), (**c).clone()))
            .collect();
        if self.plugins.library.set(library).is_err() {
            anyhow::bail!("this node has its plugin store already");
        }
        let _ = self.plugins.configured.set(configured);
        Ok(())
    }

    /// The events whose processor is running or has run but not committed yet, with the
    /// plugin each runs with: what an operator (or a test) sees of events in flight.
    pub fn running_plugins(&self) -> Vec<(String, PluginIdentity)> {
        let running = self
            .plugins
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .map(|(id, plugin)| (id.clone(), plugin.clone()))
            .collect()
    }

    /// Bring the connections up to date with the plugin store, if it changed since the last
    /// call. Returns whether a connection changed. A package that cannot be loaded leaves
    /// its connection as it was (and says why).
    pub fn refresh_plugins(&self) -> Result<bool> {
        let (Some(library), Some(configured)) =
            (self.plugins.library.get(), self.plugins.configured.get())
        else {
            return Ok(false);
        };
        let mut seen = self.plugins.seen.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.store().read(|db| store::generation(db))?;
        if *seen == Some(generation) {
            return Ok(false);
        }
        let uses = self.store().read(|db| store::uses(db))?;
        let mut changed = false;
        let mut errors = Vec::new();
        for (name, base) in configured {
            match connection_with_uses(library, base, &uses) {
                Ok(wanted) => {
                    let current = self.connections().into_iter().find(|c| &c.name == name);
                    if current.is_none_or(|c| !same_plugins(&c, &wanted)) {
                        self.replace_connection(wanted)?;
                        changed = true;
                    }
                }
                Err(error) => errors.push(format!("connection `{name}`: {error:#}")),
            }
        }
        *seen = Some(generation);
        if !errors.is_empty() {
            anyhow::bail!("{}", errors.join("; "));
        }
        Ok(changed)
    }
}

/// `base` with the packages the store names for its sides, their asked-for limits applied.
fn connection_with_uses(
    library: &Library,
    base: &Connection,
    uses: &[store::Use],
) -> Result<Connection> {
    let mut incoming = base.incoming.clone();
    let mut outgoing = base.outgoing.clone();
    let mut limits = base.limits.clone();
    for u in uses.iter().filter(|u| u.connection == base.name) {
        let plugin = library.load(&u.sha256, &format!("{}@{}", u.name, u.version))?;
        let plugin = if u.settings.is_empty() {
            plugin
        } else {
            Arc::new(plugin.with_settings(&u.settings))
        };
        if let Some(manifest) = &plugin.info.manifest {
            limits = manifest.limits.within(&limits);
        }
        match u.side {
            Side::Incoming => incoming = Some(plugin),
            Side::Outgoing => outgoing = Some(plugin),
        }
    }
    Ok(Connection::new(
        &base.name,
        &base.remote_instance,
        base.flow,
        incoming,
        outgoing,
        limits,
    )?
    .with_policies(base.policies.clone()))
}

fn same_plugins(a: &Connection, b: &Connection) -> bool {
    let sha = |p: &Option<Arc<Plugin>>| {
        p.as_ref()
            .map(|p| (p.info.sha256.clone(), p.settings.clone()))
    };
    sha(&a.incoming) == sha(&b.incoming)
        && sha(&a.outgoing) == sha(&b.outgoing)
        && a.limits == b.limits
}
