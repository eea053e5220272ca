//! Preparing an outgoing event: read the local issue, run the outgoing processor, and make
//! the replica into a message for the other node.

use std::borrow::Cow;

use super::effect::{Effect, Prepared};
use super::failure::{Failed, MAX_SYNC_BACK_HOPS, ProcessorInput, SyncFailure};
use super::message::{MESSAGE_VERSION, MessageKind, SyncMessage};
use super::node::Node;
use crate::model::{Replica, SyncReason};
use crate::runtime::Call;
use crate::store::events::Event;
use crate::store::twins::{self, Twin};

impl Node {
    pub(super) fn prepare_outgoing(&self, event: &Event) -> Result<Prepared, Failed> {
        let Some(twin) = self.store.read(|db| twins::get(db, &event.twin_id))? else {
            // Unexalated since the event was queued: nothing to send any more.
            return Ok(nothing(
                "twin no longer under sync: nothing sent",
                String::new(),
            ));
        };
        let unknown = || SyncFailure::UnknownConnection {
            name: event.connection.clone(),
        };
        let connection = self.connection(&event.connection).ok_or_else(unknown)?;
        let plugin = connection.outgoing.as_ref().ok_or_else(unknown)?;
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
            return Ok(nothing("the outgoing processor sent nothing", log));
        };
        if let Some(note) = check_bounce(event, &twin, &replica).map_err(fail)? {
            return Ok(nothing(note, log));
        }

        let seq = twin.sent_seq + 1;
        let mut message = SyncMessage {
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
        // Kept with the twin as what was sent last (the message was made with it).
        let replica = message.replica.take().unwrap_or_default();
        Ok(Prepared {
            note: format!("sent as message {seq} of twin {}", twin.twin_id),
            effect: Effect::Send {
                message_id: message.id,
                body,
                twin_id: twin.twin_id,
                seq,
                replica,
            },
            log,
        })
    }

    /// Preparing an unexalate: tell the other node (in order, after what was sent before),
    /// then forget the link here.
    pub(super) fn prepare_unexalate(&self, event: &Event) -> Result<Prepared, Failed> {
        let Some(twin) = self.store.read(|db| twins::get(db, &event.twin_id))? else {
            return Ok(nothing(
                "not under sync any more: nothing to do",
                String::new(),
            ));
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
        Ok(Prepared {
            note: if sends {
                "unexalated: the other side is told, the link is gone, the issue stays".into()
            } else {
                "unexalated here (this side cannot send, so the other side keeps its link)".into()
            },
            effect: Effect::Unexalate {
                twin_id: twin.twin_id,
                message: sends.then_some((message.id, body)),
            },
            log: String::new(),
        })
    }
}

fn nothing(note: &str, log: String) -> Prepared {
    Prepared {
        effect: Effect::Nothing,
        note: note.into(),
        log,
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
