//! Per-tenant quotas: events per second, fuel per second, stored bytes. Past one, the
//! tenant's events wait (nothing fails, nothing is lost) until the quota has room again:
//! the rates refill continuously (a token bucket holding at most one second's worth), the
//! stored bytes when the database shrinks or the quota is raised.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::NodeStore;

/// What a tenant may use (`None`: no bound). See [`TenantConfig::quota`](crate::TenantConfig::quota).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quota {
    /// Events processed per second, on average; up to one second's worth at once.
    pub events_per_second: Option<f64>,
    /// Fuel (about one unit per WebAssembly instruction) its processors burn per second,
    /// on average. An event runs while the tenant is within its quota, so the tenant may go
    /// past it by what the events running at that moment burn (each at most its
    /// connection's fuel limit); its next events wait until that is paid back.
    pub fuel_per_second: Option<u64>,
    /// Bytes its database (with its write-ahead log) may take on disk.
    pub stored_bytes: Option<u64>,
}

/// The quota a tenant's events wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaLimit {
    EventsPerSecond,
    FuelPerSecond,
    StoredBytes,
    /// Not a quota set by the embedder: its processor keeps running to its time or fuel
    /// limit, so its events are slowed down until one ends by itself (see the module
    /// `schedule::breaker`).
    Breaker,
}

impl QuotaLimit {
    pub fn as_str(&self) -> &'static str {
        match self {
            QuotaLimit::EventsPerSecond => "events per second",
            QuotaLimit::FuelPerSecond => "fuel per second",
            QuotaLimit::StoredBytes => "stored bytes",
            QuotaLimit::Breaker => "its processor keeps running to its limit",
        }
    }
}

/// How often the database's size is read again.
const SIZE_EVERY: Duration = Duration::from_secs(1);

/// A rate: at most `rate` a second on average, `rate` at once. Spending may take it below
/// zero (fuel is known once spent): nothing more starts until it is paid back.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            rate: rate.max(f64::MIN_POSITIVE),
            tokens: rate,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
    }

    /// When `need` tokens will be there.
    fn ready_at(&self, need: f64) -> Instant {
        let missing = (need - self.tokens).max(0.0);
        self.at + Duration::from_secs_f64((missing / self.rate).min(3600.0))
    }
}

/// A tenant's quotas as they stand.
pub(in crate::embed) struct Quotas {
    events: Option<Bucket>,
    fuel: Option<Bucket>,
    stored: Option<(u64, Vec<PathBuf>)>,
    /// The database's size, and when it was read.
    size: Option<(u64, Instant)>,
    /// Fuel the node had burned when last charged.
    fuel_seen: u64,
    /// Its store, if its size is not its files' (PostgreSQL).
    store: Option<Arc<NodeStore>>,
}

impl Quotas {
    /// `database`: the tenant's database file (its log is next to it).
    pub(in crate::embed) fn new(quota: &Quota, database: PathBuf, now: Instant) -> Self {
        let mut log = database.clone().into_os_string();
        log.push("-wal");
        Quotas {
            events: quota.events_per_second.map(|r| Bucket::new(r, now)),
            fuel: quota.fuel_per_second.map(|r| Bucket::new(r as f64, now)),
            stored: quota
                .stored_bytes
                .map(|max| (max, vec![database, PathBuf::from(log)])),
            size: None,
            fuel_seen: 0,
            store: None,
        }
    }

    /// Its stored bytes are those of `store`'s tables (PostgreSQL), not of files.
    pub(in crate::embed) fn measured_in(mut self, store: &Arc<NodeStore>) -> Self {
        if store.is_shared() {
            self.store = Some(store.clone());
        }
        self
    }

    /// How many events may start now (`usize::MAX`: no bound), or which quota they wait
    /// for and until when to look again. `fuel_used`: what the tenant's node burned so far.
    pub(in crate::embed) fn room(
        &mut self,
        now: Instant,
        fuel_used: u64,
    ) -> Result<usize, (QuotaLimit, Instant)> {
        if let Some(fuel) = &mut self.fuel {
            fuel.refill(now);
            fuel.tokens -= fuel_used.saturating_sub(self.fuel_seen) as f64;
            self.fuel_seen = fuel_used;
            if fuel.tokens <= 0.0 {
                return Err((QuotaLimit::FuelPerSecond, fuel.ready_at(1.0)));
            }
        }
        if let Some((max, files)) = &self.stored {
            let size = match self.size {
                Some((size, at)) if now.saturating_duration_since(at) < SIZE_EVERY => size,
                _ => {
                    let on_postgres = self.store.as_ref().map(|s| s.stored_bytes());
                    let size = match on_postgres {
                        Some(Ok(Some(bytes))) => bytes,
                        // Unknown this time: the last size known (the database may be down).
                        Some(Err(error)) => {
                            tracing::warn!("cannot read the size of the tenant's state: {error:#}");
                            self.size.map_or(0, |(size, _)| size)
                        }
                        Some(Ok(None)) | None => files
                            .iter()
                            .filter_map(|f| std::fs::metadata(f).ok())
                            .map(|m| m.len())
                            .sum(),
                    };
                    self.size = Some((size, now));
                    size
                }
            };
            if size > *max {
                return Err((QuotaLimit::StoredBytes, now + SIZE_EVERY));
            }
        }
        match &mut self.events {
            None => Ok(usize::MAX),
            Some(events) => {
                events.refill(now);
                if events.tokens < 1.0 {
                    return Err((QuotaLimit::EventsPerSecond, events.ready_at(1.0)));
                }
                Ok(events.tokens as usize)
            }
        }
    }

    /// `count` events started.
    pub(in crate::embed) fn started(&mut self, count: usize) {
        if let Some(events) = &mut self.events {
            events.tokens -= count as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_wait_once_a_second_worth_is_spent_and_go_on_as_it_refills() {
        let start = Instant::now();
        let quota = Quota {
            events_per_second: Some(10.0),
            ..Quota::default()
        };
        let mut quotas = Quotas::new(&quota, PathBuf::from("/nonexistent"), start);
        assert_eq!(quotas.room(start, 0), Ok(10));
        quotas.started(10);
        let (limit, until) = quotas.room(start, 0).unwrap_err();
        assert_eq!(limit, QuotaLimit::EventsPerSecond);
        assert!(until > start && until <= start + Duration::from_millis(101));
        assert_eq!(quotas.room(start + Duration::from_millis(500), 0), Ok(5));
    }

    #[test]
    fn fuel_spent_past_the_quota_is_paid_back_before_more_starts() {
        let start = Instant::now();
        let quota = Quota {
            fuel_per_second: Some(1_000),
            ..Quota::default()
        };
        let mut quotas = Quotas::new(&quota, PathBuf::from("/nonexistent"), start);
        assert_eq!(quotas.room(start, 0), Ok(usize::MAX));
        // One event burned three seconds' worth.
        let (limit, until) = quotas.room(start, 3_000).unwrap_err();
        assert_eq!(limit, QuotaLimit::FuelPerSecond);
        assert!(
            until >= start + Duration::from_secs(2),
            "{:?}",
            until - start
        );
        assert!(
            quotas
                .room(start + Duration::from_millis(1_500), 3_000)
                .is_err()
        );
        assert!(
            quotas
                .room(start + Duration::from_millis(2_100), 3_000)
                .is_ok()
        );
    }

    #[test]
    fn a_database_past_its_bytes_waits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("twinsync.db");
        std::fs::write(&db, vec![0u8; 2_000]).unwrap();
        let quota = Quota {
            stored_bytes: Some(1_000),
            ..Quota::default()
        };
        let now = Instant::now();
        let mut quotas = Quotas::new(&quota, db, now);
        assert_eq!(
            quotas.room(now, 0).map_err(|e| e.0),
            Err(QuotaLimit::StoredBytes)
        );
    }
}
