//! `twinsync history KEY`: a twin's history, newest first, with what each event changed.

use anyhow::Result;
use clap::Args;
use twinsync::store::history::{self, Filter, parse_time};

use super::TargetArgs;

#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    node: TargetArgs,
    /// A twin id, or an issue key on either side (local or remote).
    key: String,
    /// Only entries from this time on (RFC 3339, `2026-11-30T08:00:00Z`).
    #[arg(long)]
    since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// At most this many entries (the newest).
    #[arg(long, default_value_t = history::DEFAULT_LIMIT)]
    limit: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &HistoryArgs) -> Result<()> {
    let filter = Filter {
        key: Some(args.key.clone()),
        since_ms: args.since.as_deref().map(parse_time).transpose()?,
        until_ms: args.until.as_deref().map(parse_time).transpose()?,
        limit: Some(args.limit),
        ..Filter::default()
    };
    let entries = args.node.store()?.read(|db| history::query(db, &filter))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!(
            "no history for `{}` (a twin id, or an issue key on either side)",
            args.key
        );
    }
    for e in entries {
        println!(
            "{}  {} {} ({}, hop {})  {}  {}",
            e.at, e.direction, e.event, e.reason, e.hop, e.outcome, e.note
        );
        println!(
            "    twin {} on {}: {} <-> {}{}",
            e.twin,
            e.connection,
            e.local_key.as_deref().unwrap_or("-"),
            e.remote_key.as_deref().unwrap_or("-"),
            e.processor
                .map(|p| format!("  processor {p} {}", e.processor_sha256.unwrap_or_default()))
                .unwrap_or_default()
        );
        for c in e.changes {
            println!(
                "    {}: {} -> {}",
                c.field,
                c.old.as_deref().unwrap_or("(none)"),
                c.new.as_deref().unwrap_or("(none)")
            );
        }
        for c in e.comments {
            println!(
                "    + comment {} by {}: {}",
                c.id,
                c.author.as_deref().unwrap_or("?"),
                c.body
            );
        }
    }
    Ok(())
}
