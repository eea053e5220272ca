//! Messages between tenants, in process: each round moves the outbox of every tenant that
//! rang (it committed events, or was given work) to the tenant at the other end of each
//! of its connections, and acknowledges what was taken. When a tenant comes, the tenants
//! with a connection to it ring (messages for it may wait in their outboxes); a tenant
//! whose messages could not all go (the other tenant took an earlier one first) is tried
//! again every few seconds. An idle tenant's outbox is not read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Shared;
use super::roster::{REREAD, Refresh, Roster};
use super::tenant::Running;
use crate::service::workers::leads;
use crate::sync::Receipt;

/// Messages moved per connection in one round: few enough that a tenant with a backlog
/// does not hold up another tenant's next message for long.
const BATCH: usize = 64;
/// How long the loop sleeps when nothing rang.
const IDLE: Duration = Duration::from_millis(500);
/// How often messages that could not go are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

impl Shared {
    /// Move messages between the tenants' outboxes until the host stops.
    pub(super) fn deliver_loop(&self) {
        let mut roster = Roster::default();
        let mut by_instance: HashMap<String, Arc<Running>> = HashMap::new();
        // Tenants with messages that could not go, by name.
        let mut stuck: HashSet<String> = HashSet::new();
        let mut carried: Vec<String> = Vec::new();
        let mut retry_at = Instant::now() + RETRY_EVERY;
        while !self.stop.load(Ordering::Relaxed) {
            let seen = self.delivery_rung.bell.rings();
            let refresh = roster.refresh(self);
            let tenants = &roster.tenants;
            if refresh == Refresh::Read {
                let before = std::mem::take(&mut by_instance);
                by_instance = tenants
                    .iter()
                    .map(|t| (t.node.instance().to_string(), t.clone()))
                    .collect();
                // Messages for a tenant that came may wait in the outboxes of the tenants
                // connected to it.
                let came: HashSet<&str> = by_instance
                    .iter()
                    .filter(|(instance, t)| {
                        before.get(*instance).is_none_or(|old| !Arc::ptr_eq(old, t))
                    })
                    .map(|(instance, _)| instance.as_str())
                    .collect();
                for tenant in tenants {
                    let connections = tenant.node.connections();
                    if connections
                        .iter()
                        .any(|c| came.contains(c.remote_instance.as_str()))
                    {
                        tenant.wake.outbox_changed();
                    }
                }
            }
            let retry = Instant::now() >= retry_at;
            if retry {
                retry_at = Instant::now() + RETRY_EVERY;
            }
            // The tenants that rang, those that rang before the roster had them, and on a
            // retry those whose messages could not all go.
            let mut names = std::mem::take(&mut carried);
            names.extend(self.delivery_rung.take());
            if retry {
                names.extend(stuck.iter().cloned());
            }
            let mut moved = 0;
            let mut done = HashSet::new();
            for name in names {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let current = roster.by_name.get(&name);
                let Some(tenant) = current.filter(|t| !t.stop.load(Ordering::Relaxed)) else {
                    // Maybe added (again) since the roster was read (a tenant restarted:
                    // the roster may still hold its stopped self).
                    if roster.behind(self) {
                        carried.push(name);
                    }
                    continue;
                };
                if !done.insert(name) {
                    continue;
                }
                let rang = tenant.wake.take_outbox();
                if !(rang || retry && stuck.contains(&tenant.name)) {
                    continue;
                }
                let was_open = tenant.node.store().is_open();
                match deliver_from(tenant, &by_instance) {
                    Ok(delivery) => {
                        moved += delivery.taken;
                        if delivery.more {
                            tenant.wake.outbox_changed();
                        }
                        if delivery.left {
                            stuck.insert(tenant.name.clone());
                        } else {
                            stuck.remove(&tenant.name);
                        }
                        // Opened only to find an empty outbox: closed again (see the
                        // event loop's `visit`).
                        if !was_open && delivery.taken == 0 {
                            tenant.node.store().release();
                        }
                    }
                    Err(error) => {
                        stuck.insert(tenant.name.clone());
                        tracing::error!(
                            tenant = tenant.name,
                            "cannot deliver messages between tenants: {error:#}"
                        )
                    }
                }
            }
            if moved == 0 {
                let idle = if carried.is_empty() { IDLE } else { REREAD };
                self.delivery_rung.bell.wait(seen, idle);
            }
        }
    }
}

/// What one tenant's delivery did.
struct Delivery {
    /// Messages the other tenants took.
    taken: usize,
    /// A full batch went: more may wait.
    more: bool,
    /// Messages stayed (taken out of order).
    left: bool,
}

/// Move `tenant`'s waiting messages to the tenants they are for.
fn deliver_from(tenant: &Running, by_instance: &HashMap<String, Arc<Running>>) -> Result<Delivery> {
    let node = &tenant.node;
    let mut delivery = Delivery {
        taken: 0,
        more: false,
        left: false,
    };
    for connection in node.connections() {
        let Some(peer) = by_instance.get(&connection.remote_instance) else {
            continue;
        };
        if peer.stop.load(Ordering::Relaxed) {
            continue;
        }
        // One process of those hosting the tenant on one PostgreSQL database sends a
        // connection's messages, in order (as the HTTP sender does); the others try again.
        if !leads(node, &format!("send:{}", connection.name)) {
            delivery.left = true;
            continue;
        }
        let messages = node.outbox(&connection.name, BATCH)?;
        if messages.is_empty() {
            continue;
        }
        delivery.more |= messages.len() == BATCH;
        let receipts = peer.node.receive_all(&messages)?;
        // As the HTTP sender does: what the peer took is acknowledged, a message it refused
        // for good is a sync error of its twin (whose later messages wait: the peer answers
        // them out of order), the other twins go on.
        let mut taken = Vec::new();
        for (message, receipt) in messages.iter().zip(receipts) {
            match receipt {
                Receipt::Accepted | Receipt::Duplicate => taken.push(message.id.clone()),
                Receipt::OutOfOrder { .. } => delivery.left = true,
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
        delivery.taken += taken.len();
    }
    Ok(delivery)
}
