//! `twinsync tenants`: the tenant registry of a serve data directory (`DATA_DIR/tenants.db`).
//! A running `serve` applies what these commands change within a second; tokens are shown
//! once, when made, and kept only as their SHA-256.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use twinsync::config::NodeConfig;
use twinsync::tenants::registry::{Entry, Registry};
use twinsync::tenants::{TenantSpec, processors, token};

use super::NodeArgs;

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// The registered tenants: name, instance, connections, revision.
    List {
        #[command(flatten)]
        node: NodeArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register a tenant and print its admin token (shown this once). A running `serve`
    /// starts it within a second.
    Add(SpecArgs),
    /// Replace a tenant's spec (same name): a running `serve` restarts it with the new one.
    Change(SpecArgs),
    /// One tenant's spec (secrets hidden), revision and times.
    Show {
        #[command(flatten)]
        node: NodeArgs,
        name: String,
    },
    /// Forget a tenant: a running `serve` stops it. Its directory
    /// (`DATA_DIR/tenants/NAME`) stays; adding it again resumes where it stopped.
    Remove {
        #[command(flatten)]
        node: NodeArgs,
        name: String,
    },
    /// Make a new admin token for a tenant and print it (shown this once); the old one
    /// stops working.
    Token {
        #[command(flatten)]
        node: NodeArgs,
        name: String,
    },
}

/// A tenant's spec: a JSON file (`--spec`), or a tenant without connections from flags.
#[derive(Args)]
pub struct SpecArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The spec as JSON (`-` for stdin): `{"name": "acme", "instance": "Acme",
    /// "tracker": {"kind": "reference", "project": "ACME"}, "connections": [{"name": "...",
    /// "remote-instance": "...", "remote-url": "http://...", "secret": "...", "incoming":
    /// "mirror", "outgoing": "plugin:NAME@VERSION"}]}`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "instance", "project"])]
    spec: Option<PathBuf>,
    /// The tenant's name (letters, digits, `-`, `_`), without `--spec`.
    #[arg(required_unless_present = "spec")]
    name: Option<String>,
    /// Its tracker instance, as the other side names it.
    #[arg(long, required_unless_present = "spec")]
    instance: Option<String>,
    /// Key prefix of its reference tracker's issues.
    #[arg(long, default_value = "TS")]
    project: String,
}

pub fn run(command: TenantsCommand) -> Result<()> {
    match command {
        TenantsCommand::List { node, json } => {
            let (_, registry) = open(&node)?;
            let all = registry.list()?;
            if json {
                let shown: Vec<_> = all.iter().map(shown).collect();
                outln!("{}", serde_json::to_string_pretty(&shown)?)?;
                return Ok(());
            }
            if all.is_empty() {
                outln!("no tenants (add one with `twinsync tenants add`)")?;
            }
            for e in &all {
                let connections: Vec<&str> =
                    e.spec.connections.iter().map(|c| c.name.as_str()).collect();
                outln!(
                    "{:<24} {:<24} revision {:<4} connections: {}",
                    e.spec.name,
                    e.spec.instance,
                    e.revision,
                    if connections.is_empty() {
                        "-".to_string()
                    } else {
                        connections.join(", ")
                    }
                )?;
            }
            Ok(())
        }
        TenantsCommand::Add(args) => {
            let (config, registry) = open(&args.node)?;
            let spec = args.spec()?;
            check(&config, &spec)?;
            let token = token::new_token();
            registry.add(&spec, &token::hash(&token))?;
            outln!(
                "tenant `{}` added; a running serve starts it within a second. Its admin token, shown this once:\n{token}",
                spec.name
            )?;
            Ok(())
        }
        TenantsCommand::Change(args) => {
            let (config, registry) = open(&args.node)?;
            let spec = args.spec()?;
            check(&config, &spec)?;
            let Some(entry) = registry.replace(&spec)? else {
                bail!("no tenant `{}` (see `twinsync tenants list`)", spec.name);
            };
            outln!(
                "tenant `{}` changed (revision {}); a running serve restarts it within a second",
                spec.name,
                entry.revision
            )?;
            Ok(())
        }
        TenantsCommand::Show { node, name } => {
            let (_, registry) = open(&node)?;
            let Some(entry) = registry.get(&name)? else {
                bail!("no tenant `{name}` (see `twinsync tenants list`)");
            };
            outln!("{}", serde_json::to_string_pretty(&shown(&entry))?)?;
            Ok(())
        }
        TenantsCommand::Remove { node, name } => {
            let (_, registry) = open(&node)?;
            if !registry.remove(&name)? {
                bail!("no tenant `{name}` (see `twinsync tenants list`)");
            }
            outln!(
                "tenant `{name}` removed; a running serve stops it within a second (its directory stays)"
            )?;
            Ok(())
        }
        TenantsCommand::Token { node, name } => {
            let (_, registry) = open(&node)?;
            let token = token::new_token();
            if !registry.set_token(&name, &token::hash(&token))? {
                bail!("no tenant `{name}` (see `twinsync tenants list`)");
            }
            outln!(
                "a new admin token for `{name}`, shown this once (the old one stops working within a second):\n{token}"
            )?;
            Ok(())
        }
    }
}

impl SpecArgs {
    fn spec(&self) -> Result<TenantSpec> {
        let Some(path) = &self.spec else {
            let spec = serde_json::json!({
                "name": self.name,
                "instance": self.instance,
                "tracker": {"kind": "reference", "project": self.project},
            });
            return TenantSpec::from_json(spec.to_string().as_bytes());
        };
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read the spec from stdin")?
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        TenantSpec::from_json(text.as_bytes()).with_context(|| format!("{}", path.display()))
    }
}

fn open(node: &NodeArgs) -> Result<(NodeConfig, Registry)> {
    let config = NodeConfig::load(&node.config)?;
    let registry = Registry::of_node(&config)?;
    Ok((config, registry))
}

fn check(config: &NodeConfig, spec: &TenantSpec) -> Result<()> {
    let store = twinsync::setup::open_store(config)?;
    processors::check(spec, config.instance.get_ref(), &store, &config.data_dir())
}

fn shown(entry: &Entry) -> serde_json::Value {
    serde_json::json!({
        "name": entry.spec.name,
        "spec": entry.spec.redacted(),
        "revision": entry.revision,
        "created_ms": entry.created_ms,
        "updated_ms": entry.updated_ms,
    })
}
