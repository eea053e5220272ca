//! Crash points: the moments of an event where a node may stop without warning, named so
//! that tests can stop it there on purpose.
//!
//! A node calls its crash hook at each point (nothing happens without one). The tests of the
//! engine install a hook that unwinds out of the node (the deterministic simulation) or,
//! through `TWINSYNC_CRASH_AT`, one that kills the process with SIGKILL, so that a crash can
//! hit the narrow window between a tracker write and the node's commit every time rather
//! than by luck. Nothing here changes what a node does when no hook is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where in an event a crash can happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The processor ran; nothing of its result is stored yet.
    AfterProcessor,
    /// An incoming event stored the processor's input (the issue it read) and is about to
    /// write to the tracker.
    BeforeTrackerWrite,
    /// The tracker holds an incoming event's change; the node has not committed it.
    AfterTrackerWrite,
    /// A batch is prepared and about to commit.
    BeforeCommit,
    /// A batch committed.
    AfterCommit,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 5] = [
        CrashPoint::AfterProcessor,
        CrashPoint::BeforeTrackerWrite,
        CrashPoint::AfterTrackerWrite,
        CrashPoint::BeforeCommit,
        CrashPoint::AfterCommit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterProcessor => "after-processor",
            CrashPoint::BeforeTrackerWrite => "before-tracker-write",
            CrashPoint::AfterTrackerWrite => "after-tracker-write",
            CrashPoint::BeforeCommit => "before-commit",
            CrashPoint::AfterCommit => "after-commit",
        }
    }

    pub fn parse(name: &str) -> Option<CrashPoint> {
        CrashPoint::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Called at every crash point; it may stop the process or unwind.
pub type CrashHook = Arc<dyn Fn(CrashPoint) + Send + Sync>;

/// The environment variable naming the point at which the process kills itself.
pub const CRASH_AT_VAR: &str = "TWINSYNC_CRASH_AT";
/// How many times the point is passed before the kill (default 0: the first time).
pub const CRASH_SKIP_VAR: &str = "TWINSYNC_CRASH_SKIP";

/// The hook `TWINSYNC_CRASH_AT=POINT` asks for (with `TWINSYNC_CRASH_SKIP=N`: after passing
/// the point N times): SIGKILL to this process, as `kill -9` would. For tests only; an
/// unknown point name is ignored with a warning.
pub fn from_env() -> Option<CrashHook> {
    let name = std::env::var(CRASH_AT_VAR).ok()?;
    let Some(target) = CrashPoint::parse(name.trim()) else {
        tracing::warn!("{CRASH_AT_VAR}=`{name}` names no crash point: ignored");
        return None;
    };
    let skip: u64 = std::env::var(CRASH_SKIP_VAR)
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    tracing::warn!(
        "{CRASH_AT_VAR}: this process kills itself at {}",
        target.name()
    );
    let passed = AtomicU64::new(0);
    Some(Arc::new(move |point: CrashPoint| {
        if point != target || passed.fetch_add(1, Ordering::SeqCst) < skip {
            return;
        }
        eprintln!("{CRASH_AT_VAR}: killed at {}", point.name());
        kill_self();
    }))
}

/// Stop this process at once: no destructor, no flush, no commit.
fn kill_self() -> ! {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // Where `kill` is not there to run: the same effect, by another signal.
    std::process::abort()
}
