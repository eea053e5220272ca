//! The dry run of `plugin check` and `plugin install`: each processor a component exports,
//! run once on a sample issue under the default limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{Clock, SystemClock, rfc3339};
use crate::model::{Direction, Issue, Origin, SyncContext, SyncReason, sample_issue};
use crate::runtime::{Call, Limits, NoTwins, Outcome, Plugin, Runtime, SyncBack};

/// One dry run.
#[derive(Debug, Serialize)]
pub struct DryRun {
    pub processor: &'static str,
    pub ok: bool,
    /// The returned issue or replica (null: nothing to send), or the error.
    pub result: serde_json::Value,
    pub fuel_used: u64,
    pub peak_memory_bytes: usize,
    pub wall_time_us: u128,
    pub sync_back_requested: bool,
    pub log: String,
}

/// The built-in sample: a realistic issue with 10 custom fields and 20 comments.
pub fn sample() -> Issue {
    sample_issue(10, 20)
}

/// Run each processor `plugin` exports once on `sample`.
pub fn dry_runs(runtime: &Runtime, plugin: &Plugin, sample: &Issue) -> Vec<DryRun> {
    let limits = Limits::default();
    let mut runs = Vec::new();
    if plugin.has_incoming() {
        let run = timed(|| {
            let call = call(&limits, true, SyncReason::ManualExalate);
            plugin.run_incoming(runtime, call, sample, None, &Issue::default())
        });
        runs.push(report("incoming", run));
    }
    if plugin.has_outgoing() {
        let run = timed(|| {
            let call = call(&limits, false, SyncReason::LocalChange);
            plugin.run_outgoing(runtime, call, sample)
        });
        runs.push(report("outgoing", run));
    }
    runs
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
            // The incoming dry run creates the issue: the twin comes from the other side.
            origin: if first_sync {
                Origin::Remote
            } else {
                Origin::Local
            },
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
        sync_back_requested: outcome.sync_back != SyncBack::NotRequested,
        log: outcome.log,
    }
}
