//! `twinsync plugin ...`: look at processor components and try them before installing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;
use twinsync::clock::{Clock, SystemClock, rfc3339};
use twinsync::model::{Direction, Issue, SyncContext, SyncReason, sample_issue};
use twinsync::runtime::{Call, Limits, NoTwins, Outcome, Plugin, Runtime, RuntimeConfig};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Show which worlds a component implements and what it imports.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate a component before installing it: worlds, imports, size, whether it
    /// compiles, and a dry run of each processor it exports on a sample issue, under the
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
}

pub fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let runtime = Runtime::new(&RuntimeConfig::default())?;
            let plugin = load(&runtime, &file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plugin.info)?);
            } else {
                print!("{}", plugin.info);
            }
            Ok(())
        }
        PluginCommand::Check { file, sample, json } => check(&file, sample.as_deref(), json),
    }
}

fn load(runtime: &Runtime, file: &Path) -> Result<Plugin> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(runtime.load(&file.display().to_string(), &wasm)?)
}

/// One dry run, as `plugin check` reports it.
#[derive(Serialize)]
struct DryRun {
    processor: &'static str,
    ok: bool,
    /// The returned issue or replica (null: nothing to send), or the error.
    result: serde_json::Value,
    fuel_used: u64,
    peak_memory_bytes: usize,
    wall_time_us: u128,
    sync_back_requested: bool,
    log: String,
}

#[derive(Serialize)]
struct Report {
    plugin: twinsync::runtime::PluginInfo,
    compile_time_ms: u128,
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
        None => sample_issue(10, 20),
    };
    let runtime = Runtime::new(&RuntimeConfig::default())?;
    let plugin = load(&runtime, file)?;
    let limits = Limits::default();
    let mut dry_runs = Vec::new();
    if plugin.has_incoming() {
        let run = timed(|| {
            let call = call(&limits, true, SyncReason::ManualExalate);
            plugin.run_incoming(&runtime, call, &sample, None, &Issue::default())
        });
        dry_runs.push(report("incoming", run));
    }
    if plugin.has_outgoing() {
        let run = timed(|| {
            let call = call(&limits, false, SyncReason::LocalChange);
            plugin.run_outgoing(&runtime, call, &sample)
        });
        dry_runs.push(report("outgoing", run));
    }
    let failed = dry_runs.iter().filter(|r| !r.ok).count();
    let report = Report {
        compile_time_ms: plugin.compile_time.as_millis(),
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

fn call(limits: &Limits, first_sync: bool, reason: SyncReason) -> Call<'_> {
    Call {
        ctx: SyncContext {
            connection: "plugin-check".into(),
            local_instance: "Local".into(),
            remote_instance: "Remote".into(),
            direction: Direction::Bidirectional,
            first_sync,
            event_id: "check-1".into(),
            reason,
            hop: 0,
            now: rfc3339(SystemClock.now()),
        },
        limits,
        can_send: true,
        directory: Arc::new(NoTwins),
        merge_base: Default::default(),
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

fn report<T: Serialize>(
    processor: &'static str,
    (outcome, wall): (Outcome<T>, Duration),
) -> DryRun {
    let (ok, result) = match &outcome.result {
        Ok(value) => (true, serde_json::to_value(value).unwrap_or_default()),
        Err(error) => (false, serde_json::Value::String(error.to_string())),
    };
    DryRun {
        processor,
        ok,
        result,
        fuel_used: outcome.fuel_used,
        peak_memory_bytes: outcome.peak_memory,
        wall_time_us: wall.as_micros(),
        sync_back_requested: outcome.sync_back != twinsync::runtime::SyncBack::NotRequested,
        log: outcome.log,
    }
}

fn print_report(report: &Report) {
    print!("{}", report.plugin);
    println!("compiles: yes ({} ms)", report.compile_time_ms);
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
