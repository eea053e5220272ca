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
use twinsync::sync::Take;
use twinsync::tracker::Query;

use super::{NodeArgs, TargetArgs};

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    node: TargetArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExalateArgs {
    #[command(flatten)]
    node: TargetArgs,
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
pub struct VerifyArgs {
    #[command(flatten)]
    node: TargetArgs,
    /// Only the twins of this connection.
    #[arg(long)]
    connection: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct UnexalateArgs {
    #[command(flatten)]
    node: TargetArgs,
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
        node: TargetArgs,
        /// The event id (see `errors list`).
        id: String,
        /// Print the input, message and log in full (otherwise long ones are cut).
        #[arg(long)]
        full: bool,
    },
    /// Put sync errors back in the queue (after fixing the processor or the tracker).
    Retry {
        #[command(flatten)]
        node: TargetArgs,
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
        node: TargetArgs,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Events, oldest first: id, kind, state, twin, and the outcome or error.
    List {
        #[command(flatten)]
        node: TargetArgs,
        /// Only this twin's events.
        #[arg(long)]
        twin: Option<String>,
        /// Only events in this state.
        #[arg(long, value_enum)]
        state: Option<ops::EventState>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One event: its message, processor input, log and outcome.
    Show {
        #[command(flatten)]
        node: TargetArgs,
        id: String,
        /// Print the input, message and log in full (otherwise long ones are cut).
        #[arg(long)]
        full: bool,
    },
    /// Run the event's processor again on its stored input and print the result and the
    /// log. Changes nothing.
    Replay {
        #[command(flatten)]
        node: TargetArgs,
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
        node: TargetArgs,
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
                outln!("no conflicts held for review")?;
            }
            for c in rows {
                outln!(
                    "{}  {} ({})  field {}  since {}\n    local:  {}\n    remote: {}",
                    c.id,
                    c.twin,
                    c.issue.as_deref().unwrap_or("-"),
                    c.field,
                    c.since,
                    c.local_value,
                    c.remote_value
                )?;
            }
            Ok(())
        }
        ConflictsCommand::Resolve { node, id, take } => {
            let opened = node.open()?;
            opened.node.resolve_conflict(id, take)?;
            node.tell_serve()?;
            outln!("conflict {id} settled ({take:?} value kept); a running node sends it now")?;
            Ok(())
        }
    }
}

pub(super) fn config(node: &NodeArgs) -> Result<NodeConfig> {
    NodeConfig::load(&node.config)
}

fn store(node: &TargetArgs) -> Result<std::sync::Arc<twinsync::store::NodeStore>> {
    node.store()
}

pub fn exalate(args: &ExalateArgs) -> Result<()> {
    let opened = args.node.open()?;
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
    args.node.tell_serve()?;
    outln!(
        "exalated {} of {} issues over `{}`; a running node sends them now",
        keys.len() - failed.len(),
        keys.len(),
        args.connection
    )?;
    for failure in &failed {
        eprintln!("  not exalated: {failure}");
    }
    if !failed.is_empty() && failed.len() == keys.len() {
        bail!("no issue was exalated");
    }
    Ok(())
}

pub fn unexalate(args: &UnexalateArgs) -> Result<()> {
    let opened = args.node.open()?;
    for key in &args.keys {
        opened.node.unexalate(&args.connection, key)?;
        outln!("{key}: unexalate queued behind its pending events")?;
    }
    args.node.tell_serve()
}

/// Compare every settled twin with what was last exchanged, and repair what differs.
pub fn verify(args: &VerifyArgs) -> Result<()> {
    let opened = args.node.open()?;
    let report = opened.node.verify(args.connection.as_deref())?;
    args.node.tell_serve()?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} twins checked ({} busy syncing, not checked): {} fixed (resync queued), {} sync errors",
        report.checked, report.busy, report.fixed, report.errors
    );
    for m in &report.mismatches {
        println!(
            "  {} ({}, twin {}): {} -- {}: {}",
            m.local_key,
            m.connection,
            m.twin,
            if m.fields.is_empty() {
                "comments or stamps".to_string()
            } else {
                m.fields.join(", ")
            },
            m.action,
            m.reason
        );
    }
    Ok(())
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

pub fn queue(args: &ListArgs) -> Result<()> {
    let rows = ops::queue(&*store(&args.node)?)?;
    if args.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        outln!("the queue is empty")?;
        return Ok(());
    }
    outln!(
        "{:<28} {:>9} {:>10} {:>8} {:>9} {:>8}",
        "CONNECTION",
        "PENDING",
        "IN-FLIGHT",
        "FAILED",
        "DONE",
        "SKIPPED"
    )?;
    for r in rows {
        outln!(
            "{:<28} {:>9} {:>10} {:>8} {:>9} {:>8}",
            r.connection,
            r.pending,
            r.in_flight,
            r.failed,
            r.done,
            r.skipped
        )?;
    }
    Ok(())
}

/// Every twin, in twin id order, read and printed a page at a time: the memory used does
/// not grow with the number of twins. The JSON is what `serde_json` would print for the
/// whole list, written as it goes.
pub fn twins(args: &ListArgs) -> Result<()> {
    let store = store(&args.node)?;
    if !args.json {
        outln!(
            "{:<24} {:<24} {:<12} {:<12} {:>5}",
            "TWIN",
            "CONNECTION",
            "LOCAL",
            "REMOTE",
            "SENT"
        )?;
    }
    let mut after: Option<String> = None;
    let mut first = true;
    loop {
        let (rows, next) = ops::twins_page(&store, after.as_deref(), ops::TWINS_PAGE)?;
        for t in rows {
            if args.json {
                let item = serde_json::to_string_pretty(&t)?.replace('\n', "\n  ");
                let lead = if first { "[\n  " } else { ",\n  " };
                out(&format!("{lead}{item}"))?;
            } else {
                outln!(
                    "{:<24} {:<24} {:<12} {:<12} {:>5}",
                    t.twin,
                    t.connection,
                    t.local_key,
                    t.remote_key.as_deref().unwrap_or("-"),
                    t.messages_sent
                )?;
            }
            first = false;
        }
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if args.json {
        outln!("{}", if first { "[]" } else { "\n]" })?;
    }
    Ok(())
}

/// Text on stdout, without a newline.
fn out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    write!(std::io::stdout().lock(), "{text}")
}

pub fn errors(command: ErrorsCommand) -> Result<()> {
    match command {
        ErrorsCommand::List(args) => {
            let rows = ops::errors(&*store(&args.node)?)?;
            if args.json {
                return print_json(&rows);
            }
            if rows.is_empty() {
                outln!("no sync errors")?;
            }
            for e in rows {
                outln!(
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
                )?;
            }
            Ok(())
        }
        ErrorsCommand::Show { node, id, full } => show(&node, &id, full),
        ErrorsCommand::Retry { node, id, all } => {
            let store = store(&node)?;
            match (id, all) {
                (_, true) => outln!("{} events back in the queue", ops::retry_all(&store)?)?,
                (Some(id), false) => {
                    ops::retry(&store, &id)?;
                    outln!("{id} is back in the queue")?;
                }
                (None, false) => bail!("give an event id or --all"),
            }
            node.tell_serve()
        }
        ErrorsCommand::Skip { node, id } => {
            ops::skip(&*store(&node)?, &id)?;
            node.tell_serve()?;
            outln!("{id} skipped; its twin goes on with its next event")?;
            Ok(())
        }
    }
}

/// How much of a processor input, message or log `show` prints unless `--full`.
const SHOWN_BYTES: usize = 4096;

/// `text`, or its first [`SHOWN_BYTES`] (cut at a character boundary) with a note of how
/// much is left out.
fn shown(text: &str, full: bool) -> std::borrow::Cow<'_, str> {
    if full || text.len() <= SHOWN_BYTES {
        return text.into();
    }
    let cut = text.floor_char_boundary(SHOWN_BYTES);
    format!(
        "{}\n... {} more bytes not shown (--full shows everything)",
        &text[..cut],
        text.len() - cut
    )
    .into()
}

fn show(node: &TargetArgs, id: &str, full: bool) -> Result<()> {
    let event = ops::event(&*store(node)?, id)?;
    outln!(
        "event {}  {:?} {:?}  twin {}  connection {}",
        event.id,
        event.kind,
        event.state,
        event.twin_id,
        event.connection
    )?;
    outln!(
        "reason {}  hop {}  attempts {}",
        event.reason.as_str(),
        event.hop,
        event.attempts
    )?;
    if let Some(error) = &event.error {
        outln!(
            "error ({}): {error}",
            event.error_kind.as_deref().unwrap_or("?")
        )?;
    }
    if let Some(note) = &event.note {
        outln!("outcome: {note}")?;
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
        outln!("processor input:\n{}", shown(&pretty(input), full))?;
    } else if let Some(message) = &event.message {
        outln!("message:\n{}", shown(&pretty(message), full))?;
    }
    match &event.log {
        Some(log) => outln!("processor log:\n{}", shown(log, full))?,
        None => outln!("processor log: (empty)")?,
    }
    Ok(())
}

pub fn events(command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::List {
            node,
            twin,
            state,
            json,
        } => {
            let rows = ops::events(&*store(&node)?, twin.as_deref(), state)?;
            if json {
                return print_json(&rows);
            }
            if rows.is_empty() {
                outln!("no events")?;
            }
            for e in rows {
                outln!(
                    "{}  {:?} {:?}  twin {}  {}  {}  {}",
                    e.id,
                    e.kind,
                    e.state,
                    e.twin,
                    e.connection,
                    e.created,
                    e.outcome
                )?;
            }
            Ok(())
        }
        EventsCommand::Show { node, id, full } => show(&node, &id, full),
        EventsCommand::Replay { node, id, json } => {
            let opened = node.open()?;
            twinsync::setup::use_plugin_store(&opened.node)?;
            let replay = opened.node.replay(&id)?;
            if json {
                return print_json(&replay);
            }
            outln!(
                "replayed {} ({:?}) on its {} input; nothing was changed",
                replay.event,
                replay.direction,
                replay.input_source
            )?;
            match (&replay.result, &replay.error) {
                (_, Some(error)) => {
                    outln!("error ({}): {error}", replay.error_kind.unwrap_or("?"))?
                }
                (Some(serde_json::Value::Null), None) => outln!("result: nothing to send")?,
                (Some(result), None) => {
                    outln!("result:\n{}", serde_json::to_string_pretty(result)?)?
                }
                (None, None) => {}
            }
            outln!(
                "fuel used {}  peak memory {} KiB  sync back {}",
                replay.fuel_used,
                replay.peak_memory_bytes / 1024,
                if replay.sync_back_requested {
                    "requested"
                } else {
                    "no"
                }
            )?;
            outln!(
                "log:\n{}",
                if replay.log.is_empty() {
                    "(empty)"
                } else {
                    &replay.log
                }
            )?;
            Ok(())
        }
    }
}
