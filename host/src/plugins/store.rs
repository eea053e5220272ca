//! The plugin store's tables (`schema.sql`): installed packages, the version each connection
//! side uses, the history of changes, and the plugin each event ran with. Every change
//! bumps a counter (`plugins.generation` in `meta`) that a running node watches.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Serialize;

use super::manifest::Manifest;
use crate::runtime::PluginIdentity;
use crate::store::sql::{Sql, args};
use crate::store::{get_meta, next_number};

pub const SCHEMA: &str = include_str!("schema.sql");

const GENERATION: &str = "plugins.generation";

/// Which processor of a connection: the one for received replicas or for local changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    Incoming,
    Outgoing,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Incoming => "incoming",
            Side::Outgoing => "outgoing",
        }
    }

    pub fn world(self) -> &'static str {
        match self {
            Side::Incoming => "incoming-processor",
            Side::Outgoing => "outgoing-processor",
        }
    }

    fn parse(text: &str) -> Side {
        if text == "outgoing" {
            Side::Outgoing
        } else {
            Side::Incoming
        }
    }
}

/// An installed package.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: i64,
    pub manifest: Manifest,
    pub installed_at: i64,
    pub installed_by: String,
    /// `connection/side` of each use.
    pub used_by: Vec<String>,
}

/// The package a connection side runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Use {
    pub connection: String,
    pub side: Side,
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The operator's values of the plugin's settings, over its manifest's defaults.
    pub settings: BTreeMap<String, String>,
}

/// One change to the store.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub id: i64,
    pub at: i64,
    pub by: String,
    pub action: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub connection: Option<String>,
    pub side: Option<String>,
    pub previous: Option<String>,
}

/// A counter that every change moves on.
pub fn generation(db: &dyn Sql) -> Result<i64> {
    Ok(get_meta(db, GENERATION)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn bump(db: &dyn Sql) -> Result<()> {
    next_number(db, GENERATION)?;
    Ok(())
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installation {
    New,
    /// The same bytes were installed already under this name and version.
    AlreadyThere,
}

pub fn install(
    db: &dyn Sql,
    manifest: &Manifest,
    sha256: &str,
    size: usize,
    by: &str,
    now: i64,
) -> Result<Installation> {
    if let Some(existing) = get(db, &manifest.name, &manifest.version)? {
        if existing.sha256 == sha256 {
            return Ok(Installation::AlreadyThere);
        }
        bail!(
            "{} is installed already with other content (sha256 {}); a version, once installed, \
             never changes: give the new build a new version",
            manifest.id(),
            existing.sha256
        );
    }
    db.execute(
        "INSERT INTO plugins (name, version, sha256, size, manifest, installed_at, installed_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            &manifest.name,
            &manifest.version,
            sha256,
            size,
            &serde_json::to_string(manifest)?,
            now,
            by
        ],
    )?;
    change(
        db,
        now,
        by,
        "install",
        Some((&manifest.name, &manifest.version, sha256)),
        None,
        None,
    )?;
    Ok(Installation::New)
}

pub fn get(db: &dyn Sql, name: &str, version: &str) -> Result<Option<Installed>> {
    Ok(all(db)?
        .into_iter()
        .find(|p| p.name == name && p.version == version))
}

/// Every installed package, by name then version (oldest first).
pub fn all(db: &dyn Sql) -> Result<Vec<Installed>> {
    let uses = uses(db)?;
    let rows = db.rows(
        "SELECT name, version, sha256, size, manifest, installed_at, installed_by FROM plugins",
        &[],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<i64>(3)?,
                r.get::<String>(4)?,
                r.get::<i64>(5)?,
                r.get::<String>(6)?,
            ))
        },
    )?;
    let mut all = Vec::new();
    for (name, version, sha256, size, manifest, installed_at, installed_by) in rows {
        let manifest: Manifest = serde_json::from_str(&manifest)?;
        let used_by = uses
            .iter()
            .filter(|u| u.name == name && u.version == version)
            .map(|u| format!("{}/{}", u.connection, u.side.as_str()))
            .collect();
        all.push(Installed {
            name,
            version,
            sha256,
            size,
            manifest,
            installed_at,
            installed_by,
            used_by,
        });
    }
    all.sort_by(|a, b| {
        a.name.cmp(&b.name).then_with(|| {
            let v = |s: &str| super::manifest::Version::parse(s).ok();
            v(&a.version).cmp(&v(&b.version))
        })
    });
    Ok(all)
}

/// What every connection side uses, by connection and side.
pub fn uses(db: &dyn Sql) -> Result<Vec<Use>> {
    db.rows(
        "SELECT u.connection, u.side, u.name, u.version, p.sha256, u.settings FROM plugin_use u
         JOIN plugins p ON p.name = u.name AND p.version = u.version
         ORDER BY u.connection, u.side",
        &[],
        |r| {
            Ok(Use {
                connection: r.get(0)?,
                side: Side::parse(&r.get::<String>(1)?),
                name: r.get(2)?,
                version: r.get(3)?,
                sha256: r.get(4)?,
                settings: serde_json::from_str(&r.get::<String>(5)?).unwrap_or_default(),
            })
        },
    )
}

fn use_of(db: &dyn Sql, connection: &str, side: Side) -> Result<Option<(String, String)>> {
    db.row(
        "SELECT name, version FROM plugin_use WHERE connection = ?1 AND side = ?2",
        args![connection, side.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Make `connection`'s `side` run `name@version` (installed); `action` is how the history
/// names the change (`use`, `upgrade`, `rollback`). Returns the version used before.
#[allow(clippy::too_many_arguments)]
pub fn set_use(
    db: &dyn Sql,
    connection: &str,
    side: Side,
    to: Option<(&str, &str)>,
    settings: &BTreeMap<String, String>,
    action: &str,
    by: &str,
    now: i64,
) -> Result<Option<String>> {
    let before = use_of(db, connection, side)?.map(|(n, v)| format!("{n}@{v}"));
    let sha256 = match to {
        Some((name, version)) => {
            let Some(installed) = get(db, name, version)? else {
                bail!("{name}@{version} is not installed (see `twinsync plugin list`)");
            };
            db.execute(
                "INSERT INTO plugin_use (connection, side, name, version, settings)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (connection, side) DO UPDATE SET name = excluded.name,
                     version = excluded.version, settings = excluded.settings",
                args![
                    connection,
                    side.as_str(),
                    name,
                    version,
                    &serde_json::to_string(settings)?
                ],
            )?;
            Some(installed.sha256)
        }
        None => {
            db.execute(
                "DELETE FROM plugin_use WHERE connection = ?1 AND side = ?2",
                args![connection, side.as_str()],
            )?;
            None
        }
    };
    let what = to.zip(sha256.as_deref()).map(|((n, v), s)| (n, v, s));
    change(
        db,
        now,
        by,
        action,
        what,
        Some((connection, side)),
        before.as_deref(),
    )?;
    Ok(before)
}

/// The version `connection`'s `side` ran before its current one, if it changed since the
/// store knows it: `Some(None)` for the configuration's processor.
pub fn previous(db: &dyn Sql, connection: &str, side: Side) -> Result<Option<Option<String>>> {
    db.value(
        "SELECT previous FROM plugin_changes WHERE connection = ?1 AND side = ?2
         ORDER BY id DESC LIMIT 1",
        args![connection, side.as_str()],
    )
}

/// Forget an installed package; refused while a connection uses it. Returns its hash.
pub fn remove(db: &dyn Sql, name: &str, version: &str, by: &str, now: i64) -> Result<String> {
    let Some(installed) = get(db, name, version)? else {
        bail!("{name}@{version} is not installed");
    };
    if !installed.used_by.is_empty() {
        bail!(
            "{name}@{version} is in use by {}: switch those to another version first \
             (`twinsync plugin use` or `plugin rollback`)",
            installed.used_by.join(", ")
        );
    }
    db.execute(
        "DELETE FROM plugins WHERE name = ?1 AND version = ?2",
        args![name, version],
    )?;
    change(
        db,
        now,
        by,
        "remove",
        Some((name, version, &installed.sha256)),
        None,
        None,
    )?;
    Ok(installed.sha256)
}

/// Whether any installed package has these bytes.
pub fn sha_in_use(db: &dyn Sql, sha256: &str) -> Result<bool> {
    db.exists(
        "SELECT 1 FROM plugins WHERE sha256 = ?1 LIMIT 1",
        args![sha256],
    )
}

fn change(
    db: &dyn Sql,
    now: i64,
    by: &str,
    action: &str,
    what: Option<(&str, &str, &str)>,
    place: Option<(&str, Side)>,
    previous: Option<&str>,
) -> Result<()> {
    db.execute(
        "INSERT INTO plugin_changes (at, by, action, name, version, sha256, connection, side, previous)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        args![
            now,
            by,
            action,
            what.map(|w| w.0),
            what.map(|w| w.1),
            what.map(|w| w.2),
            place.map(|p| p.0),
            place.map(|p| p.1.as_str()),
            previous
        ],
    )?;
    bump(db)
}

/// The history of changes, oldest first.
pub fn changes(db: &dyn Sql) -> Result<Vec<Change>> {
    db.rows(
        "SELECT id, at, by, action, name, version, sha256, connection, side, previous
         FROM plugin_changes ORDER BY id",
        &[],
        |r| {
            Ok(Change {
                id: r.get(0)?,
                at: r.get(1)?,
                by: r.get(2)?,
                action: r.get(3)?,
                name: r.get(4)?,
                version: r.get(5)?,
                sha256: r.get(6)?,
                connection: r.get(7)?,
                side: r.get(8)?,
                previous: r.get(9)?,
            })
        },
    )
}

/// Remember which plugin processed an event (its latest attempt).
pub fn record_event(db: &dyn Sql, event_id: &str, plugin: &PluginIdentity) -> Result<()> {
    db.execute(
        "INSERT INTO event_plugins (event_id, name, version, sha256) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (event_id) DO UPDATE SET name = excluded.name, version = excluded.version,
             sha256 = excluded.sha256",
        args![
            event_id,
            &plugin.name,
            plugin.version.as_deref(),
            &plugin.sha256
        ],
    )?;
    Ok(())
}

/// The plugin that processed an event, if a processor ran for it.
pub fn event_plugin(db: &dyn Sql, event_id: &str) -> Result<Option<PluginIdentity>> {
    db.row(
        "SELECT name, version, sha256 FROM event_plugins WHERE event_id = ?1",
        args![event_id],
        |r| {
            Ok(PluginIdentity {
                name: r.get(0)?,
                version: r.get(1)?,
                sha256: r.get(2)?,
            })
        },
    )
}
