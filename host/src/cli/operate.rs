//! Operator commands on a node's database: `exalate`, `queue`, `errors`, `events`, `twins`.
//! They work whether or not `twinsync serve` is running (SQLite lets both at it); a running
//! node picks up what they change within its poll interval.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use twinsync::config::NodeConfig;
use twinsync::ops;
use twinsync::setup::{open_node, open_store};
use twinsync::sync::Take;
use twinsync::tracker::Query;

use super::NodeArgs;

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExalateArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The connection to sync the issues over.
    #[arg(long)]
    connection: String,
    /// Select issues with a query instead of keys: `status=Open label=customer
    /// summary~login` (terms are ANDed; `*` is everything).
    #[arg(long, conflicts_with = "keys")]
    query: Option<String>,
    /// Keys of the issues to exalate.
    #[arg(required_unless_present = "query")]
    keys: Vec<String>,
}

#[derive(Args)]
pub struct UnexalateArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The connection the issues are synced over.
    #[arg(long)]
    connection: String,
    /// Keys of the local issues.
    #[arg(required = true)]
    keys: Vec<String>,
}

#[derive(Subcommand)]
pub enum ErrorsCommand {
    /// Sync errors: twin, event, reason, attempts.
    List(ListArgs),
    /// One sync error: the event's input, the processor's log.
    Show {
        #[command(flatten)]
        node: NodeArgs,
        /// The event id (see `errors list`).
        id: String,
    },
    /// Put sync errors back in the queue (after fixing the processor or the tracker).
    Retry {
        #[command(flatten)]
        node: NodeArgs,
        /// The event id; or --all.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Retry every sync error.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Drop a failed event: its twin goes on with the next one.
    Skip {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// One event: its message, processor input, log and outcome.
    Show {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
    },
    /// Run the event's processor again on its stored input and print the result and the
    /// log. Changes nothing.
    Replay {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ConflictsCommand {
    /// Fields changed on both sides and held for review: twin, field, both values.
    List(ListArgs),
    /// Keep one side's value: it is written here if needed and sent to the other side.
    Resolve {
        #[command(flatten)]
        node: NodeArgs,
        /// The conflict's id (see `conflicts list`).
        id: i64,
        /// Which value to keep.
        #[arg(long, value_enum)]
        take: Take,
    },
}

pub fn conflicts(command: ConflictsCommand) -> Result<()> {
    match command {
        ConflictsCommand::List(args) => {
            let rows = ops::conflicts(&*store(&args.node)?)?;
            if args.json {
                return print_json(&rows);
            }
            if rows.is_empty() {
                println!("no conflicts held for review");
            }
            for c in rows {
                println!(
                    "{}  {} ({})  field {}  since {}\n    local:  {}\n    remote: {}",
                    c.id,
                    c.twin,
                    c.issue.as_deref().unwrap_or("-"),
                    c.field,
                    c.since,
                    c.local_value,
                    c.remote_value
                );
            }
            Ok(())
        }
        ConflictsCommand::Resolve { node, id, take } => {
            let opened = open_node(&config(&node)?)?;
            opened.node.resolve_conflict(id, take)?;
            println!("conflict {id} settled ({take:?} value kept); a running node sends it now");
            Ok(())
        }
    }
}

pub(super) fn config(node: &NodeArgs) -> Result<NodeConfig> {
    NodeConfig::load(&node.config)
}

fn store(node: &NodeArgs) -> Result<std::sync::Arc<twinsync::store::NodeStore>> {
    open_store(&config(node)?)
}

pub fn exalate(args: &ExalateArgs) -> Result<()> {
    let config = config(&args.node)?;
    let opened = open_node(&config)?;
    let keys = match &args.query {
        Some(query) => opened.tracker.search(&Query::parse(query)?)?,
        None => args.keys.clone(),
    };
    if keys.is_empty() {
        bail!("the query selects no issue");
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(keys.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} issues  {per_sec}  eta {eta}  {msg}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut failed = Vec::new();
    for key in &keys {
        bar.set_message(key.clone());
        if let Err(error) = opened.node.exalate(&args.connection, key) {
            failed.push(format!("{key}: {error:#}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "exalated {} of {} issues over `{}`; a running node sends them now",
        keys.len() - failed.len(),
        keys.len(),
        args.connection
    );
    for failure in &failed {
        eprintln!("  not exalated: {failure}");
    }
    if !failed.is_empty() && failed.len() == keys.len() {
        bail!("no issue was exalated");
    }
    Ok(())
}

pub fn unexalate(args: &UnexalateArgs) -> Result<()> {
    let opened = open_node(&config(&args.node)?)?;
    for key in &args.keys {
        opened.node.unexalate(&args.connection, key)?;
        println!("{key}: unexalate queued behind its pending events");
    }
    Ok(())
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn queue(args: &ListArgs) -> Result<()> {
    let rows = ops::queue(&*store(&args.node)?)?;
    if args.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("the queue is empty");
        return Ok(());
    }
    println!(
        "{:<28} {:>9} {:>10} {:>8} {:>9} {:>8}",
        "CONNECTION", "PENDING", "IN-FLIGHT", "FAILED", "DONE", "SKIPPED"
    );
    for r in rows {
        println!(
            "{:<28} {:>9} {:>10} {:>8} {:>9} {:>8}",
            r.connection, r.pending, r.in_flight, r.failed, r.done, r.skipped
        );
    }
    Ok(())
}

pub fn twins(args: &ListArgs) -> Result<()> {
    let rows = ops::twins(&*store(&args.node)?)?;
    if args.json {
        return print_json(&rows);
    }
    println!(
        "{:<24} {:<24} {:<12} {:<12} {:>5}",
        "TWIN", "CONNECTION", "LOCAL", "REMOTE", "SENT"
    );
    for t in rows {
        println!(
            "{:<24} {:<24} {:<12} {:<12} {:>5}",
            t.twin,
            t.connection,
            t.local_key,
            t.remote_key.as_deref().unwrap_or("-"),
            t.messages_sent
        );
    }
    Ok(())
}

pub fn errors(command: ErrorsCommand) -> Result<()> {
    match command {
        ErrorsCommand::List(args) => {
            let rows = ops::errors(&*store(&args.node)?)?;
            if args.json {
                return print_json(&rows);
            }
            if rows.is_empty() {
                println!("no sync errors");
            }
            for e in rows {
                println!(
                    "{}  twin {} ({})  {} {:?}  attempts {}  first {}  last {}\n    {}: {}",
                    e.event,
                    e.twin,
                    e.issue.as_deref().unwrap_or("not created"),
                    e.connection,
                    e.direction,
                    e.attempts,
                    e.first_attempt.as_deref().unwrap_or("-"),
                    e.last_attempt.as_deref().unwrap_or("-"),
                    e.kind,
                    e.reason
                );
            }
            Ok(())
        }
        ErrorsCommand::Show { node, id } => show(&node, &id),
        ErrorsCommand::Retry { node, id, all } => {
            let store = store(&node)?;
            match (id, all) {
                (_, true) => println!("{} events back in the queue", ops::retry_all(&store)?),
                (Some(id), false) => {
                    ops::retry(&store, &id)?;
                    println!("{id} is back in the queue");
                }
                (None, false) => bail!("give an event id or --all"),
            }
            Ok(())
        }
        ErrorsCommand::Skip { node, id } => {
            ops::skip(&*store(&node)?, &id)?;
            println!("{id} skipped; its twin goes on with its next event");
            Ok(())
        }
    }
}

fn show(node: &NodeArgs, id: &str) -> Result<()> {
    let event = ops::event(&*store(node)?, id)?;
    println!(
        "event {}  {:?} {:?}  twin {}  connection {}",
        event.id, event.kind, event.state, event.twin_id, event.connection
    );
    println!(
        "reason {}  hop {}  attempts {}",
        event.reason.as_str(),
        event.hop,
        event.attempts
    );
    if let Some(error) = &event.error {
        println!(
            "error ({}): {error}",
            event.error_kind.as_deref().unwrap_or("?")
        );
    }
    if let Some(note) = &event.note {
        println!("outcome: {note}");
    }
    let plugin = store(node)?.read(|db| twinsync::plugins::store::event_plugin(db, id))?;
    if let Some(plugin) = plugin {
        println!(
            "processed by: {}{} (sha256 {})",
            plugin.name,
            plugin.version.map(|v| format!("@{v}")).unwrap_or_default(),
            plugin.sha256
        );
    }
    let pretty = |json: &str| {
        serde_json::from_str::<serde_json::Value>(json)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| json.to_string())
    };
    if let Some(input) = &event.input {
        println!("processor input:\n{}", pretty(input));
    } else if let Some(message) = &event.message {
        println!("message:\n{}", pretty(message));
    }
    match &event.log {
        Some(log) => println!("processor log:\n{log}"),
        None => println!("processor log: (empty)"),
    }
    Ok(())
}

pub fn events(command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::Show { node, id } => show(&node, &id),
        EventsCommand::Replay { node, id, json } => {
            let opened = open_node(&config(&node)?)?;
            twinsync::setup::use_plugin_store(&opened.node)?;
            let replay = opened.node.replay(&id)?;
            if json {
                return print_json(&replay);
            }
            println!(
                "replayed {} ({:?}) on its {} input; nothing was changed",
                replay.event, replay.direction, replay.input_source
            );
            match (&replay.result, &replay.error) {
                (_, Some(error)) => {
                    println!("error ({}): {error}", replay.error_kind.unwrap_or("?"))
                }
                (Some(serde_json::Value::Null), None) => println!("result: nothing to send"),
                (Some(result), None) => {
                    println!("result:\n{}", serde_json::to_string_pretty(result)?)
                }
                (None, None) => {}
            }
            println!(
                "fuel used {}  peak memory {} KiB  sync back {}",
                replay.fuel_used,
                replay.peak_memory_bytes / 1024,
                if replay.sync_back_requested {
                    "requested"
                } else {
                    "no"
                }
            );
            println!(
                "log:\n{}",
                if replay.log.is_empty() {
                    "(empty)"
                } else {
                    &replay.log
                }
            );
            Ok(())
        }
    }
}
