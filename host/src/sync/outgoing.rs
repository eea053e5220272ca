//! Processing an outgoing event: read the local issue, run the outgoing processor, and queue
//! the replica as a message for the other node.

use std::borrow::Cow;

use super::failure::{Failed, MAX_SYNC_BACK_HOPS, ProcessorInput, SyncFailure};
use super::message::{MESSAGE_VERSION, MessageKind, SyncMessage};
use super::node::Node;
use crate::model::{Replica, SyncReason};
use crate::runtime::Call;
use crate::store::events::{self, Event};
use crate::store::outbox;
use crate::store::twins::{self, Twin};

impl Node {
    pub(super) fn process_outgoing(&self, event: &Event) -> Result<(), Failed> {
        let now = self.now_ms();
        let Some(twin) = self.store.read(|db| twins::get(db, &event.twin_id))? else {
            // Unexalated since the event was queued: nothing to send any more.
            self.store.write(|tx| {
                events::finish(
                    tx,
                    event.seq,
                    "twin no longer under sync: nothing sent",
                    "",
                    now,
                )
            })?;
            return Ok(());
        };
        let connection =
            self.connection(&event.connection)
                .ok_or_else(|| SyncFailure::UnknownConnection {
                    name: event.connection.clone(),
                })?;
        let plugin =
            connection
                .outgoing
                .as_ref()
                .ok_or_else(|| SyncFailure::UnknownConnection {
                    name: event.connection.clone(),
                })?;
        let issue =
            self.tracker
                .get(&twin.local_key)?
                .ok_or_else(|| SyncFailure::LocalIssueMissing {
                    key: twin.local_key.clone(),
                })?;
        let call = Call {
            ctx: self.context(&connection, event, false),
            limits: &connection.limits,
            can_send: connection.can_send(),
            directory: self.store.clone(),
        };
        let outcome = plugin.run_outgoing(&self.runtime, call, &issue);
        let log = outcome.log;
        let fail = |failure: SyncFailure| {
            let input = ProcessorInput {
                ctx: self.context(&connection, event, false),
                replica: None,
                previous: None,
                issue: Cow::Borrowed(&issue),
            };
            Failed::after_run(failure, &log, &input)
        };
        let replica = outcome.result.map_err(|e| fail(e.into()))?;
        let Some(replica) = replica else {
            self.store.write(|tx| {
                events::finish(
                    tx,
                    event.seq,
                    "the outgoing processor sent nothing",
                    &log,
                    now,
                )
            })?;
            return Ok(());
        };
        if let Some(note) = check_bounce(event, &twin, &replica).map_err(fail)? {
            self.store
                .write(|tx| events::finish(tx, event.seq, note, &log, now))?;
            return Ok(());
        }

        let seq = twin.sent_seq + 1;
        let message = SyncMessage {
            version: MESSAGE_VERSION,
            id: event.id.clone(),
            connection: event.connection.clone(),
            twin: twin.twin_id.clone(),
            seq,
            kind: MessageKind::Update,
            reason: event.reason,
            hop: event.hop,
            sender_key: twin.local_key.clone(),
            replica: Some(replica),
        };
        let body = serde_json::to_string(&message).map_err(anyhow::Error::from)?;
        let replica = message.replica.as_ref().expect("set above");
        self.store.write(|tx| {
            outbox::insert(tx, &message.id, &message.connection, &body)?;
            twins::record_sent(tx, &twin.twin_id, seq, replica)?;
            events::finish(
                tx,
                event.seq,
                &format!("sent as message {seq} of twin {}", twin.twin_id),
                &log,
                now,
            )
        })?;
        Ok(())
    }
}

/// Decide whether a replica is worth sending. `Ok(Some(note))`: nothing to send, finish with
/// the note. `Err`: a sync-back chain that keeps bouncing, stopped.
fn check_bounce(
    event: &Event,
    twin: &Twin,
    replica: &Replica,
) -> Result<Option<&'static str>, SyncFailure> {
    let unchanged = twin
        .last_sent
        .as_ref()
        .is_some_and(|last| last.same_content(replica));
    match event.reason {
        SyncReason::SyncBack if event.hop > MAX_SYNC_BACK_HOPS => Err(SyncFailure::SyncBackLoop {
            hops: event.hop,
            why: format!(
                "the chain went past the limit of {MAX_SYNC_BACK_HOPS} sync backs in a row"
            ),
        }),
        // Hop 1 is the sync back a processor asked for on purpose; from hop 2 on, a replica
        // that says nothing new means the two sides are only bouncing it.
        SyncReason::SyncBack if event.hop >= 2 && unchanged => Err(SyncFailure::SyncBackLoop {
            hops: event.hop,
            why: "the replica bounced back unchanged".into(),
        }),
        SyncReason::LocalChange if unchanged => {
            Ok(Some("replica unchanged since last sent: nothing sent"))
        }
        _ => Ok(None),
    }
}

impl Node {
    /// Processing an unexalate: tell the other node (in order, after what was sent before),
    /// then forget the link here.
    pub(super) fn process_unexalate(&self, event: &Event) -> Result<(), Failed> {
        let now = self.now_ms();
        let Some(twin) = self.store.read(|db| twins::get(db, &event.twin_id))? else {
            self.store.write(|tx| {
                events::finish(
                    tx,
                    event.seq,
                    "not under sync any more: nothing to do",
                    "",
                    now,
                )
            })?;
            return Ok(());
        };
        let sends = self
            .connection(&event.connection)
            .is_some_and(|c| c.can_send());
        let message = SyncMessage {
            version: MESSAGE_VERSION,
            id: event.id.clone(),
            connection: event.connection.clone(),
            twin: twin.twin_id.clone(),
            seq: twin.sent_seq + 1,
            kind: MessageKind::Unexalate,
            reason: event.reason,
            hop: event.hop,
            sender_key: twin.local_key.clone(),
            replica: None,
        };
        let body = serde_json::to_string(&message).map_err(anyhow::Error::from)?;
        self.store.write(|tx| {
            if sends {
                outbox::insert(tx, &message.id, &message.connection, &body)?;
            }
            twins::unexalate(tx, &twin.twin_id, now)?;
            let note = if sends {
                "unexalated: the other side is told, the link is gone, the issue stays"
            } else {
                "unexalated here (this side cannot send, so the other side keeps its link)"
            };
            events::finish(tx, event.seq, note, "", now)
        })?;
        Ok(())
    }
}
