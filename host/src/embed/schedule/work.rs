//! One tenant's part of the host's event loop: read its tracker's changes (if polled),
//! commit what the shared workers finished for it (one transaction per round), and hand
//! them its next ready events, as far as its quotas allow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::breaker::Breaker;
use super::quota::{QuotaLimit, Quotas};
use crate::embed::TenantConfig;
use crate::service::workers::{POLL_ROLE, leads};
use crate::store::events;
use crate::sync::{Node, Pipeline, Workers};

/// How often a polled tracker's change feed is read.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How often finished events past their keeping time are deleted, and how many at most a
/// round (a big first cleanup must not hold up the events).
const FORGET_EVERY: Duration = Duration::from_secs(3600);
const FORGET_BATCH: usize = 2_000;
/// How often a tenant's plugin store is looked at (a cheap read of a counter).
const PLUGINS_EVERY: Duration = Duration::from_millis(250);
/// How soon a tenant on a shared store whose ready events another process claimed is
/// looked at again (well within the claims' lease).
const CLAIMED_LOOK: Duration = Duration::from_millis(500);
/// How soon a tenant bound by an events quota is looked at again after a hand-out.
const QUOTA_TICK: Duration = Duration::from_millis(50);

/// What the loop keeps of a tenant between rounds.
pub(in crate::embed) struct Work {
    pipeline: Pipeline,
    quotas: Quotas,
    breaker: Breaker,
    /// It has an events quota: looked at again soon after each hand-out.
    bounded: bool,
    /// It has a fuel quota, and may run this many events at once: no more are handed out
    /// (fuel is known once burned, so events handed out ahead would all run on credit).
    fuel_bounded: Option<usize>,
    /// The quota its events wait for, as last found.
    waiting: Option<QuotaLimit>,
    /// When to read its tracker's feed next (`None`: the embedder pushes its changes), and
    /// failed reads in a row.
    poll_at: Option<Instant>,
    poll_failures: u32,
    /// When to look at its queue again without being rung (an event's retry time, a quota
    /// refilled).
    look_at: Option<Instant>,
    forget_at: Instant,
    plugins_at: Instant,
    /// Since when nothing of it ran.
    pub(super) idle_since: Option<Instant>,
}

/// What a round found.
pub(super) struct Round {
    /// The quota its events wait for, if they do.
    pub(super) waiting: Option<QuotaLimit>,
    /// Events committed.
    pub(super) committed: usize,
}

impl Work {
    /// `config`'s part of the loop; `at_once`: events of one tenant that may run at once.
    pub(in crate::embed) fn new(
        node: Arc<Node>,
        workers: Arc<Workers>,
        config: &TenantConfig,
        database: std::path::PathBuf,
        at_once: usize,
    ) -> Self {
        let now = Instant::now();
        let quota = &config.quota;
        // Where in the hour its first cleanup falls, so that 10,000 tenants do not all
        // clean up at once.
        let offset = crate::embed::verify::stagger(&config.name);
        Work {
            quotas: Quotas::new(quota, database, now).measured_in(node.store()),
            pipeline: Pipeline::on(node, workers, Some(config.name.clone())),
            breaker: Breaker::default(),
            bounded: quota.events_per_second.is_some(),
            fuel_bounded: quota.fuel_per_second.map(|_| at_once.max(1)),
            waiting: None,
            poll_at: config.poll_tracker.then_some(now),
            poll_failures: 0,
            look_at: None,
            forget_at: now + FORGET_EVERY.mul_f64(offset.clamp(0.0, 1.0)),
            plugins_at: now,
            idle_since: None,
        }
    }

    /// When a round is due without a ring: a timer passed or events are in flight.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.watch() || self.forget_at <= now
    }

    /// Whether the loop must come back to it without a ring: events in flight, or a timer
    /// (the hourly cleanup aside, which the loop's sweep of every tenant finds).
    pub(super) fn watch(&self) -> bool {
        self.pipeline.in_flight() > 0 || self.next_at().is_some()
    }

    /// The next time it needs a round without a ring (the cleanup aside).
    pub(super) fn next_at(&self) -> Option<Instant> {
        [self.poll_at, self.look_at].into_iter().flatten().min()
    }

    /// One round; `rung`: the tenant was given work since the last.
    pub(super) fn round(&mut self, node: &Node, rung: bool) -> Result<Round> {
        let now = Instant::now();
        let mut look = rung || self.look_at.is_some_and(|at| at <= now);
        if let Some(at) = self.poll_at
            && at <= now
        {
            // One process of those hosting the tenant on one PostgreSQL database reads the
            // feed (see `service::workers`); the others look again as often.
            let polled = if leads(node, POLL_ROLE) {
                node.poll_changes()
            } else {
                Ok(0)
            };
            match polled {
                Ok(changes) => {
                    self.poll_failures = 0;
                    self.poll_at = Some(now + POLL_EVERY);
                    look |= changes > 0;
                }
                Err(error) => {
                    // 100 ms doubling to 10 s.
                    let delay = (POLL_EVERY * (1u32 << self.poll_failures.min(7)))
                        .min(Duration::from_secs(10));
                    tracing::warn!(
                        "cannot read the tracker's changes, trying again in {delay:?}: {error:#}"
                    );
                    self.poll_failures += 1;
                    self.poll_at = Some(now + delay);
                }
            }
        }
        if self.forget_at <= now {
            match node.forget_old_events(FORGET_BATCH) {
                // More to delete: go on at the next round.
                Ok(FORGET_BATCH) => {}
                Ok(_) => self.forget_at = now + FORGET_EVERY,
                Err(error) => {
                    tracing::warn!("cannot delete old finished events: {error:#}");
                    self.forget_at = now + FORGET_EVERY;
                }
            }
        }
        if self.plugins_at <= now {
            if let Err(error) = node.refresh_plugins() {
                tracing::warn!("plugin store: {error:#}");
            }
            self.plugins_at = now + PLUGINS_EVERY;
        }
        let progress = self.pipeline.collect(Duration::ZERO)?;
        self.breaker.record(&self.pipeline.take_ran(), now);
        // A committed event may have made its twin's next one ready.
        look |= progress.total() > 0;
        if look {
            self.look_at = None;
            let room = match self.breaker.room(now, self.pipeline.in_flight()) {
                Err(until) => {
                    // Its events handed out and not started yet would run meanwhile.
                    self.pipeline.withdraw();
                    Err((QuotaLimit::Breaker, until))
                }
                Ok(most) => self
                    .quotas
                    .room(now, node.fuel_used())
                    .map(|room| room.min(most)),
            };
            match room {
                Err((limit, until)) => {
                    self.waiting = Some(limit);
                    self.look_at = Some(until);
                }
                Ok(room) => {
                    // Letting one event through says nothing yet: still slowed down.
                    self.waiting = self.breaker.throttled().then_some(QuotaLimit::Breaker);
                    let room = match self.fuel_bounded {
                        Some(at_once) => {
                            room.min(at_once.saturating_sub(self.pipeline.in_flight()))
                        }
                        None => room,
                    };
                    let handed = self.pipeline.hand_out(room)?;
                    self.quotas.started(handed);
                    if handed > 0 && self.bounded {
                        self.look_at = Some(now + QUOTA_TICK);
                    } else if self.pipeline.in_flight() == 0 {
                        // Nothing ready: look again when the first event waiting to retry is.
                        let next = node
                            .store()
                            .read(|db| events::next_retry_at(db, node_now(node)))?;
                        self.look_at = next.map(|at| {
                            now + Duration::from_millis((at - node_now(node)).max(0) as u64)
                        });
                        // Ready, but claimed by another process sharing the store: it may
                        // die (or leave them) without a word to this one, whose loop looks
                        // only at tenants given work. Look again within the lease.
                        if handed == 0
                            && node.store().is_shared()
                            && !node
                                .store()
                                .read(|db| events::ready_heads(db, node_now(node), 1))?
                                .is_empty()
                        {
                            let again = now + CLAIMED_LOOK;
                            self.look_at = Some(self.look_at.map_or(again, |at| at.min(again)));
                        }
                    }
                }
            }
        }
        if self.pipeline.in_flight() > 0 || self.look_at.is_some() {
            self.idle_since = None;
        } else if self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        Ok(Round {
            waiting: self.waiting,
            committed: progress.total(),
        })
    }
}

fn node_now(node: &Node) -> i64 {
    crate::clock::millis(node.clock().now())
}
