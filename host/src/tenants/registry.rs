//! The durable tenant registry: `DATA_DIR/tenants.db`, one row per tenant with its spec
//! (JSON), a revision bumped by every change of the spec (a running tenant whose revision
//! is older is restarted) and the SHA-256 of its token. `serve` and the CLI both write it;
//! `serve` applies what changed within a second.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::Connection;

use super::spec::TenantSpec;
use crate::store::sql::{Row, Sql, args};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    instance TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    revision INTEGER NOT NULL,
    token_sha256 TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
-- What each tenant switched its connections' plugins to, newest last: what a rollback
-- goes back to (`previous`: the processor the side ran before, as the spec names it).
CREATE TABLE IF NOT EXISTS plugin_changes (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    by TEXT NOT NULL,
    action TEXT NOT NULL,
    connection TEXT NOT NULL,
    side TEXT NOT NULL,
    processor TEXT,
    previous TEXT
);
CREATE INDEX IF NOT EXISTS plugin_changes_by_side ON plugin_changes (tenant, connection, side);
-- A command that wrote a tenant's database outside serve (`--tenant NAME`) counts up its
-- tenant's row here: serve's host looks only at tenants given work, so it is told this way.
CREATE TABLE IF NOT EXISTS pokes (
    tenant TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
";

/// One switch of a tenant's connection side to another processor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginChange {
    pub id: i64,
    pub at: i64,
    pub by: String,
    /// `use`, `upgrade` or `rollback`.
    pub action: String,
    pub connection: String,
    pub side: String,
    /// What it runs since, as the spec names it (`plugin:NAME@VERSION`, a built-in, or
    /// `None`: the default).
    pub processor: Option<String>,
    pub previous: Option<String>,
}

/// One registered tenant.
#[derive(Debug, Clone)]
pub struct Entry {
    pub spec: TenantSpec,
    pub revision: i64,
    pub token_sha256: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The `tenants` table.
pub struct Registry {
    db: Mutex<Connection>,
}

/// The registry of a serve data directory.
pub fn path_in(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("tenants.db")
}

impl Registry {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let db = crate::store::open_wal(path)?;
        // It holds the connections' shared secrets: the owner's only (SQLite gives its WAL
        // files the same permissions).
        #[cfg(unix)]
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
        db.execute_batch(SCHEMA)
            .with_context(|| format!("cannot set up the tenant registry in {}", path.display()))?;
        Ok(Registry { db: Mutex::new(db) })
    }

    /// Run `f` on the registry's database, without a transaction of its own.
    fn with<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&*db)
    }

    /// Run `f` in a transaction; commit if it returns `Ok`.
    fn transaction<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = db.transaction()?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Tell a running serve that the tenant's database was written outside it.
    pub fn poke(&self, tenant: &str) -> Result<()> {
        self.with(|db| {
            db.execute(
                "INSERT INTO pokes (tenant, count) VALUES (?1, 1)
                 ON CONFLICT (tenant) DO UPDATE SET count = pokes.count + 1",
                args![tenant],
            )
        })?;
        Ok(())
    }

    /// Each poked tenant's count: a count that moved since last read is a new poke.
    pub fn pokes(&self) -> Result<Vec<(String, i64)>> {
        self.with(|db| {
            db.rows("SELECT tenant, count FROM pokes", &[], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
    }

    /// Every tenant, by name.
    pub fn list(&self) -> Result<Vec<Entry>> {
        self.with(|db| {
            db.rows(
                "SELECT spec, revision, token_sha256, created_ms, updated_ms FROM tenants ORDER BY name",
                &[],
                row,
            )
        })
    }

    pub fn get(&self, name: &str) -> Result<Option<Entry>> {
        self.with(|db| {
            db.row(
                "SELECT spec, revision, token_sha256, created_ms, updated_ms FROM tenants WHERE name = ?1",
                args![name],
                row,
            )
        })
    }

    /// Register a new tenant (its spec checked already) with the hash of its token.
    pub fn add(&self, spec: &TenantSpec, token_sha256: &str) -> Result<Entry> {
        let now = now_ms();
        self.with(|db| {
            taken(db, spec, None)?;
            db.execute(
                "INSERT INTO tenants (name, instance, spec, revision, token_sha256, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?5)",
                args![&spec.name, &spec.instance, &serde_json::to_string(spec)?, token_sha256, now],
            )
        })?;
        self.get(&spec.name)?
            .ok_or_else(|| anyhow!("tenant `{}` vanished", spec.name))
    }

    /// Replace a tenant's spec (same name); its revision goes up, so it restarts.
    pub fn replace(&self, spec: &TenantSpec) -> Result<Option<Entry>> {
        let changed = self.with(|db| {
            taken(db, spec, Some(&spec.name))?;
            db.execute(
                "UPDATE tenants SET instance = ?2, spec = ?3, revision = revision + 1, updated_ms = ?4
                 WHERE name = ?1",
                args![
                    &spec.name,
                    &spec.instance,
                    &serde_json::to_string(spec)?,
                    now_ms()
                ],
            )
        })?;
        if changed == 0 {
            return Ok(None);
        }
        self.get(&spec.name)
    }

    /// A new token hash for a tenant; whether it exists.
    pub fn set_token(&self, name: &str, token_sha256: &str) -> Result<bool> {
        let changed = self.with(|db| {
            db.execute(
                "UPDATE tenants SET token_sha256 = ?2, updated_ms = ?3 WHERE name = ?1",
                args![name, token_sha256, now_ms()],
            )
        })?;
        Ok(changed > 0)
    }

    /// Forget a tenant (its directory stays); whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool> {
        self.with(|db| {
            db.execute("DELETE FROM plugin_changes WHERE tenant = ?1", args![name])?;
            Ok(db.execute("DELETE FROM tenants WHERE name = ?1", args![name])? > 0)
        })
    }

    /// Record switches of a tenant's connection sides, in one transaction.
    pub fn record_plugin_changes(&self, tenant: &str, changes: &[PluginChange]) -> Result<()> {
        self.transaction(|tx| {
            for c in changes {
                tx.execute(
                    "INSERT INTO plugin_changes (tenant, at_ms, by, action, connection, side, processor, previous)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    args![
                        tenant,
                        c.at,
                        &c.by,
                        &c.action,
                        &c.connection,
                        &c.side,
                        c.processor.as_ref(),
                        c.previous.as_ref()
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// A tenant's switches, oldest first.
    pub fn plugin_changes(&self, tenant: &str) -> Result<Vec<PluginChange>> {
        self.with(|db| {
            db.rows(
                "SELECT id, at_ms, by, action, connection, side, processor, previous FROM plugin_changes
                 WHERE tenant = ?1 ORDER BY id",
                args![tenant],
                |r| {
                    Ok(PluginChange {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        by: r.get(2)?,
                        action: r.get(3)?,
                        connection: r.get(4)?,
                        side: r.get(5)?,
                        processor: r.get(6)?,
                        previous: r.get(7)?,
                    })
                },
            )
        })
    }
}

/// A clear error instead of a constraint failure when the name or instance is taken.
fn taken(db: &dyn Sql, spec: &TenantSpec, except: Option<&str>) -> Result<()> {
    let other: Option<String> = db.value(
        "SELECT name FROM tenants WHERE instance = ?1 AND name IS DISTINCT FROM ?2",
        args![&spec.instance, except],
    )?;
    if let Some(other) = other {
        bail!(
            "tenant `{}`: instance `{}` is tenant `{other}`'s already",
            spec.name,
            spec.instance
        );
    }
    if except.is_none() && db.exists("SELECT 1 FROM tenants WHERE name = ?1", args![&spec.name])? {
        bail!("tenant `{}` exists already", spec.name);
    }
    Ok(())
}

fn row(r: &dyn Row) -> Result<Entry> {
    let text: String = r.get(0)?;
    serde_json::from_str(&text)
        .context("a tenant's stored spec cannot be read")
        .map(|spec| Entry {
            spec,
            revision: r.get(1).unwrap_or_default(),
            token_sha256: r.get(2).unwrap_or_default(),
            created_ms: r.get(3).unwrap_or_default(),
            updated_ms: r.get(4).unwrap_or_default(),
        })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_survives_reopening_and_refuses_taken_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let spec = |name: &str, instance: &str| {
            TenantSpec::from_json(
                format!(r#"{{"name": "{name}", "instance": "{instance}"}}"#).as_bytes(),
            )
            .unwrap()
        };
        {
            let registry = Registry::open(&path).unwrap();
            registry.add(&spec("a", "A"), "h1").unwrap();
            let twice = registry.add(&spec("a", "B"), "h2").unwrap_err();
            assert!(format!("{twice}").contains("exists already"));
            let instance = registry.add(&spec("b", "A"), "h2").unwrap_err();
            assert!(format!("{instance}").contains("is tenant `a`'s already"));
            let changed = registry.replace(&spec("a", "A2")).unwrap().unwrap();
            assert_eq!(changed.revision, 2);
            assert!(registry.set_token("a", "h3").unwrap());
            registry.poke("a").unwrap();
            registry.poke("a").unwrap();
            registry.poke("b").unwrap();
            let mut pokes = registry.pokes().unwrap();
            pokes.sort();
            assert_eq!(pokes, [("a".to_string(), 2), ("b".to_string(), 1)]);
            let change = |side: &str, processor: Option<&str>| PluginChange {
                id: 0,
                at: 5,
                by: "ops".into(),
                action: "use".into(),
                connection: "c".into(),
                side: side.into(),
                processor: processor.map(Into::into),
                previous: None,
            };
            registry
                .record_plugin_changes(
                    "a",
                    &[change("local", Some("plugin:p@1")), change("remote", None)],
                )
                .unwrap();
            let changes = registry.plugin_changes("a").unwrap();
            assert_eq!(changes.len(), 2);
            assert!(changes[0].id < changes[1].id);
            assert_eq!(changes[0].processor.as_deref(), Some("plugin:p@1"));
            assert_eq!(
                (changes[1].side.as_str(), changes[1].processor.as_deref()),
                ("remote", None)
            );
        }
        let registry = Registry::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the secrets are the owner's only");
        }
        let entry = registry.get("a").unwrap().unwrap();
        assert_eq!((entry.spec.instance.as_str(), entry.revision), ("A2", 2));
        assert_eq!(entry.token_sha256, "h3");
        assert!(registry.remove("a").unwrap());
        assert!(!registry.remove("a").unwrap());
        assert!(registry.plugin_changes("a").unwrap().is_empty());
        assert!(registry.list().unwrap().is_empty());
    }
}
