//! What a host tells its embedder: each event of each tenant once its outcome is committed,
//! and a tenant whose loop failed. Delivered on bounded channels ([`Host::subscribe`]):
//! a subscriber that does not keep up loses notifications, never the sync (what matters
//! stays in the tenant's database: [`Tenant::sync_errors`]).
//!
//! [`Host::subscribe`]: super::Host::subscribe
//! [`Tenant::sync_errors`]: super::Tenant::sync_errors

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::store::events::{Event, Kind};
use crate::sync::SyncFailure;

/// Which way an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A local change, sent to the other side.
    Outgoing,
    /// A change from the other side, applied to the local tracker.
    Incoming,
    /// The end of a twin.
    Unexalate,
}

/// Something that happened in a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostEvent {
    /// An event did its work: `note` says what (`created EXT-1`, `sent`...).
    Synced {
        tenant: String,
        connection: String,
        twin: String,
        event: String,
        kind: EventKind,
        note: String,
    },
    /// An event failed for good: a sync error, its twin waits until it is retried or
    /// skipped ([`Tenant::retry`](super::Tenant::retry), [`Tenant::skip`](super::Tenant::skip)).
    SyncError {
        tenant: String,
        connection: String,
        twin: String,
        event: String,
        kind: EventKind,
        /// What kind of failure (`processor-error`, `timeout`, `tracker-rejected`...).
        error_kind: String,
        message: String,
    },
    /// An event failed for a passing reason (the tracker is down, say): it is retried later.
    Retrying {
        tenant: String,
        event: String,
        message: String,
    },
    /// A quota of the tenant is spent: its events wait (nothing fails, nothing is lost)
    /// until there is room again. Told once each time it starts waiting; its current state
    /// is [`Tenant::queue`](super::Tenant::queue)'s `waiting_for_quota`. With no quota
    /// set, `QuotaLimit::Breaker`: its processor keeps running to its time or fuel limit,
    /// and its events are slowed down until one ends by itself.
    WaitingForQuota {
        tenant: String,
        quota: super::QuotaLimit,
    },
    /// The tenant's event loop failed (a bug): the tenant no longer syncs. Remove it and add
    /// it again to restart it; nothing queued is lost.
    TenantStopped { tenant: String, reason: String },
}

impl HostEvent {
    pub(super) fn of(tenant: &str, event: &Event, outcome: Result<&str, &SyncFailure>) -> Self {
        let kind = match event.kind {
            Kind::Outgoing => EventKind::Outgoing,
            Kind::Incoming => EventKind::Incoming,
            Kind::Unexalate => EventKind::Unexalate,
        };
        match outcome {
            Ok(note) => HostEvent::Synced {
                tenant: tenant.to_string(),
                connection: event.connection.clone(),
                twin: event.twin_id.clone(),
                event: event.id.clone(),
                kind,
                note: note.to_string(),
            },
            Err(failure) if failure.is_transient() => HostEvent::Retrying {
                tenant: tenant.to_string(),
                event: event.id.clone(),
                message: failure.to_string(),
            },
            Err(failure) => HostEvent::SyncError {
                tenant: tenant.to_string(),
                connection: event.connection.clone(),
                twin: event.twin_id.clone(),
                event: event.id.clone(),
                kind,
                error_kind: failure.kind().to_string(),
                message: failure.to_string(),
            },
        }
    }
}

/// Notifications a subscriber may have waiting before newer ones are dropped.
pub const SUBSCRIBER_BACKLOG: usize = 4_096;

/// The host's subscribers.
#[derive(Default)]
pub(super) struct Subscribers(Mutex<Vec<SyncSender<HostEvent>>>);

impl Subscribers {
    pub(super) fn subscribe(&self) -> Receiver<HostEvent> {
        let (sender, receiver) = sync_channel(SUBSCRIBER_BACKLOG);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        receiver
    }

    /// Hand `event` to every subscriber without waiting: a full one misses it, a gone one
    /// is forgotten.
    pub(super) fn send(&self, event: &HostEvent) {
        let mut subscribers = self.0.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.retain(|subscriber| match subscriber.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(n: usize) -> HostEvent {
        HostEvent::TenantStopped {
            tenant: format!("t{n}"),
            reason: String::new(),
        }
    }

    #[test]
    fn a_slow_subscriber_misses_what_does_not_fit_and_a_gone_one_is_forgotten() {
        let subscribers = Subscribers::default();
        let slow = subscribers.subscribe();
        let gone = subscribers.subscribe();
        drop(gone);
        for n in 0..SUBSCRIBER_BACKLOG + 10 {
            subscribers.send(&stopped(n));
        }
        assert_eq!(subscribers.0.lock().unwrap().len(), 1);
        let got: Vec<HostEvent> = slow.try_iter().collect();
        assert_eq!(got.len(), SUBSCRIBER_BACKLOG);
        assert_eq!(got[0], stopped(0));
        // Read: it gets the next ones again.
        subscribers.send(&stopped(1));
        assert_eq!(slow.try_recv().ok(), Some(stopped(1)));
    }
}
