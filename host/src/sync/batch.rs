//! Processing the queue in batches: take the ready events (the first of each twin, one per
//! local issue), prepare them in parallel (processors run concurrently), and commit the
//! whole batch in one transaction. Failures are recorded in the same transaction: passing
//! ones wait and retry with backoff, the others become sync errors.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::crash::CrashPoint;
use super::effect::Prepared;
use super::failure::Failed;
use super::node::Node;
use crate::store::events::{self, Event, Kind};
use crate::store::sql::{Sql, args};

/// How long to wait before retrying an event that failed for a passing reason.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter: attempt n waits about first * 2^(n-1), capped, with a
    /// jitter of up to a quarter derived from the event id (so runs are reproducible).
    pub fn delay(&self, attempt: i64, event_id: &str) -> Duration {
        let exponent = attempt.clamp(1, 30) as u32 - 1;
        let base = self
            .first_delay
            .saturating_mul(1u32 << exponent.min(20))
            .min(self.max_delay);
        let hash = event_id.bytes().fold(attempt as u64, |h, b| {
            h.wrapping_mul(31).wrapping_add(b as u64)
        });
        let jitter = base.mul_f64((hash % 1000) as f64 / 4000.0);
        base + jitter
    }
}

/// What one call to [`Node::process_ready`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub failed: usize,
    pub deferred: usize,
}

impl Progress {
    pub fn total(&self) -> usize {
        self.done + self.failed + self.deferred
    }
}

/// Keep the first event of each local issue: an issue synced on two connections has one
/// set of field stamps, which two events of one batch would each stamp on their own. The
/// others run in the next batch.
fn one_per_issue(ready: Vec<(Event, Option<String>)>) -> Vec<Event> {
    let mut issues = std::collections::HashSet::new();
    ready
        .into_iter()
        .filter(|(event, issue)| issues.insert(issue_of(event, issue.as_deref())))
        .map(|(event, _)| event)
        .collect()
}

/// Whether `event` is still pending as it was read (no other process has finished it, or
/// counted an attempt, since).
fn still_pending(tx: &dyn Sql, event: &Event) -> Result<bool> {
    tx.exists(
        "SELECT 1 FROM events WHERE seq = ?1 AND state = 'pending' AND attempts = ?2",
        args![event.seq, event.attempts],
    )
}

/// What two events must not work on at once: the local issue, or for a twin not created
/// here yet (first sync), the twin.
pub(super) fn issue_of(event: &Event, local_key: Option<&str>) -> String {
    issue_of_twin(&event.twin_id, local_key)
}

pub(super) fn issue_of_twin(twin_id: &str, local_key: Option<&str>) -> String {
    local_key.map_or_else(|| format!("twin:{twin_id}"), |key| format!("issue:{key}"))
}

/// How long a batch keeps taking new events to prepare before it commits.
pub const BATCH_TIME: Duration = Duration::from_millis(10);

/// The span every log line about an event is in: event id, twin and connection.
pub(super) fn event_span(event: &Event) -> tracing::Span {
    tracing::info_span!("event", event = %event.id, twin = %event.twin_id, connection = %event.connection)
}

fn log_outcome(event: &Event, outcome: &Result<Prepared, Failed>) {
    let _span = event_span(event).entered();
    match outcome {
        Ok(prepared) => {
            tracing::info!(kind = ?event.kind, reason = event.reason.as_str(), hop = event.hop, "{}", prepared.note)
        }
        Err(failed) if failed.failure.is_transient() => {
            tracing::warn!(kind = ?event.kind, "will retry: {}", failed.failure)
        }
        Err(failed) => tracing::warn!(
            kind = ?event.kind,
            error_kind = failed.failure.kind(),
            "sync error: {}",
            failed.failure
        ),
    }
}

impl Node {
    /// Process up to `limit` events that are ready, oldest first, at most one per twin per
    /// call (call again to go on).
    pub fn process_ready(&self, limit: usize) -> Result<Progress> {
        self.process_ready_parallel(limit, 1)
    }

    /// Like [`Node::process_ready`], with `workers` threads: events of different twins are
    /// prepared in parallel (processors run concurrently), then the whole batch commits in
    /// one transaction. Preparing stops taking new events after [`BATCH_TIME`], so that a
    /// batch does not hold back the first events' commit for long.
    pub fn process_ready_parallel(&self, limit: usize, workers: usize) -> Result<Progress> {
        let now = self.now_ms();
        let ready = one_per_issue(self.store.read(|db| events::ready(db, now, limit))?);
        if ready.is_empty() {
            return Ok(Progress::default());
        }
        let workers = workers.min(ready.len());
        if workers <= 1 {
            // One after the other, prepared together as a running node's worker does (see
            // `grouped`), taking no new event after the time budget.
            let deadline = Instant::now() + BATCH_TIME;
            let mut rest = ready.into_iter();
            let mut events: Vec<Event> = rest.next().into_iter().collect();
            let mut more = || rest.next().filter(|_| Instant::now() < deadline);
            let outcomes = self.prepare_many(&mut events, &mut more);
            let finished: Vec<(Event, Result<Prepared, Failed>)> =
                events.into_iter().zip(outcomes).collect();
            return self.commit_finished(&finished);
        }
        let prepared = self.prepare_batch(&ready, workers);
        let finished: Vec<(Event, Result<Prepared, Failed>)> = ready
            .into_iter()
            .zip(prepared)
            .filter_map(|(event, outcome)| outcome.map(|outcome| (event, outcome)))
            .collect();
        self.commit_finished(&finished)
    }

    /// Commit prepared events and record failed ones, all in one transaction, then log
    /// what each did.
    pub(super) fn commit_finished(
        &self,
        finished: &[(Event, Result<Prepared, Failed>)],
    ) -> Result<Progress> {
        self.commit_claimed(finished, None)
    }

    /// [`Node::commit_finished`], for events whose issues (`issues[i]` for `finished[i]`)
    /// this process claimed in a store shared with other processes: an event whose claim
    /// was taken over (this process stalled past its lease), or that another process has
    /// finished meanwhile, is not committed (its effects are someone else's to commit);
    /// the others' claims are given up with their commit.
    pub(super) fn commit_claimed(
        &self,
        finished: &[(Event, Result<Prepared, Failed>)],
        issues: Option<&[String]>,
    ) -> Result<Progress> {
        let mut progress = Progress::default();
        if finished.is_empty() {
            return Ok(progress);
        }
        let now = self.now_ms();
        self.crash_point(CrashPoint::BeforeCommit);
        let claims = issues.filter(|_| self.store.is_shared());
        let mut lost = vec![false; finished.len()];
        self.store.write(|tx| {
            for (i, (event, outcome)) in finished.iter().enumerate() {
                if let Some(issue) = claims.map(|issues| issues[i].as_str()) {
                    if !self.store.holds_claim(tx, issue)? || !still_pending(tx, event)? {
                        lost[i] = true;
                        continue;
                    }
                    self.store.release_claim(tx, issue)?;
                }
                match outcome {
                    Ok(prepared) => {
                        self.commit(tx, event, prepared, now)?;
                        progress.done += 1;
                    }
                    Err(failed) => {
                        self.record_failure(tx, event, failed, now)?;
                        if failed.failure.is_transient() {
                            progress.deferred += 1;
                        } else {
                            progress.failed += 1;
                        }
                    }
                }
            }
            // Which plugin each of them ran with, in the same transaction.
            self.plugins.record(
                tx,
                finished
                    .iter()
                    .zip(&lost)
                    .filter(|(_, lost)| !**lost)
                    .map(|((event, _), _)| event.id.as_str()),
            )
        })?;
        self.crash_point(CrashPoint::AfterCommit);
        for ((event, outcome), lost) in finished.iter().zip(lost) {
            if lost {
                tracing::warn!(
                    event = %event.id,
                    "another process of the node took this event over: not committed here"
                );
                continue;
            }
            log_outcome(event, outcome);
            self.observed(
                event,
                outcome
                    .as_ref()
                    .map(|p| p.note.as_str())
                    .map_err(|f| &f.failure),
            );
        }
        Ok(progress)
    }

    /// Prepare events with `workers` threads (two or more, no more than the events); `None`
    /// for events left for the next batch because the time budget ran out.
    fn prepare_batch(
        &self,
        ready: &[Event],
        workers: usize,
    ) -> Vec<Option<Result<Prepared, Failed>>> {
        let deadline = Instant::now() + BATCH_TIME;
        let next = AtomicUsize::new(0);
        let take = || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            // The first event of a batch always runs, however long it takes.
            (i < ready.len() && (i == 0 || Instant::now() < deadline)).then_some(i)
        };
        let slots: Vec<Mutex<Option<Result<Prepared, Failed>>>> =
            ready.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some(i) = take() {
                        let outcome = self.prepare(&ready[i]);
                        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
                    }
                });
            }
        });
        slots
            .into_iter()
            .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    pub(super) fn prepare(&self, event: &Event) -> Result<Prepared, Failed> {
        let _span = event_span(event).entered();
        match event.kind {
            Kind::Outgoing => self.prepare_outgoing(event),
            Kind::Incoming => self.prepare_incoming(event),
            Kind::Unexalate => self.prepare_unexalate(event),
        }
    }

    /// Store a failure: transient ones wait and retry, the others become sync errors.
    fn record_failure(&self, tx: &dyn Sql, event: &Event, failed: &Failed, now: i64) -> Result<()> {
        let kind = failed.failure.kind();
        let message = failed.failure.to_string();
        if failed.failure.is_transient() {
            let delay = self.retry.delay(event.attempts + 1, &event.id);
            let next = now + delay.as_millis() as i64;
            events::defer(tx, event.seq, kind, &message, &failed.log, now, next)
        } else {
            self.record_step(tx, event, "failed", &format!("{kind}: {message}"), now)?;
            events::fail(
                tx,
                event.seq,
                kind,
                &message,
                &failed.log,
                failed.input.as_deref(),
                now,
            )
        }
    }
}
