//! Runs the `mirror` incoming processor in a loop, for profiling the per-event path:
//! `cargo run --release -p twinsync --example invoke_loop -- 20000 [comments]`

use std::sync::Arc;
use std::time::Instant;

use twinsync::model::{Direction, SyncContext, SyncReason, sample_issue};
use twinsync::runtime::{Call, Limits, NoTwins, Runtime, RuntimeConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let comments: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let mut config = RuntimeConfig::default();
    if let (Some(pool), Ok(keep)) = (config.pool.as_mut(), std::env::var("KEEP_RESIDENT")) {
        pool.keep_resident_bytes = keep.parse().unwrap();
    }
    if std::env::var("ON_DEMAND").is_ok() {
        config.pool = None;
    }
    let runtime = Runtime::new(&config).unwrap();
    let plugin = runtime.load("mirror", twinsync::builtin::MIRROR).unwrap();
    let limits = Limits::default();
    let replica = if std::env::var("MINIMAL").is_ok() {
        twinsync::model::Issue {
            summary: "x".into(),
            status: "Open".into(),
            ..Default::default()
        }
    } else {
        sample_issue(10, comments)
    };
    let ctx = SyncContext {
        connection: "c".into(),
        local_instance: "External".into(),
        remote_instance: "Internal".into(),
        direction: Direction::Bidirectional,
        first_sync: false,
        event_id: "Internal-1".into(),
        reason: SyncReason::LocalChange,
        hop: 0,
        now: "2026-11-27T20:00:00Z".into(),
    };
    let started = Instant::now();
    for _ in 0..runs {
        let call = Call {
            ctx: ctx.clone(),
            limits: &limits,
            can_send: true,
            directory: Arc::new(NoTwins),
        };
        let outcome = plugin.run_incoming(
            &runtime,
            call,
            replica.clone(),
            Some(replica.clone()),
            replica.clone(),
        );
        outcome.result.unwrap();
    }
    let per = started.elapsed() / runs as u32;
    println!(
        "{runs} invocations, {comments} comments: {per:?} each ({})",
        runtime.allocator()
    );
}
