//! What a tenant is made of, as the admin API (`POST /v1/tenants`, JSON) and the CLI give
//! it, and the checks made before it is stored: a registry entry that cannot start is
//! refused with the reason, not found broken later.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runtime::Limits;
use crate::sync::{Flow, Policies};

/// A tenant: a node with its own tracker instance, database and connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TenantSpec {
    /// Letters, digits, `-` and `_` (it names the tenant's directory, `DATA_DIR/tenants/NAME`).
    pub name: String,
    /// The tracker instance its node is, as the other side names it.
    pub instance: String,
    #[serde(default)]
    pub tracker: TrackerSpec,
    #[serde(default)]
    pub connections: Vec<ConnectionSpec>,
    /// The secret its tracker signs change notifications with (`POST /t/NAME/v1/changes`,
    /// signed like `POST /v1/changes`, see `webhooks`); without it, that route is 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// What it may use; past a quota its events wait (see `GET /v1/queue`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSpec>,
}

/// A tenant's quotas, as `embed::Quota` (each optional): `events-per-second`,
/// `fuel-per-second` (about one unit per WebAssembly instruction), `stored-bytes` (its
/// database and log on disk).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuotaSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
}

impl QuotaSpec {
    fn check(&self, tenant: &str) -> Result<()> {
        if let Some(rate) = self.events_per_second
            && !(rate.is_finite() && rate > 0.0 && rate <= 1e9)
        {
            bail!(
                "tenant `{tenant}`: quota `events-per-second` must be more than 0 (and at most 1e9), not {rate}"
            );
        }
        if self.fuel_per_second == Some(0) || self.stored_bytes == Some(0) {
            bail!(
                "tenant `{tenant}`: quotas `fuel-per-second` and `stored-bytes` must be more than 0"
            );
        }
        Ok(())
    }

    /// The host's form.
    pub fn quota(&self) -> crate::embed::Quota {
        crate::embed::Quota {
            events_per_second: self.events_per_second,
            fuel_per_second: self.fuel_per_second,
            stored_bytes: self.stored_bytes,
        }
    }
}

/// Which tracker a tenant syncs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TrackerSpec {
    /// The reference tracker, in `DATA_DIR/tenants/NAME/tracker.db`.
    Reference {
        /// Key prefix of new issues.
        #[serde(default = "default_project")]
        project: String,
    },
    /// A project of a Redmine, through its REST API.
    Redmine(RedmineSpec),
}

/// A tenant's Redmine: as `[tracker] kind = "redmine"` in a node's file, with the API key
/// itself (the registry is readable by its owner only, and never shows it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedmineSpec {
    /// Redmine's root address, like `https://redmine.example.com`.
    pub url: String,
    /// The API key of the Redmine user twinsync writes as.
    pub api_key: String,
    /// The project's identifier, as in `/projects/IDENTIFIER`.
    pub project: String,
    /// The issue custom field (format Text) where twinsync records its sync events.
    #[serde(default = "default_event_field")]
    pub event_field: String,
    /// How often Redmine is asked for changes, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

fn default_event_field() -> String {
    crate::tracker::DEFAULT_EVENT_FIELD.to_string()
}

fn default_poll_interval_ms() -> u64 {
    2_000
}

impl RedmineSpec {
    /// The settings to connect with.
    pub fn settings(&self) -> crate::tracker::RedmineSettings {
        crate::tracker::RedmineSettings {
            url: self.url.clone(),
            api_key: crate::config::Secret::new(self.api_key.clone()),
            project: self.project.clone(),
            event_field: self.event_field.clone(),
            poll_interval: std::time::Duration::from_millis(self.poll_interval_ms),
        }
    }

    fn check(&self, tenant: &str) -> Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://"))
            || self.url.len() > 2048
        {
            bail!("tenant `{tenant}`: the Redmine `url` must start with http:// or https://");
        }
        if self.api_key.trim().is_empty() {
            bail!("tenant `{tenant}`: the Redmine `api-key` is empty");
        }
        check_label("Redmine project", &self.project)
            .and_then(|()| check_label("Redmine event field", &self.event_field))
            .map_err(|e| e.context(format!("tenant `{tenant}`")))?;
        if self.poll_interval_ms > 3_600_000 {
            bail!("tenant `{tenant}`: `poll-interval-ms` is more than an hour");
        }
        Ok(())
    }
}

impl Default for TrackerSpec {
    fn default() -> Self {
        TrackerSpec::Reference {
            project: default_project(),
        }
    }
}

fn default_project() -> String {
    "TS".into()
}

/// One connection of a tenant: to another tenant of this host (by instance), or to another
/// node over HTTP (`remote-url`, signed with `secret`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConnectionSpec {
    pub name: String,
    pub remote_instance: String,
    /// Where the other node listens (`http(s)://host:port`); the tenant sends there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
    /// The shared secret of the node-to-node protocol (needed with `remote-url`, and to take
    /// messages at `/t/TENANT/v1/messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default = "bidirectional")]
    pub direction: Flow,
    /// A built-in processor (`mirror`, `remote-key`, `status-guard`) or `plugin:NAME@VERSION`
    /// from the serve node's plugin store. Default: `mirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub conflicts: Policies,
}

fn bidirectional() -> Flow {
    Flow::Bidirectional
}

/// Connections one tenant may have: each has its loops and, with a URL, a sender thread.
pub const MAX_CONNECTIONS: usize = 64;

/// A processor as a spec names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessorRef<'a> {
    Builtin(&'a str),
    Plugin { name: &'a str, version: &'a str },
}

impl<'a> ProcessorRef<'a> {
    pub fn parse(spec: &'a str) -> Result<Self> {
        if let Some(id) = spec.strip_prefix("plugin:") {
            let (name, version) = crate::plugins::manage::parse_id(id)?;
            return Ok(ProcessorRef::Plugin { name, version });
        }
        if crate::builtin::get(spec).is_none() {
            let all: Vec<&str> = crate::builtin::ALL.iter().map(|(n, _)| *n).collect();
            bail!(
                "processor `{spec}`: give a built-in one ({}) or `plugin:NAME@VERSION` from the plugin store",
                all.join(", ")
            );
        }
        Ok(ProcessorRef::Builtin(spec))
    }
}

/// A tenant's name names its directory: the embedded host's rule, checked before the spec
/// is stored.
pub fn check_name(name: &str) -> Result<()> {
    crate::embed::check_name(name)
}

/// Names that appear in ids, logs and messages: printable, bounded.
fn check_label(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        bail!("{what} `{value}`: use 1 to 128 printable characters");
    }
    Ok(())
}

impl TenantSpec {
    /// Parse a spec from JSON: unknown fields and wrong types are refused with the reason.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        let spec: TenantSpec = serde_json::from_slice(body).map_err(|e| {
            anyhow::anyhow!(
                "expected {{\"name\": ..., \"instance\": ..., \"tracker\": {{\"kind\": \"reference\", \"project\": ...}}, \"connections\": [...]}}: {e}"
            )
        })?;
        Ok(spec)
    }

    /// Everything that can be checked without the registry; `host_instance` is serve's own
    /// node, which no tenant may claim to be.
    pub fn check(&self, host_instance: &str) -> Result<()> {
        check_name(&self.name)?;
        check_label("instance", &self.instance)?;
        if self.instance == host_instance {
            bail!(
                "tenant `{}`: instance `{}` is the serving node's own",
                self.name,
                self.instance
            );
        }
        match &self.tracker {
            TrackerSpec::Reference { project } => {
                let project_ok = !project.is_empty()
                    && project.len() <= 16
                    && project.bytes().all(|b| b.is_ascii_alphanumeric());
                if !project_ok {
                    bail!(
                        "tenant `{}`: project `{project}`: use 1 to 16 letters and digits",
                        self.name
                    );
                }
            }
            TrackerSpec::Redmine(redmine) => redmine.check(&self.name)?,
        }
        if self.connections.len() > MAX_CONNECTIONS {
            bail!(
                "tenant `{}`: {} connections, at most {MAX_CONNECTIONS}",
                self.name,
                self.connections.len()
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.connections {
            let context = |e: anyhow::Error| e.context(format!("tenant `{}`", self.name));
            check_label("connection", &c.name).map_err(context)?;
            check_label("remote instance", &c.remote_instance).map_err(context)?;
            if !names.insert(c.name.as_str()) {
                bail!("tenant `{}`: two connections `{}`", self.name, c.name);
            }
            if c.remote_instance == self.instance {
                bail!(
                    "tenant `{}`: connection `{}` leads to its own instance",
                    self.name,
                    c.name
                );
            }
            if let Some(url) = &c.remote_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048
                {
                    bail!(
                        "tenant `{}`: connection `{}`: remote-url `{url}` is not an http(s) URL",
                        self.name,
                        c.name
                    );
                }
                if c.secret.is_none() {
                    bail!(
                        "tenant `{}`: connection `{}` has a remote-url but no secret to sign with",
                        self.name,
                        c.name
                    );
                }
            }
            if let Some(secret) = &c.secret
                && secret.trim().is_empty()
            {
                bail!(
                    "tenant `{}`: connection `{}`: the secret is empty",
                    self.name,
                    c.name
                );
            }
            for processor in [&c.incoming, &c.outgoing].into_iter().flatten() {
                ProcessorRef::parse(processor).map_err(|e| {
                    e.context(format!("tenant `{}`: connection `{}`", self.name, c.name))
                })?;
            }
        }
        if let Some(secret) = &self.webhook_secret
            && secret.trim().is_empty()
        {
            bail!("tenant `{}`: the webhook secret is empty", self.name);
        }
        if let Some(quota) = &self.quota {
            quota.check(&self.name)?;
        }
        Ok(())
    }

    /// The spec as shown to operators: secrets are replaced by `"(set)"`.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if value.get("webhook-secret").is_some() {
            value["webhook-secret"] = Value::from("(set)");
        }
        if value["tracker"].get("api-key").is_some() {
            value["tracker"]["api-key"] = Value::from("(set)");
        }
        if let Some(connections) = value["connections"].as_array_mut() {
            for c in connections {
                if c.get("secret").is_some() {
                    c["secret"] = Value::from("(set)");
                }
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<TenantSpec> {
        let spec = TenantSpec::from_json(json.as_bytes())?;
        spec.check("Host")?;
        Ok(spec)
    }

    #[test]
    fn specs_are_checked_with_clear_errors() {
        assert!(spec(r#"{"name": "acme", "instance": "Acme"}"#).is_ok());
        let error = |json| format!("{:#}", spec(json).unwrap_err());
        assert!(error(r#"{"name": "../x", "instance": "A"}"#).contains("use 1 to 64 letters"));
        assert!(error(r#"{"name": "a", "instance": "Host"}"#).contains("serving node's own"));
        assert!(error(r#"{"name": "a", "instance": ""}"#).contains("instance ``"));
        assert!(error(r#"{"name": "a", "instance": "A", "colour": 1}"#).contains("colour"));
        assert!(
            error(
                r#"{"name": "a", "instance": "A", "connections": [{"name": "c", "remote-instance": "B", "remote-url": "ftp://x", "secret": "s"}]}"#
            )
            .contains("not an http(s) URL")
        );
        assert!(
            error(
                r#"{"name": "a", "instance": "A", "connections": [{"name": "c", "remote-instance": "B", "incoming": "nope"}]}"#
            )
            .contains("plugin:NAME@VERSION")
        );
        assert!(
            error(
                r#"{"name": "a", "instance": "A", "connections": [{"name": "c", "remote-instance": "B", "remote-url": "http://x"}]}"#
            )
            .contains("no secret")
        );
        assert!(
            error(r#"{"name": "a", "instance": "A", "tracker": {"kind": "redmine", "url": "redmine", "api-key": "k", "project": "p"}}"#)
                .contains("http:// or https://")
        );
        assert!(
            error(r#"{"name": "a", "instance": "A", "tracker": {"kind": "redmine", "url": "http://r", "api-key": " ", "project": "p"}}"#)
                .contains("api-key` is empty")
        );
        assert!(
            error(r#"{"name": "a", "instance": "A", "tracker": {"kind": "redmine", "url": "http://r", "project": "p"}}"#)
                .contains("api-key")
        );
        assert!(
            spec(r#"{"name": "a", "instance": "A", "quota": {"events-per-second": 0.5, "fuel-per-second": 1000, "stored-bytes": 1048576}}"#)
                .is_ok()
        );
        assert!(
            error(r#"{"name": "a", "instance": "A", "quota": {"events-per-second": 0}}"#)
                .contains("`events-per-second` must be more than 0")
        );
        assert!(
            error(r#"{"name": "a", "instance": "A", "quota": {"events-per-second": -3}}"#)
                .contains("must be more than 0")
        );
        assert!(
            error(r#"{"name": "a", "instance": "A", "quota": {"stored-bytes": 0}}"#)
                .contains("must be more than 0")
        );
        let negative = error(r#"{"name": "a", "instance": "A", "quota": {"stored-bytes": -1}}"#);
        assert!(
            negative.contains("invalid value: integer `-1`"),
            "{negative}"
        );
        assert!(error(r#"{"name": "a", "instance": "A", "quota": {"cpu": 1}}"#).contains("cpu"));
    }

    #[test]
    fn secrets_are_not_shown() {
        let spec = spec(
            r#"{"name": "a", "instance": "A", "connections": [{"name": "c", "remote-instance": "B", "secret": "hush"}],
                "tracker": {"kind": "redmine", "url": "http://r", "api-key": "quiet", "project": "p"}}"#,
        )
        .unwrap();
        let shown = spec.redacted().to_string();
        assert!(
            !shown.contains("hush") && !shown.contains("quiet"),
            "{shown}"
        );
    }
}
