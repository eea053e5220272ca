//! The node configuration file (`node.toml`): what `twinsync serve` runs and what the
//! operator commands (`errors`, `queue`, `events`, `exalate`) act on.

mod example;
mod redmine;
mod secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use toml::Spanned;

use crate::runtime::Limits;
use crate::sync::{Flow, Policies};

pub use example::EXAMPLE;
pub use redmine::RedmineConfig;
pub use secret::Secret;

/// A node's configuration, as read from its file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// This node's tracker instance, as the other nodes name it (`Internal`).
    pub instance: Spanned<String>,
    /// Where the node keeps its databases and compile cache. Relative to the config file.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`, or a `tracing` filter.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Events processed in parallel. Default: the number of cores.
    pub workers: Option<usize>,
    /// Days finished events are kept (`twinsync events`, replays). Default: 7.
    pub keep_events_days: Option<u32>,
    /// Minutes between two reconciliations (`twinsync verify`) in `serve`; 0: never.
    /// Default: 10.
    pub verify_interval_minutes: Option<u64>,
    /// Address for the node-to-node protocol. Needed if a connection receives.
    pub listen: Option<SocketAddr>,
    /// Serve the node-to-node protocol over TLS.
    pub tls: Option<TlsConfig>,
    /// The admin HTTP API, on its own address and with its own token.
    pub admin: Option<AdminConfig>,
    /// The operator console in the browser, on the admin listener. Off unless enabled.
    pub console: Option<ConsoleConfig>,
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// Where the node keeps its state: `DATA_DIR/twinsync.db` (SQLite) unless a
    /// PostgreSQL database is named here.
    #[serde(default)]
    pub store: StoreConfig,
    /// Signed change notifications from the tracker (`POST /v1/changes` on `listen`).
    pub webhooks: Option<WebhooksConfig>,
    #[serde(default, rename = "connection")]
    pub connections: Vec<ConnectionConfig>,
    /// How the tenants of the registry (`DATA_DIR/tenants.db`) are run.
    #[serde(default)]
    pub tenants: TenantsConfig,

    /// The file this was read from; relative paths are resolved against its directory.
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    text: String,
}

/// `[store]`: the node's state in PostgreSQL, shared by every `twinsync serve` process of
/// the node, instead of `DATA_DIR/twinsync.db`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreConfig {
    /// `postgres://USER@HOST:PORT/DATABASE`.
    pub url: Option<String>,
    /// A file holding the password (first line), if the URL has none. Else the
    /// environment's `TWINSYNC_STORE_PASSWORD`, if set.
    pub password_file: Option<PathBuf>,
    /// With `sslmode=require` in the URL: PEM certificates trusted for the server's
    /// certificate, besides the public roots.
    pub ca_file: Option<PathBuf>,
}

/// The environment variable that holds the store's password, if neither the URL nor a
/// `password-file` does.
pub const STORE_PASSWORD_ENV: &str = "TWINSYNC_STORE_PASSWORD";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The bearer token; or `token-file`.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
}

/// `[console]`: the operator console, served under `/console` on the admin address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConsoleConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Mark the session cookie `Secure`: set it when the console is reached over HTTPS
    /// (through a TLS-terminating proxy; the admin listener itself speaks plain HTTP).
    #[serde(default)]
    pub secure_cookie: bool,
    /// Serve the console on an admin address that is not loopback. Off by default: the
    /// console is for the machine itself, or a proxy on it.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[tenants]`: the embedded host that runs the tenants (see `twinsync tenants`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TenantsConfig {
    /// Worker threads running the processors of all tenants together. Default: the number
    /// of cores.
    pub workers: Option<usize>,
    /// Events of one tenant processed at once, at most: a tenant with a backlog holds no
    /// more workers than this, the others' events go on with the rest.
    #[serde(default = "one")]
    pub workers_per_tenant: usize,
    /// Seconds a tenant that is not running (it could not start, or a sender of it
    /// failed) waits before it is tried again: its cause may pass.
    #[serde(default = "default_retry_after_secs")]
    pub retry_after_secs: u64,
    /// Removed: the workers are shared, so there is nothing left to reserve per tenant.
    /// Kept only to say so clearly (an unknown key would be a bare "unknown field").
    #[serde(default)]
    max_parallel_calls: Option<toml::Spanned<toml::Value>>,
}

impl Default for TenantsConfig {
    fn default() -> Self {
        TenantsConfig {
            workers: None,
            workers_per_tenant: one(),
            retry_after_secs: default_retry_after_secs(),
            max_parallel_calls: None,
        }
    }
}

fn one() -> usize {
    1
}

fn default_retry_after_secs() -> u64 {
    30
}

/// The tracker tells the node which issues changed (`POST /v1/changes`, signed with this
/// secret), instead of being polled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WebhooksConfig {
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// Read the tracker's change feed as well. Default: false (reconciliation, every
    /// `verify-interval-minutes`, finds what a lost notification would miss).
    #[serde(default)]
    pub poll_tracker: bool,
}

/// Which tracker the node syncs.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TrackerConfig {
    /// The reference tracker, in `DATA_DIR/tracker.db`, or in PostgreSQL when several
    /// processes share it.
    #[serde(rename_all = "kebab-case")]
    Reference {
        /// Key prefix of new issues (`INT` gives `INT-1`).
        #[serde(default = "default_project")]
        project: String,
        /// The tracker in this PostgreSQL database (`postgres://USER@HOST:PORT/DATABASE`)
        /// instead of `DATA_DIR/tracker.db`.
        #[serde(default)]
        postgres_url: Option<String>,
        /// A file holding the database password (first line), if the URL has none.
        #[serde(default)]
        postgres_password_file: Option<PathBuf>,
    },
    /// A project of a Redmine, through its REST API.
    Redmine(RedmineConfig),
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig::Reference {
            project: default_project(),
            postgres_url: None,
            postgres_password_file: None,
        }
    }
}

/// One connection to another node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConnectionConfig {
    /// The same name on both nodes.
    pub name: Spanned<String>,
    /// The other node's instance name.
    pub remote_instance: String,
    /// Where the other node listens (`http://host:port`). Needed if this side sends.
    pub remote_url: Option<String>,
    /// `bidirectional`, `send-only` or `receive-only`, seen from this node.
    #[serde(default = "default_direction")]
    pub direction: Flow,
    /// Incoming processor: a built-in name or a `.wasm` path.
    pub incoming: Option<String>,
    /// Outgoing processor: a built-in name or a `.wasm` path.
    pub outgoing: Option<String>,
    /// Shared secret for signing messages; or `secret-file`.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// PEM certificate(s) to trust for the remote's TLS, beyond the public roots.
    pub remote_ca: Option<PathBuf>,
    /// Per-invocation processor limits; unset ones keep their defaults.
    #[serde(default)]
    pub limits: Limits,
    /// How conflicts (a field changed on both sides) are settled: `default = "..."` and
    /// `[connection.conflicts.fields]` exceptions.
    #[serde(default)]
    pub conflicts: Policies,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn default_log_level() -> String {
    "info".into()
}

fn default_project() -> String {
    "TS".into()
}

fn default_direction() -> Flow {
    Flow::Bidirectional
}

impl NodeConfig {
    /// Read and check a configuration file. Errors name the file, the line and what is
    /// expected.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let mut config: NodeConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            anyhow!("{}:{line}: {}", path.display(), e.message())
        })?;
        config.path = path.to_path_buf();
        config.text = text.to_string();
        config.check()?;
        Ok(config)
    }

    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.data_dir)
    }

    pub fn keep_events(&self) -> std::time::Duration {
        self.keep_events_days
            .map_or(crate::sync::KEEP_EVENTS, |days| {
                std::time::Duration::from_secs(u64::from(days) * 24 * 3600)
            })
    }

    /// How often `serve` verifies the twins (`None`: never).
    pub fn verify_interval(&self) -> Option<std::time::Duration> {
        match self.verify_interval_minutes.unwrap_or(10) {
            0 => None,
            minutes => Some(std::time::Duration::from_secs(minutes.saturating_mul(60))),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(crate::runtime::available_cores)
            .max(1)
    }

    /// An error about the value at `span`, as `file:line: message`.
    fn error_at(
        &self,
        span: std::ops::Range<usize>,
        message: impl std::fmt::Display,
    ) -> anyhow::Error {
        anyhow!(
            "{}:{}: {message}",
            self.path.display(),
            line_of(&self.text, span.start)
        )
    }

    fn check(&self) -> Result<()> {
        if self.instance.get_ref().trim().is_empty() {
            return Err(self.error_at(
                self.instance.span(),
                "`instance` must name this node's tracker instance",
            ));
        }
        if self.workers == Some(0) {
            return Err(anyhow!(
                "{}: `workers` must be at least 1",
                self.path.display()
            ));
        }
        if let Some(removed) = &self.tenants.max_parallel_calls {
            return Err(self.error_at(
                removed.span(),
                "[tenants] max-parallel-calls is no longer used: the tenants share `workers` \
                 (default: the number of cores), each running at most `workers-per-tenant` \
                 events at once; remove the line",
            ));
        }
        if self.tenants.workers == Some(0) || self.tenants.workers_per_tenant == 0 {
            return Err(anyhow!(
                "{}: [tenants] `workers` and `workers-per-tenant` must be at least 1",
                self.path.display()
            ));
        }
        if let TrackerConfig::Redmine(redmine) = &self.tracker {
            redmine.check(&self.path)?;
        }
        if let TrackerConfig::Reference {
            postgres_url: None,
            postgres_password_file: Some(_),
            ..
        } = &self.tracker
        {
            return Err(anyhow!(
                "{}: [tracker] `postgres-password-file` needs `postgres-url`",
                self.path.display()
            ));
        }
        if self.store.url.is_none() && self.store.password_file.is_some() {
            return Err(anyhow!(
                "{}: [store] `password-file` needs `url`",
                self.path.display()
            ));
        }
        if let Some(url) = &self.store.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(anyhow!(
                "{}: [store] `url` must be a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE), not `{}`",
                self.path.display(),
                crate::store::sql::postgres::redact(url)
            ));
        }
        if let Some(admin) = &self.admin
            && admin.token.is_none() == admin.token_file.is_none()
        {
            return Err(anyhow!(
                "{}: [admin] needs exactly one of `token` and `token-file`",
                self.path.display()
            ));
        }
        if let Some(token) = self.admin.as_ref().and_then(|a| a.token.as_ref())
            && token.expose().trim().is_empty()
        {
            return Err(anyhow!(
                "{}: [admin] `token` is empty: anyone could use the admin API",
                self.path.display()
            ));
        }
        if let Some(console) = self.console.as_ref().filter(|c| c.enabled) {
            let Some(admin) = &self.admin else {
                return Err(anyhow!(
                    "{}: [console] needs [admin]: it is served on the admin address and logs in with its token",
                    self.path.display()
                ));
            };
            if !admin.listen.ip().is_loopback() && !console.allow_remote {
                return Err(anyhow!(
                    "{}: the console would be served on {}, which is not loopback: listen on 127.0.0.1 (behind a proxy) or set `allow-remote = true` in [console]",
                    self.path.display(),
                    admin.listen
                ));
            }
        }
        if let Some(webhooks) = &self.webhooks {
            if webhooks.secret.is_none() == webhooks.secret_file.is_none() {
                return Err(anyhow!(
                    "{}: [webhooks] needs exactly one of `secret` and `secret-file`",
                    self.path.display()
                ));
            }
            if webhooks
                .secret
                .as_ref()
                .is_some_and(|s| s.expose().trim().is_empty())
            {
                return Err(anyhow!(
                    "{}: [webhooks] `secret` is empty: anyone could sign notifications",
                    self.path.display()
                ));
            }
            if self.listen.is_none() {
                return Err(anyhow!(
                    "{}: [webhooks] are served on the node-to-node address: the node needs `listen = \"ADDRESS:PORT\"` at the top of the file",
                    self.path.display()
                ));
            }
        }
        let mut seen = Vec::new();
        for connection in &self.connections {
            let name = connection.name.get_ref();
            let at = |message: String| self.error_at(connection.name.span(), message);
            if seen.contains(&name) {
                return Err(at(format!("connection `{name}` is defined twice")));
            }
            seen.push(name);
            if connection.remote_instance == *self.instance.get_ref() {
                return Err(at(format!(
                    "connection `{name}`: `remote-instance` is this node's own instance"
                )));
            }
            if connection.secret.is_none() == connection.secret_file.is_none() {
                return Err(at(format!(
                    "connection `{name}` needs exactly one of `secret` and `secret-file`"
                )));
            }
            if connection
                .secret
                .as_ref()
                .is_some_and(|s| s.expose().trim().is_empty())
            {
                return Err(at(format!(
                    "connection `{name}`: `secret` is empty: anyone could sign messages"
                )));
            }
            if let Some(url) = &connection.remote_url
                && let Err(why) = check_url(url)
            {
                return Err(at(format!(
                    "connection `{name}`: `remote-url = \"{url}\"` {why}"
                )));
            }
            let sends = connection.direction != Flow::ReceiveOnly;
            let receives = connection.direction != Flow::SendOnly;
            if sends && connection.outgoing.is_none() {
                return Err(at(format!(
                    "connection `{name}` sends, so it needs `outgoing = \"PROCESSOR\"`"
                )));
            }
            if receives && connection.incoming.is_none() {
                return Err(at(format!(
                    "connection `{name}` receives, so it needs `incoming = \"PROCESSOR\"`"
                )));
            }
            if sends && connection.remote_url.is_none() {
                return Err(at(format!(
                    "connection `{name}` sends, so it needs `remote-url = \"http://HOST:PORT\"`"
                )));
            }
            if receives && self.listen.is_none() {
                return Err(at(format!(
                    "connection `{name}` receives, so the node needs `listen = \"ADDRESS:PORT\"` at the top of the file"
                )));
            }
        }
        Ok(())
    }

    /// What is allowed but probably not meant, for `serve` to log at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(admin) = &self.admin
            && !admin.listen.ip().is_loopback()
        {
            warnings.push(format!(
                "the admin API listens on {}, not on a loopback address: whoever reaches it \
                 and has the token controls this node{}",
                admin.listen,
                if self.tls.is_some() {
                    ""
                } else {
                    ", and without [tls] the token crosses the network in clear"
                }
            ));
        }
        warnings
    }

    /// The shared secret of a connection, from the file or the secret file.
    /// The store's PostgreSQL password, if it is not in the URL: from `password-file`,
    /// else from `TWINSYNC_STORE_PASSWORD`.
    pub fn store_password(&self) -> Result<Option<Secret>> {
        if let Some(file) = &self.store.password_file {
            return Secret::from_file(&self.resolve(file)).map(Some);
        }
        Ok(std::env::var(STORE_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .map(Secret::new))
    }

    pub fn secret(&self, connection: &ConnectionConfig) -> Result<Secret> {
        match (&connection.secret, &connection.secret_file) {
            (Some(secret), _) => Ok(secret.clone()),
            (None, Some(file)) => Secret::from_file(&self.resolve(file)),
            (None, None) => unreachable!("checked when loading"),
        }
    }

    /// The secret that signs the tracker's change notifications, if it sends them.
    pub fn webhook_secret(&self) -> Result<Option<Secret>> {
        let Some(webhooks) = &self.webhooks else {
            return Ok(None);
        };
        match (&webhooks.secret, &webhooks.secret_file) {
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(file)) => Secret::from_file(&self.resolve(file)).map(Some),
            (None, None) => unreachable!("checked when loading"),
        }
    }

    /// Whether `serve` reads the tracker's change feed: unless the tracker sends webhooks
    /// (and the configuration does not ask for both).
    pub fn poll_tracker(&self) -> bool {
        self.webhooks.as_ref().is_none_or(|w| w.poll_tracker)
    }

    /// The admin token, from the file or the token file.
    pub fn admin_token(&self) -> Result<Option<Secret>> {
        let Some(admin) = &self.admin else {
            return Ok(None);
        };
        match (&admin.token, &admin.token_file) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, Some(file)) => Secret::from_file(&self.resolve(file)).map(Some),
            (None, None) => unreachable!("checked when loading"),
        }
    }
}

/// Why `url` cannot be the other node's base URL (`http://HOST:PORT` or `https://...`).
fn check_url(url: &str) -> Result<(), String> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| format!("is not a URL ({e}); expected http://HOST:PORT"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("is not an http:// or https:// URL".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if uri.query().is_some() {
        return Err("has a query; give the base URL only".into());
    }
    Ok(())
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig> {
        NodeConfig::parse(Path::new("node.toml"), text)
    }

    #[test]
    fn the_example_is_valid() {
        let config = parse(EXAMPLE).unwrap();
        assert_eq!(config.instance.get_ref(), "Internal");
        assert_eq!(config.connections.len(), 1);
    }

    #[test]
    fn tenants_share_workers_and_the_removed_max_parallel_calls_is_refused_with_the_reason() {
        let node = "instance = \"A\"\n";
        let config = parse(&format!(
            "{node}[tenants]\nworkers = 3\nworkers-per-tenant = 2\n"
        ))
        .unwrap();
        assert_eq!(
            (config.tenants.workers, config.tenants.workers_per_tenant),
            (Some(3), 2)
        );
        let old = parse(&format!("{node}\n[tenants]\nmax-parallel-calls = 64\n")).unwrap_err();
        let shown = old.to_string();
        assert!(
            shown.starts_with("node.toml:4: [tenants] max-parallel-calls is no longer used")
                && shown.contains("remove the line"),
            "{shown}"
        );
        let none = parse(&format!("{node}[tenants]\nworkers-per-tenant = 0\n")).unwrap_err();
        assert!(none.to_string().contains("at least 1"), "{none}");
    }

    #[test]
    fn a_postgres_password_file_needs_a_postgres_url() {
        let tracker = "instance = \"A\"\n[tracker]\nkind = \"reference\"\n";
        let error = parse(&format!("{tracker}postgres-password-file = \"pw\"\n")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`postgres-password-file` needs `postgres-url`"),
            "{error}"
        );
        let config = parse(&format!(
            "{tracker}postgres-url = \"postgres://u@h/db\"\npostgres-password-file = \"pw\"\n"
        ))
        .unwrap();
        assert!(matches!(
            config.tracker,
            TrackerConfig::Reference {
                postgres_url: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn verification_runs_every_ten_minutes_unless_configured_and_conflicts_default_to_last_writer_wins()
     {
        let minimal = "instance = \"A\"\nlisten = \"127.0.0.1:1\"\n\n[[connection]]\nname = \"a-b\"\nremote-instance = \"B\"\nincoming = \"mirror\"\noutgoing = \"mirror\"\nremote-url = \"http://127.0.0.1:2\"\nsecret = \"s\"\n";
        let config = parse(minimal).unwrap();
        assert_eq!(
            config.verify_interval(),
            Some(std::time::Duration::from_secs(600))
        );
        assert_eq!(
            config.connections[0].conflicts.default,
            crate::runtime::ConflictPolicy::LastWriterWins
        );
        let off = parse(&minimal.replace("listen", "verify-interval-minutes = 0\nlisten")).unwrap();
        assert_eq!(off.verify_interval(), None);
    }

    #[test]
    fn webhooks_need_a_secret_and_the_listen_address_and_stop_the_polling() {
        let node = "instance = \"A\"\n";
        let listening = "instance = \"A\"\nlisten = \"127.0.0.1:1\"\n";
        assert!(parse(node).unwrap().poll_tracker());
        let config = parse(&format!("{listening}[webhooks]\nsecret = \"w\"\n")).unwrap();
        assert!(!config.poll_tracker());
        assert_eq!(
            config
                .webhook_secret()
                .unwrap()
                .map(|s| s.expose().to_string()),
            Some("w".into())
        );
        let both = parse(&format!(
            "{listening}[webhooks]\nsecret = \"w\"\npoll-tracker = true\n"
        ))
        .unwrap();
        assert!(both.poll_tracker());
        for (text, expected) in [
            (
                format!("{listening}[webhooks]\n"),
                "node.toml: [webhooks] needs exactly one of `secret` and `secret-file`",
            ),
            (
                format!("{listening}[webhooks]\nsecret = \" \"\n"),
                "node.toml: [webhooks] `secret` is empty: anyone could sign notifications",
            ),
            (
                format!("{node}[webhooks]\nsecret = \"w\"\n"),
                "node.toml: [webhooks] are served on the node-to-node address: the node needs `listen = \"ADDRESS:PORT\"` at the top of the file",
            ),
        ] {
            assert_eq!(parse(&text).unwrap_err().to_string(), expected, "{text}");
        }
    }

    #[test]
    fn errors_name_the_file_the_line_and_what_is_expected() {
        let error = parse("instance = \"A\"\nlisten = 12\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("node.toml:2: "), "{error}");
        assert!(error.contains("invalid type"), "{error}");

        let error = parse("instance = \"A\"\nlisen = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("node.toml:2: unknown field `lisen`"),
            "{error}"
        );

        let text = "instance = \"A\"\nlisten = \"127.0.0.1:1\"\n\n[[connection]]\nname = \"a-b\"\nremote-instance = \"B\"\nincoming = \"mirror\"\noutgoing = \"mirror\"\nremote-url = \"http://127.0.0.1:2\"\n";
        let error = parse(text).unwrap_err().to_string();
        assert_eq!(
            error,
            "node.toml:5: connection `a-b` needs exactly one of `secret` and `secret-file`"
        );
    }

    /// A node with connection `a-b` whose lines are `extra`, and `admin` appended.
    fn with(extra: &str, admin: &str) -> Result<NodeConfig> {
        parse(&format!(
            "instance = \"A\"\nlisten = \"127.0.0.1:1\"\n\n[[connection]]\nname = \"a-b\"\n\
             remote-instance = \"B\"\nincoming = \"mirror\"\noutgoing = \"mirror\"\n{extra}\n{admin}"
        ))
    }

    #[test]
    fn configuration_that_cannot_work_does_not_load() {
        let good_url = "remote-url = \"http://127.0.0.1:2\"";
        let secret = "secret = \"s\"";
        with(&format!("{good_url}\n{secret}"), "").unwrap();
        for (extra, expected) in [
            (
                format!("remote-url = \"not a url\"\n{secret}"),
                "node.toml:5: connection `a-b`: `remote-url = \"not a url\"` is not a URL",
            ),
            (
                format!("remote-url = \"localhost:7402\"\n{secret}"),
                "is not an http:// or https:// URL",
            ),
            (
                format!("remote-url = \"ftp://host/x\"\n{secret}"),
                "is not an http:// or https:// URL",
            ),
            (
                format!("{good_url}\nsecret = \"\""),
                "node.toml:5: connection `a-b`: `secret` is empty",
            ),
            (format!("{good_url}\nsecret = \"  \""), "`secret` is empty"),
        ] {
            let error = with(&extra, "").unwrap_err().to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
        let error = with(
            &format!("{good_url}\n{secret}"),
            "[admin]\nlisten = \"127.0.0.1:3\"\ntoken = \"\"",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("[admin] `token` is empty"), "{error}");
    }

    #[test]
    fn an_admin_api_off_loopback_is_warned_about() {
        let node = |listen: &str| {
            with(
                "remote-url = \"http://127.0.0.1:2\"\nsecret = \"s\"",
                &format!("[admin]\nlisten = \"{listen}\"\ntoken = \"t\""),
            )
            .unwrap()
        };
        assert_eq!(node("127.0.0.1:3").warnings(), Vec::<String>::new());
        assert_eq!(node("[::1]:3").warnings(), Vec::<String>::new());
        let warnings = node("0.0.0.0:3").warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("not on a loopback address"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("without [tls]"), "{warnings:?}");
    }

    #[test]
    fn the_console_needs_the_admin_listener_on_loopback() {
        let node = |admin: &str, console: &str| format!("instance = \"A\"\n{admin}\n{console}");
        let admin = |listen: &str| format!("[admin]\nlisten = \"{listen}\"\ntoken = \"t\"\n");
        let on = "[console]\nenabled = true\n";
        let error = parse(&node("", on)).unwrap_err().to_string();
        assert!(error.contains("[console] needs [admin]"), "{error}");
        let error = parse(&node(&admin("0.0.0.0:7501"), on))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not loopback"), "{error}");
        let remote = "[console]\nenabled = true\nallow-remote = true\n";
        assert!(parse(&node(&admin("0.0.0.0:7501"), remote)).is_ok());
        let config = parse(&node(&admin("127.0.0.1:7501"), on)).unwrap();
        assert!(
            config
                .console
                .is_some_and(|c| c.enabled && !c.secure_cookie)
        );
        // Off, the console asks nothing of the admin listener.
        assert!(
            parse(&node(
                &admin("0.0.0.0:7501"),
                "[console]\nenabled = false\n"
            ))
            .is_ok()
        );
    }
}
