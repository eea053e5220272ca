//! `twinsync plugin ...`: look at processor components and try them before installing;
//! package them; manage a node's plugin store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;
use twinsync::model::Issue;
use twinsync::plugins::check::{self, DryRun};
use twinsync::plugins::manifest::{self, Manifest};
use twinsync::plugins::store::{self as plugin_store, Side};
use twinsync::plugins::trial::{DEFAULT_LAST, Pick, Trial};
use twinsync::plugins::{manage, scaffold};
use twinsync::runtime::{Plugin, Runtime, RuntimeConfig};
use twinsync::setup::open_node;

use super::NodeArgs;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Show which worlds a component implements, what it imports, and its manifest.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate a component before installing it: worlds, imports, size, manifest, whether
    /// it compiles, and a dry run of each processor it exports on a sample issue, under the
    /// default limits. Exits with an error if anything fails.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The sample issue, as JSON (the fields of the WIT `issue`, snake_case). Default: a
        /// realistic built-in issue with 10 custom fields and 20 comments.
        #[arg(long, value_name = "ISSUE.json")]
        sample: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a package: the component with its manifest (`plugin.toml`) inside, as a
    /// custom section. The component itself is unchanged.
    Pack {
        /// The component built for wasm32-wasip2.
        file: PathBuf,
        /// The manifest: name, vendor, version, description, contract, worlds, limits,
        /// homepage.
        #[arg(long, value_name = "plugin.toml")]
        manifest: PathBuf,
        /// Where to write the package.
        #[arg(long, short, value_name = "OUT.wasm")]
        output: PathBuf,
    },
    /// Write a new plugin project that builds with one command and passes `plugin check`.
    New {
        /// The plugin's name (lower-case letters, digits and `-`); also the directory.
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: scaffold::Lang,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Check a package and add it to the node's plugin store, pinned by its sha256.
    Install {
        #[command(flatten)]
        node: NodeArgs,
        file: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// The installed packages and which connection sides use them.
    List {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        json: bool,
    },
    /// Run an installed version on one side of a connection.
    Use {
        #[command(flatten)]
        node: NodeArgs,
        /// NAME@VERSION
        plugin: String,
        #[arg(long)]
        connection: String,
        #[arg(long, value_enum)]
        side: Side,
        /// A setting of the plugin for this side, over its manifest's default (repeat).
        #[arg(long, value_name = "NAME=VALUE")]
        setting: Vec<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Move every side running a plugin to its highest installed version (or `--to`).
    Upgrade {
        #[command(flatten)]
        node: NodeArgs,
        name: String,
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Put a connection's sides back on the version they ran before their last change.
    Rollback {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        connection: String,
        /// Only this side (default: both).
        #[arg(long, value_enum)]
        side: Option<Side>,
        #[command(flatten)]
        who: Who,
    },
    /// Remove an installed version; refused while a connection uses it.
    Remove {
        #[command(flatten)]
        node: NodeArgs,
        /// NAME@VERSION
        plugin: String,
        #[command(flatten)]
        who: Who,
    },
    /// Every change to the plugin store: what, who, when.
    History {
        #[command(flatten)]
        node: NodeArgs,
        #[arg(long)]
        json: bool,
    },
    /// Run a candidate on a connection's recorded events next to the live plugin, and show
    /// per event what it would do differently. Nothing is written.
    Try {
        #[command(flatten)]
        node: NodeArgs,
        /// The candidate (`.wasm`), or NAME@VERSION of an installed one.
        candidate: String,
        #[arg(long)]
        connection: String,
        /// The last N incoming and outgoing events of the connection.
        #[arg(long, default_value_t = DEFAULT_LAST, conflicts_with = "event")]
        last: usize,
        /// These events instead (repeat the flag).
        #[arg(long, value_name = "ID")]
        event: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Who makes a change, for the store's history.
#[derive(clap::Args)]
pub struct Who {
    /// Recorded as the author of the change (default: the user running the command).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

impl Who {
    fn name(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "unknown".into())
    }
}

pub fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let runtime = cached_runtime()?;
            let plugin = match load(&runtime, &file) {
                Ok(plugin) => plugin,
                Err(error) => return inspect_refused(&runtime, &file, error, json),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&plugin.info)?);
            } else {
                print!("{}", plugin.info);
            }
            Ok(())
        }
        PluginCommand::Check { file, sample, json } => check(&file, sample.as_deref(), json),
        PluginCommand::Pack {
            file,
            manifest,
            output,
        } => pack(&file, &manifest, &output),
        PluginCommand::New { name, lang, dir } => {
            let path = scaffold::write(&dir, &name, lang)?;
            println!("created {}", path.display());
            println!("build it with: {}", scaffold::build_command(lang));
            Ok(())
        }
        PluginCommand::Install { node, file, who } => {
            let opened = open_node(&super::operate::config(&node)?)?;
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = file.display().to_string();
            let installed = manage::install(&opened.node, &name, &wasm, &who.name())?;
            let state = if installed.new {
                "installed"
            } else {
                "already installed"
            };
            println!(
                "{}@{} {state} (sha256 {})",
                installed.name, installed.version, installed.sha256
            );
            for run in &installed.dry_runs {
                println!(
                    "  dry run of the {} processor: ok ({} fuel)",
                    run.processor, run.fuel_used
                );
            }
            Ok(())
        }
        PluginCommand::List { node, json } => {
            let store = twinsync::setup::open_store(&super::operate::config(&node)?)?;
            let all = store.read(|db| plugin_store::all(db))?;
            if json {
                return print_json(&all);
            }
            if all.is_empty() {
                println!("no plugins installed (see `twinsync plugin install`)");
            }
            for p in all {
                let used = if p.used_by.is_empty() {
                    "not in use".to_string()
                } else {
                    format!("used by {}", p.used_by.join(", "))
                };
                println!(
                    "{}@{}  by {}  sha256 {}  {used}",
                    p.name,
                    p.version,
                    p.manifest.vendor,
                    &p.sha256[..12]
                );
            }
            Ok(())
        }
        PluginCommand::Use {
            node,
            plugin,
            connection,
            side,
            setting,
            who,
        } => {
            let opened = open_node(&super::operate::config(&node)?)?;
            let (name, version) = manage::parse_id(&plugin)?;
            let settings = manage::parse_settings(&setting)?;
            manage::use_version(
                &opened.node,
                &connection,
                side,
                name,
                version,
                &settings,
                &who.name(),
            )?;
            println!(
                "connection `{connection}` runs {plugin} for {} events; a running node switches within a second",
                side.as_str()
            );
            Ok(())
        }
        PluginCommand::Upgrade {
            node,
            name,
            to,
            who,
        } => {
            let opened = open_node(&super::operate::config(&node)?)?;
            let moved = manage::upgrade(&opened.node, &name, to.as_deref(), &who.name())?;
            if moved.is_empty() {
                println!("nothing to upgrade: no side runs another version of {name}");
            }
            for side in moved {
                println!("{side}: upgraded");
            }
            Ok(())
        }
        PluginCommand::Rollback {
            node,
            connection,
            side,
            who,
        } => {
            let opened = open_node(&super::operate::config(&node)?)?;
            for done in manage::rollback(&opened.node, &connection, side, &who.name())? {
                println!("{done}");
            }
            Ok(())
        }
        PluginCommand::Remove { node, plugin, who } => {
            let opened = open_node(&super::operate::config(&node)?)?;
            let (name, version) = manage::parse_id(&plugin)?;
            manage::remove(&opened.node, name, version, &who.name())?;
            println!("{plugin} removed");
            Ok(())
        }
        PluginCommand::History { node, json } => {
            let store = twinsync::setup::open_store(&super::operate::config(&node)?)?;
            let changes = store.read(|db| plugin_store::changes(db))?;
            if json {
                return print_json(&changes);
            }
            for c in changes {
                let at = twinsync::clock::rfc3339(twinsync::clock::from_millis(c.at));
                let what = match (&c.name, &c.version) {
                    (Some(n), Some(v)) => format!("{n}@{v}"),
                    _ => "the configuration's processor".into(),
                };
                let place = match (&c.connection, &c.side) {
                    (Some(conn), Some(side)) => format!(" on {conn}/{side}"),
                    _ => String::new(),
                };
                let before = c
                    .previous
                    .as_deref()
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default();
                println!("{at}  {}  {} {what}{place}{before}", c.by, c.action);
            }
            Ok(())
        }
        PluginCommand::Try {
            node,
            candidate,
            connection,
            last,
            event,
            json,
        } => {
            let opened = open_node(&super::operate::config(&node)?)?;
            twinsync::setup::use_plugin_store(&opened.node)?;
            let plugin = candidate_plugin(&opened.node, &candidate)?;
            let pick = if event.is_empty() {
                Pick::Last(last)
            } else {
                Pick::Events(event)
            };
            let trial = opened.node.try_plugin(&plugin, &connection, &pick)?;
            if json {
                return print_json(&trial);
            }
            print_trial(&trial);
            Ok(())
        }
    }
}

/// A component this host will not run: still show what it exports and imports, then why.
fn inspect_refused(runtime: &Runtime, file: &Path, error: anyhow::Error, json: bool) -> Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let incompatible = matches!(
        error.downcast_ref::<twinsync::runtime::PluginError>(),
        Some(twinsync::runtime::PluginError::Incompatible { .. })
    );
    if !incompatible {
        return Err(error);
    }
    let Ok((exports, imports)) = runtime.interfaces(&file.display().to_string(), &wasm) else {
        return Err(error);
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "name": file.display().to_string(),
                "size": wasm.len(),
                "sha256": twinsync::runtime::sha256_hex(&wasm),
                "exports": exports,
                "imports": imports,
                "refused": format!("{error:#}"),
            }))?
        );
    } else {
        println!("{} ({} bytes)", file.display(), wasm.len());
        println!("exports:");
        exports.iter().for_each(|name| println!("  {name}"));
        println!("imports:");
        imports.iter().for_each(|name| println!("  {name}"));
    }
    Err(error.context("this host will not run it"))
}

/// A candidate given as a file, or as NAME@VERSION of an installed package.
fn candidate_plugin(node: &twinsync::sync::Node, candidate: &str) -> Result<Arc<Plugin>> {
    let path = Path::new(candidate);
    if path.exists() || candidate.ends_with(".wasm") {
        return Ok(Arc::new(load(node.runtime(), path)?));
    }
    let (name, version) = manage::parse_id(candidate)?;
    manage::load(node, name, version)
}

fn print_trial(trial: &Trial) {
    println!(
        "{} on connection `{}`: {} events, {} would change, {} new errors; nothing was written",
        trial.candidate,
        trial.connection,
        trial.events.len(),
        trial.changed,
        trial.new_errors
    );
    for e in &trial.events {
        if let Some(why) = &e.skipped {
            println!("\n{} ({:?}): not tried: {why}", e.event, e.direction);
            continue;
        }
        println!(
            "\n{} ({:?}, {} input): live {} {} fuel {} us, candidate {} fuel {} us",
            e.event,
            e.direction,
            e.input_source,
            e.live_plugin,
            e.live.fuel_used,
            e.live.time_us,
            e.candidate.fuel_used,
            e.candidate.time_us
        );
        if e.new_error {
            println!(
                "  NEW ERROR ({}): {}",
                e.candidate.error_kind.unwrap_or("?"),
                e.candidate.error.as_deref().unwrap_or_default()
            );
        } else if let Some(error) = &e.candidate.error {
            println!("  both fail; candidate: {error}");
        } else if !e.live.ok {
            println!(
                "  fixed: the live plugin fails ({}), the candidate does not",
                e.live.error.as_deref().unwrap_or_default()
            );
        }
        if e.changes.is_empty() && e.live.ok && e.candidate.ok {
            println!("  same result");
        }
        for change in &e.changes {
            println!(
                "  {}: {} -> {}",
                change.field, change.live, change.candidate
            );
        }
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A runtime whose compiled components are cached on disk (see [`compile_cache_dir`]), so
/// that looking at the same Python or JavaScript component again does not compile it again.
pub fn cached_runtime() -> Result<Arc<Runtime>> {
    Ok(Arc::new(Runtime::new(&RuntimeConfig {
        cache_dir: compile_cache_dir(),
        ..RuntimeConfig::default()
    })?))
}

/// `TWINSYNC_CACHE_DIR`, or `$XDG_CACHE_HOME/twinsync/compiled`, or
/// `~/.cache/twinsync/compiled`; none if none is known.
pub fn compile_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TWINSYNC_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("twinsync").join("compiled"))
}

fn load(runtime: &Runtime, file: &Path) -> Result<Plugin> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(runtime.load(&file.display().to_string(), &wasm)?)
}

fn pack(file: &Path, manifest_path: &Path, output: &Path) -> Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = Manifest::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
    let packed = manifest::pack(&wasm, &manifest)
        .map_err(|e| anyhow::anyhow!("cannot pack {}: {e}", file.display()))?;
    // The package must load as what it says it is, before anyone installs it.
    let runtime = cached_runtime()?;
    runtime.load(&output.display().to_string(), &packed)?;
    std::fs::write(output, &packed)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!(
        "{} ({} bytes, sha256 {})",
        output.display(),
        packed.len(),
        twinsync::runtime::sha256_hex(&packed)
    );
    print!("{manifest}");
    Ok(())
}

#[derive(Serialize)]
struct Report {
    plugin: twinsync::runtime::PluginInfo,
    compile_time_ms: u128,
    compiled: twinsync::runtime::Compiled,
    dry_runs: Vec<DryRun>,
}

fn check(file: &Path, sample: Option<&Path>, json: bool) -> Result<()> {
    let sample: Issue = match sample {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not an issue in JSON", path.display()))?
        }
        None => check::sample(),
    };
    let runtime = cached_runtime()?;
    let plugin = load(&runtime, file)?;
    let dry_runs = check::dry_runs(&runtime, &plugin, &sample);
    let failed = dry_runs.iter().filter(|r| !r.ok).count();
    let report = Report {
        compile_time_ms: plugin.compile_time.as_millis(),
        compiled: plugin.compiled,
        plugin: plugin.info.clone(),
        dry_runs,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    anyhow::ensure!(failed == 0, "{failed} dry run(s) failed");
    Ok(())
}

fn print_report(report: &Report) {
    print!("{}", report.plugin);
    let how = match report.compiled {
        twinsync::runtime::Compiled::FromCache => "from the compile cache",
        _ => "compiled",
    };
    println!("compiles: yes ({} ms, {how})", report.compile_time_ms);
    for run in &report.dry_runs {
        let verdict = if run.ok { "ok" } else { "FAILED" };
        println!(
            "\n{} processor on the sample issue: {verdict}",
            run.processor
        );
        match (&run.result, run.ok) {
            (serde_json::Value::String(error), false) => println!("  error: {error}"),
            (serde_json::Value::Null, true) => println!("  result: nothing to send"),
            (value, _) => println!("  result: {}", summarize(value)),
        }
        println!(
            "  fuel used: {}   peak memory: {} KiB   wall time: {} us   sync back: {}",
            run.fuel_used,
            run.peak_memory_bytes / 1024,
            run.wall_time_us,
            if run.sync_back_requested {
                "requested"
            } else {
                "no"
            }
        );
        if !run.log.is_empty() {
            println!("  log:");
            for line in run.log.lines() {
                println!("    {line}");
            }
        }
    }
}

/// A one-line view of a returned issue.
fn summarize(value: &serde_json::Value) -> String {
    let text = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let count = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len)
    };
    format!(
        "\"{}\" status {}, {} comments, {} custom fields",
        text("summary"),
        text("status"),
        count("comments"),
        count("custom_fields")
    )
}
