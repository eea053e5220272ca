//! A tenant's plugins, for its token on `/v1/plugins...` (see `plugins::api`). A tenant
//! runs packages of the host's plugin store (`plugin:NAME@VERSION` in its spec): it sees
//! those packages, each with the sides of its own connections that run it, and switches its
//! own connections between them (use, upgrade, rollback, try). Installing and removing
//! packages stays with the host.
//!
//! A switch changes the tenant's spec (a new revision: the tenant restarts on it, or, if it
//! cannot start with it, the switch is undone and refused with the reason) and is recorded
//! in the registry's `plugin_changes`, which a rollback reads.

use std::sync::Mutex;

use axum::http::StatusCode;

use super::Tenants;
use super::registry::{Entry, PluginChange};
use super::spec::{ProcessorRef, TenantSpec};
use crate::admin::{Failure, not_found};
use crate::clock::millis;
use crate::plugins::manifest::Version;
use crate::plugins::store::{self, Installed, Side};
use crate::sync::Node;

/// How the changes are recorded as made.
const BY: &str = "tenant-api";

/// One switch at a time: each reads the spec and writes it back.
static SWITCHING: Mutex<()> = Mutex::new(());

fn entry(tenants: &Tenants, tenant: &str) -> Result<Entry, Failure> {
    tenants
        .registry()
        .get(tenant)?
        .ok_or_else(|| not_found(format!("no tenant `{tenant}`")))
}

/// The processor a side of a connection runs, as the spec names it.
fn slot<'a>(
    spec: &'a mut TenantSpec,
    connection: &str,
    side: Side,
) -> Option<&'a mut Option<String>> {
    let c = spec.connections.iter_mut().find(|c| c.name == connection)?;
    Some(match side {
        Side::Incoming => &mut c.incoming,
        Side::Outgoing => &mut c.outgoing,
    })
}

fn plugin_ref(name: &str, version: &str) -> String {
    format!("plugin:{name}@{version}")
}

/// The host's packages, each with the sides of the tenant's connections that run it
/// (`connection/side`). Who installed them, and which of the host's connections use them,
/// is the host's business.
pub fn packages(host: &Node, tenants: &Tenants, tenant: &str) -> Result<Vec<Installed>, Failure> {
    let spec = entry(tenants, tenant)?.spec;
    let mut all = host.store().read(|db| store::all(db))?;
    for package in &mut all {
        let own = plugin_ref(&package.name, &package.version);
        package.installed_by = "the host".into();
        package.used_by = spec
            .connections
            .iter()
            .flat_map(|c| {
                [(Side::Incoming, &c.incoming), (Side::Outgoing, &c.outgoing)]
                    .into_iter()
                    .filter(|(_, p)| p.as_deref() == Some(own.as_str()))
                    .map(|(side, _)| format!("{}/{}", c.name, side.as_str()))
            })
            .collect();
    }
    Ok(all)
}

/// The tenant's recorded switches, oldest first.
pub fn changes(tenants: &Tenants, tenant: &str) -> Result<Vec<PluginChange>, Failure> {
    Ok(tenants.registry().plugin_changes(tenant)?)
}

/// A package of the host's store, or 404.
fn installed(host: &Node, name: &str, version: &str) -> Result<Installed, Failure> {
    host.store()
        .read(|db| store::get(db, name, version))?
        .ok_or_else(|| not_found(format!("no plugin {name}@{version} installed")))
}

/// Run `name@version` on `connection`'s `side`.
pub fn use_version(
    host: &Node,
    tenants: &Tenants,
    tenant: &str,
    connection: &str,
    side: Side,
    name: &str,
    version: &str,
) -> Result<Vec<PluginChange>, Failure> {
    let package = installed(host, name, version)?;
    if !package.manifest.worlds.iter().any(|w| w == side.world()) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "{name}@{version} is not an {} (its worlds: {})",
                side.world(),
                package.manifest.worlds.join(", ")
            ),
        ));
    }
    switch(
        tenants,
        tenant,
        "use",
        vec![(
            connection.to_string(),
            side,
            Some(plugin_ref(name, version)),
        )],
    )
}

/// Move every side of the tenant's connections that runs `name` to `to` (default: the
/// highest version installed). Returns the sides moved.
pub fn upgrade(
    host: &Node,
    tenants: &Tenants,
    tenant: &str,
    name: &str,
    to: Option<&str>,
) -> Result<Vec<PluginChange>, Failure> {
    let all = host.store().read(|db| store::all(db))?;
    let target = match to {
        Some(v) => installed(host, name, v)?.version,
        None => all
            .iter()
            .filter(|p| p.name == name)
            .filter_map(|p| Some((Version::parse(&p.version).ok()?, p.version.clone())))
            .max()
            .map(|(_, v)| v)
            .ok_or_else(|| not_found(format!("no plugin {name} installed")))?,
    };
    let spec = entry(tenants, tenant)?.spec;
    let mut switches = Vec::new();
    for c in &spec.connections {
        for (side, p) in [(Side::Incoming, &c.incoming), (Side::Outgoing, &c.outgoing)] {
            if let Some(Ok(ProcessorRef::Plugin { name: n, version })) =
                p.as_deref().map(ProcessorRef::parse)
                && n == name
                && version != target
            {
                switches.push((c.name.clone(), side, Some(plugin_ref(name, &target))));
            }
        }
    }
    switch(tenants, tenant, "upgrade", switches)
}

/// Put `connection`'s sides (or one) back on what they ran before their last switch.
pub fn rollback(
    tenants: &Tenants,
    tenant: &str,
    connection: &str,
    side: Option<Side>,
) -> Result<Vec<PluginChange>, Failure> {
    let recorded = tenants.registry().plugin_changes(tenant)?;
    let sides = match side {
        Some(side) => vec![side],
        None => vec![Side::Incoming, Side::Outgoing],
    };
    let switches: Vec<_> = sides
        .into_iter()
        .filter_map(|side| {
            let last = recorded
                .iter()
                .rev()
                .find(|c| c.connection == connection && c.side == side.as_str())?;
            Some((connection.to_string(), side, last.previous.clone()))
        })
        .collect();
    if switches.is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("connection `{connection}` has no earlier plugin version to go back to"),
        ));
    }
    switch(tenants, tenant, "rollback", switches)
}

/// Apply switches (connection, side, processor) to the tenant's spec, restart it on it,
/// and record them; undone if it cannot start. A connection it does not have is not found.
fn switch(
    tenants: &Tenants,
    tenant: &str,
    action: &str,
    switches: Vec<(String, Side, Option<String>)>,
) -> Result<Vec<PluginChange>, Failure> {
    let _one = SWITCHING.lock().unwrap_or_else(|e| e.into_inner());
    let old = entry(tenants, tenant)?;
    let mut spec = old.spec.clone();
    let at = millis(std::time::SystemTime::now());
    let mut changes = Vec::new();
    for (connection, side, to) in switches {
        let slot = slot(&mut spec, &connection, side)
            .ok_or_else(|| not_found(format!("no connection `{connection}`")))?;
        if *slot == to {
            continue;
        }
        let previous = std::mem::replace(slot, to.clone());
        changes.push(PluginChange {
            id: 0,
            at,
            by: BY.into(),
            action: action.into(),
            connection,
            side: side.as_str().into(),
            processor: to,
            previous,
        });
    }
    if changes.is_empty() {
        return Ok(changes);
    }
    tenants.check(&spec)?;
    tenants.registry().replace(&spec)?;
    tenants.reconcile()?;
    if let Some(Err(why)) = tenants.status(tenant) {
        tenants.registry().replace(&old.spec)?;
        tenants.reconcile()?;
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("tenant `{tenant}` cannot start with this change, kept as it was: {why}"),
        ));
    }
    tenants.registry().record_plugin_changes(tenant, &changes)?;
    Ok(changes)
}
