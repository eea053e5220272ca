//! What a tenant admin does with a node's plugin store, for the CLI and the admin API
//! alike: install a package (checked like `plugin check`, pinned by its sha256), choose the
//! version a connection side runs, upgrade, roll back, remove. Each change is one
//! transaction, recorded with who made it and when; a running node picks it up by itself
//! (see `live`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use super::check::{self, DryRun};
use super::library::Library;
use super::manifest::Version;
use super::store::{self, Installation, Side};
use crate::clock::millis;
use crate::runtime::Plugin;
use crate::sync::{Connection, Node};

/// What installing did.
#[derive(Debug, Serialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// False when the same package was installed already.
    pub new: bool,
    pub dry_runs: Vec<DryRun>,
}

fn library(node: &Node) -> Result<&Arc<Library>> {
    node.plugins
        .library()
        .ok_or_else(|| anyhow!("this node has no plugin store"))
}

fn now(node: &Node) -> i64 {
    millis(node.clock().now())
}

/// Check a package and keep it in the store. A bare component (no manifest) is refused:
/// the store knows plugins by name and version.
pub fn install(node: &Node, file_name: &str, wasm: &[u8], by: &str) -> Result<Installed> {
    let library = library(node)?;
    let plugin = library.runtime().load(file_name, wasm)?;
    let Some(manifest) = plugin.info.manifest.clone() else {
        bail!(
            "{file_name} has no manifest: package it first with `twinsync plugin pack {file_name} \
             --manifest plugin.toml -o PACKAGE.wasm`"
        );
    };
    let dry_runs = check::dry_runs(library.runtime(), &plugin, &check::sample());
    if let Some(failed) = dry_runs.iter().find(|r| !r.ok) {
        bail!(
            "{} failed its dry run of the {} processor on the sample issue: {}",
            manifest.id(),
            failed.processor,
            failed.result
        );
    }
    let sha256 = plugin.info.sha256.clone();
    library.save(&sha256, wasm)?;
    let installation = node
        .store()
        .write(|tx| store::install(tx, &manifest, &sha256, wasm.len(), by, now(node)))?;
    Ok(Installed {
        name: manifest.name,
        version: manifest.version,
        sha256,
        new: installation == Installation::New,
        dry_runs,
    })
}

/// `NAME@VERSION` split.
pub fn parse_id(id: &str) -> Result<(&str, &str)> {
    id.split_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow!("`{id}`: give NAME@VERSION, for example tag-origin@1.2.0"))
}

/// Make `connection`'s `side` run an installed version. Checked first: the connection
/// exists and has that side, the package implements its world and asks for no more than
/// the connection's limits.
pub fn use_version(
    node: &Node,
    connection: &str,
    side: Side,
    name: &str,
    version: &str,
    settings: &BTreeMap<String, String>,
    by: &str,
) -> Result<()> {
    set(
        node,
        connection,
        side,
        Some((name, version)),
        settings,
        "use",
        by,
    )
}

/// `NAME=VALUE` settings, as the CLI takes them.
pub fn parse_settings(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("setting `{pair}`: give NAME=VALUE"))
        })
        .collect()
}

fn set(
    node: &Node,
    connection: &str,
    side: Side,
    to: Option<(&str, &str)>,
    settings: &BTreeMap<String, String>,
    action: &str,
    by: &str,
) -> Result<()> {
    let conn = configured(node, connection)?;
    if let Some((name, version)) = to {
        let plugin = load(node, name, version)?;
        fits(&conn, side, &plugin)?;
    }
    node.store()
        .write(|tx| store::set_use(tx, connection, side, to, settings, action, by, now(node)))?;
    Ok(())
}

/// Move every side that runs `name` to `version` (default: the highest installed).
/// Returns the sides moved, as `connection/side`.
pub fn upgrade(node: &Node, name: &str, version: Option<&str>, by: &str) -> Result<Vec<String>> {
    let installed = node.store().read(|db| store::all(db))?;
    let target = match version {
        Some(v) => v.to_string(),
        None => installed
            .iter()
            .filter(|p| p.name == name)
            .filter_map(|p| Some((Version::parse(&p.version).ok()?, p.version.clone())))
            .max()
            .map(|(_, v)| v)
            .ok_or_else(|| anyhow!("no version of `{name}` is installed"))?,
    };
    let uses = node.store().read(|db| store::uses(db))?;
    let mut moved = Vec::new();
    for u in uses
        .iter()
        .filter(|u| u.name == name && u.version != target)
    {
        set(
            node,
            &u.connection,
            u.side,
            Some((name, &target)),
            // An upgrade keeps the side's settings.
            &u.settings,
            "upgrade",
            by,
        )?;
        moved.push(format!("{}/{}", u.connection, u.side.as_str()));
    }
    Ok(moved)
}

/// Put `connection`'s sides (or one) back on the version they ran before their last
/// change. Returns what each went back to.
pub fn rollback(
    node: &Node,
    connection: &str,
    side: Option<Side>,
    by: &str,
) -> Result<Vec<String>> {
    configured(node, connection)?;
    let sides = match side {
        Some(side) => vec![side],
        None => vec![Side::Incoming, Side::Outgoing],
    };
    let mut done = Vec::new();
    for side in sides {
        let Some(previous) = node
            .store()
            .read(|db| store::previous(db, connection, side))?
        else {
            continue;
        };
        let to = previous.as_deref().map(parse_id).transpose()?;
        let settings = node
            .store()
            .read(|db| store::uses(db))?
            .into_iter()
            .find(|u| u.connection == connection && u.side == side)
            .map(|u| u.settings)
            .unwrap_or_default();
        set(node, connection, side, to, &settings, "rollback", by)?;
        done.push(format!(
            "{connection}/{}: {}",
            side.as_str(),
            previous
                .as_deref()
                .unwrap_or("the processor of the configuration")
        ));
    }
    if done.is_empty() {
        bail!("connection `{connection}` has no earlier plugin version to go back to");
    }
    Ok(done)
}

/// Forget an installed version (refused while in use); its file goes when no other
/// version has the same bytes.
pub fn remove(node: &Node, name: &str, version: &str, by: &str) -> Result<()> {
    let library = library(node)?;
    let sha256 = node.store().write(|tx| {
        let sha256 = store::remove(tx, name, version, by, now(node))?;
        Ok((!store::sha_in_use(tx, &sha256)?).then_some(sha256))
    })?;
    if let Some(sha256) = sha256 {
        library.delete(&sha256)?;
    }
    Ok(())
}

/// An installed version, compiled.
pub fn load(node: &Node, name: &str, version: &str) -> Result<Arc<Plugin>> {
    let installed = node
        .store()
        .read(|db| store::get(db, name, version))?
        .ok_or_else(|| anyhow!("{name}@{version} is not installed (see `twinsync plugin list`)"))?;
    library(node)?
        .load(&installed.sha256, &format!("{name}@{version}"))
        .with_context(|| format!("cannot load {name}@{version}"))
}

/// The connection as configured (its limits not lowered by any package's).
fn configured(node: &Node, connection: &str) -> Result<Connection> {
    node.plugins
        .configured(connection)
        .cloned()
        .ok_or_else(|| anyhow!("connection `{connection}` is not configured on this node"))
}

/// Whether `plugin` can run `side` of `connection`.
fn fits(connection: &Connection, side: Side, plugin: &Plugin) -> Result<()> {
    let needed = match side {
        Side::Incoming => connection.can_receive(),
        Side::Outgoing => connection.can_send(),
    };
    if !needed {
        bail!(
            "connection `{}` has no {} side on this node",
            connection.name,
            side.as_str()
        );
    }
    let implements = match side {
        Side::Incoming => plugin.has_incoming(),
        Side::Outgoing => plugin.has_outgoing(),
    };
    if !implements {
        bail!(
            "`{}` does not implement world `{}`",
            plugin.name(),
            side.world()
        );
    }
    if let Some(manifest) = &plugin.info.manifest {
        let above = manifest.limits.above(&connection.limits);
        if !above.is_empty() {
            bail!(
                "{} asks for more than connection `{}` allows: {}",
                manifest.id(),
                connection.name,
                above.join(", ")
            );
        }
    }
    Ok(())
}
