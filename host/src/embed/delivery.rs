//! Messages between tenants, in process: each round moves the outbox of every tenant that
//! rang (it committed events, or was given work) to the tenant at the other end of each
//! of its connections, and acknowledges what was taken. Every so often all outboxes are
//! looked at, for messages that could not go earlier (the other tenant was away, or took
//! an earlier message first).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Shared;
use super::tenant::Running;
use crate::sync::Receipt;

/// Messages moved per connection in one round.
const BATCH: usize = 256;
/// How long the loop sleeps when nothing rang.
const IDLE: Duration = Duration::from_millis(500);
/// How often every outbox is looked at.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl Shared {
    /// Move messages between the tenants' outboxes until the host stops.
    pub(super) fn deliver_loop(&self) {
        let mut generation = u64::MAX;
        let mut tenants: Vec<Arc<Running>> = Vec::new();
        let mut by_instance: HashMap<String, Arc<Running>> = HashMap::new();
        let mut sweep_at = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let seen = self.delivery_bell.rings();
            let current = self.generation.load(Ordering::Acquire);
            if current != generation {
                generation = current;
                tenants = self.running();
                by_instance = tenants
                    .iter()
                    .map(|t| (t.node.instance().to_string(), t.clone()))
                    .collect();
                // A tenant came: messages for it may wait in the others' outboxes.
                sweep_at = Instant::now();
            }
            let sweep = Instant::now() >= sweep_at;
            if sweep {
                sweep_at = Instant::now() + SWEEP_EVERY;
            }
            let mut moved = 0;
            for tenant in &tenants {
                // Both taken, so that a sweep leaves no stale ring behind.
                let rang = tenant.wake.take_outbox();
                if !(rang || sweep) || tenant.stop.load(Ordering::Relaxed) {
                    continue;
                }
                match deliver_from(tenant, &by_instance) {
                    Ok((count, more)) => {
                        moved += count;
                        if more {
                            tenant.wake.outbox_changed();
                        }
                    }
                    Err(error) => {
                        tracing::error!(
                            tenant = tenant.name,
                            "cannot deliver messages between tenants: {error:#}"
                        )
                    }
                }
            }
            if moved == 0 {
                self.delivery_bell.wait(seen, IDLE);
            }
        }
    }
}

/// Move `tenant`'s waiting messages to the tenants they are for: how many were taken, and
/// whether more wait (a full batch went).
fn deliver_from(
    tenant: &Running,
    by_instance: &HashMap<String, Arc<Running>>,
) -> Result<(usize, bool)> {
    let node = &tenant.node;
    let (mut delivered, mut more) = (0, false);
    for connection in node.connections() {
        let Some(peer) = by_instance.get(&connection.remote_instance) else {
            continue;
        };
        if peer.stop.load(Ordering::Relaxed) {
            continue;
        }
        let messages = node.outbox(&connection.name, BATCH)?;
        if messages.is_empty() {
            continue;
        }
        more |= messages.len() == BATCH;
        let receipts = peer.node.receive_all(&messages)?;
        // As the HTTP sender does: what the peer took is acknowledged, a message it refused
        // for good is a sync error of its twin (whose later messages wait: the peer answers
        // them out of order), the other twins go on.
        let mut taken = Vec::new();
        for (message, receipt) in messages.iter().zip(receipts) {
            match receipt {
                Receipt::Accepted | Receipt::Duplicate => taken.push(message.id.clone()),
                Receipt::OutOfOrder { .. } => {}
                Receipt::Refused { reason } | Receipt::Forbidden { reason } => {
                    tracing::error!(connection = %connection.name, "{} refused message {}: {reason}", peer.node.instance(), message.id);
                    node.refused(message, &reason)?;
                }
            }
        }
        node.acknowledge(&taken)?;
        if !taken.is_empty() {
            peer.wake.ring();
        }
        delivered += taken.len();
    }
    Ok((delivered, more))
}
