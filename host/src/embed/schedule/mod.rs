//! The host's event loop: one thread for every tenant, and one pool of worker threads
//! (`HostConfig::workers`) that runs every tenant's processors.
//!
//! Fair share: each tenant is a lane of the shared workers (see `sync::pipeline`): an idle
//! worker takes the next event of the tenant that used the least worker time lately, and
//! a tenant runs at most `HostConfig::workers_per_tenant` events at once. A tenant with a
//! million events queued, or whose processor always runs to its time limit, thus holds at
//! most that many workers, and another tenant's next event starts as soon as one of the
//! others is free: it waits for at most one event of each, never for the backlog.
//!
//! The loop looks only at tenants that were rung (given work), have events in flight, or
//! whose timer passed (a polled tracker, a retry time, a quota refilled): an idle tenant
//! costs nothing but its memory. Each round commits what finished for a tenant in one
//! transaction, then hands out its next ready events, as many as its quotas allow
//! ([`quota`]).
//!
//! No quota is needed to keep a tenant whose processor always runs to its time limit from
//! holding a core for ever: after a few such events in a row its events wait
//! (`QuotaLimit::Breaker`), so that it uses at most about a twentieth of a worker, until
//! one of them ends by itself ([`breaker`]).
//!
//! A tenant whose idle database connection is not needed is closed after a
//! while (see `NodeStore::release`).

mod breaker;
mod quota;
mod work;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use quota::{Quota, QuotaLimit};
pub(super) use work::Work;

use super::Shared;
use super::events::HostEvent;
use super::roster::{REREAD, Refresh, Roster};
use super::tenant::Running;

/// The longest the loop sleeps when nothing rang.
const IDLE: Duration = Duration::from_millis(500);
/// How long a tenant is idle before its database connection is closed (reopened on use).
const RELEASE_AFTER: Duration = Duration::from_secs(5);

impl Shared {
    /// Run every tenant's rounds until the host stops. A pass looks at the tenants that
    /// rang and the ones it watches (events in flight, a timer); every few seconds at all
    /// of them, to close idle databases and run the hourly cleanups.
    pub(super) fn event_loop(&self) {
        let mut roster = Roster::default();
        let mut watched: HashMap<String, Arc<Running>> = HashMap::new();
        // Tenants that rang before the roster had them.
        let mut carried: Vec<String> = Vec::new();
        let mut sweep_at = Instant::now() + RELEASE_AFTER;
        while !self.stop.load(Ordering::Relaxed) {
            let seen = self.event_rung.bell.rings();
            let refresh = roster.refresh(self);
            let now = Instant::now();
            let sweep = now >= sweep_at;
            if sweep {
                sweep_at = now + RELEASE_AFTER;
            }
            let mut names = std::mem::take(&mut carried);
            names.extend(self.event_rung.take());
            let mut visit: Vec<Arc<Running>> = if sweep {
                roster.tenants.clone()
            } else {
                watched.values().cloned().collect()
            };
            for name in names {
                let current = roster.by_name.get(&name);
                match current.filter(|t| !t.stop.load(Ordering::Relaxed)) {
                    Some(tenant) => visit.push(tenant.clone()),
                    // Maybe added (again) since the roster was read.
                    None if roster.behind(self) => carried.push(name),
                    // Gone.
                    None => {}
                }
            }
            let mut next = now
                + if refresh == Refresh::Later || !carried.is_empty() {
                    REREAD
                } else {
                    IDLE
                };
            let mut seen_now = HashSet::new();
            for tenant in visit {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                if !seen_now.insert(tenant.name.clone()) {
                    continue;
                }
                match self.visit(&tenant, now, sweep) {
                    Some(at) => {
                        next = next.min(at.unwrap_or(next));
                        watched.insert(tenant.name.clone(), tenant);
                    }
                    None => {
                        watched.remove(&tenant.name);
                    }
                }
            }
            next = next.min(sweep_at);
            self.event_rung
                .bell
                .wait(seen, next.saturating_duration_since(Instant::now()));
        }
    }

    /// A round of `tenant` if one is due. `Some` if the loop must come back to it without
    /// a ring, with when if it is a time.
    fn visit(&self, tenant: &Running, now: Instant, sweep: bool) -> Option<Option<Instant>> {
        if tenant.stop.load(Ordering::Relaxed) {
            return None;
        }
        // Being removed: skip it.
        let mut work = tenant.work.try_lock().ok()?;
        let state = work.as_mut()?;
        let rung = tenant.wake.take_events();
        if !rung && !state.due(now) {
            if sweep && state.idle_since.is_some_and(|at| now - at >= RELEASE_AFTER) {
                tenant.node.store().release();
            }
            return state.watch().then(|| state.next_at());
        }
        let was_open = tenant.node.store().is_open();
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            state.round(&tenant.node, rung)
        }));
        match round {
            Ok(Ok(round)) => {
                self.waiting(tenant, round.waiting);
                if round.committed > 0 {
                    tenant.wake.committed();
                }
                // Opened only to find nothing to do (as every tenant is looked at once when
                // it is added): closed again at once, so that 10,000 tenants starting do
                // not hold 10,000 databases open.
                if !was_open && state.idle_since.is_some() {
                    tenant.node.store().release();
                }
                state.watch().then(|| state.next_at())
            }
            Ok(Err(error)) => {
                tracing::error!(tenant = tenant.name, "cannot process events: {error:#}");
                // Looked at again after the idle time.
                Some(Some(now + IDLE))
            }
            Err(panic) => {
                // A bug, in twinsync or in the embedder's tracker: this tenant stops, the
                // others go on, and the embedder is told.
                let reason = crate::service::supervise::panic_message(&*panic);
                tracing::error!(tenant = tenant.name, "the event loop panicked: {reason}");
                tenant.stop.store(true, Ordering::Relaxed);
                *work = None;
                self.subscribers.send(&HostEvent::TenantStopped {
                    tenant: tenant.name.clone(),
                    reason: format!("the event loop panicked: {reason}"),
                });
                None
            }
        }
    }

    /// Record which quota `tenant`'s events wait for; the embedder is told when they start
    /// waiting.
    fn waiting(&self, tenant: &Running, now: Option<QuotaLimit>) {
        let mut waiting = tenant.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if *waiting != now {
            *waiting = now;
            if let Some(quota) = now {
                if quota == QuotaLimit::Breaker {
                    tracing::warn!(
                        tenant = tenant.name,
                        "its processor ran to its time or fuel limit {} times in a row: its events are slowed down until one ends by itself",
                        breaker::TRIP_AFTER
                    );
                }
                self.subscribers.send(&HostEvent::WaitingForQuota {
                    tenant: tenant.name.clone(),
                    quota,
                });
            }
        }
    }
}
