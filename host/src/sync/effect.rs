//! What processing an event changes in the node's database, decided first and written
//! later: a batch of events is prepared (in parallel), then all their effects are committed
//! in one transaction (group commit).

use anyhow::Result;
use rusqlite::Connection;

use super::node::Node;
use crate::model::{Replica, SyncReason};
use crate::store::events::{self, Event, Kind, NewEvent};
use crate::store::outbox;
use crate::store::twins::{self, Twin};

/// The outcome of a prepared event.
pub(super) struct Prepared {
    pub effect: Effect,
    pub note: String,
    pub log: String,
}

// One per event in a batch, short-lived: boxing the large variants would only add allocations.
#[allow(clippy::large_enum_variant)]
pub(super) enum Effect {
    /// Nothing to write besides finishing the event.
    Nothing,
    /// Queue a message for the other node and remember what was sent.
    Send {
        message_id: String,
        body: String,
        twin_id: String,
        seq: i64,
        replica: Replica,
    },
    /// A received replica was applied to the tracker: record the twin, queue follow-ups.
    Applied {
        twin: Twin,
        replica: Replica,
        /// Events the processor asked for, in order (sync back, unexalate).
        follow_ups: Vec<Kind>,
    },
    /// The other side stopped syncing the twin.
    Unexalated { twin_id: String },
    /// This side stops syncing the twin, telling the other side if it can.
    Unexalate {
        twin_id: String,
        message: Option<(String, String)>,
    },
}

impl Node {
    /// Write a prepared event's effects and finish it, inside the batch's transaction.
    pub(super) fn commit(
        &self,
        tx: &Connection,
        event: &Event,
        prepared: &Prepared,
        now: i64,
    ) -> Result<()> {
        match &prepared.effect {
            Effect::Nothing => {}
            Effect::Send {
                message_id,
                body,
                twin_id,
                seq,
                replica,
            } => {
                outbox::insert(tx, message_id, &event.connection, body)?;
                twins::record_sent(tx, twin_id, *seq, replica)?;
            }
            Effect::Applied {
                twin,
                replica,
                follow_ups,
            } => {
                twins::record_received(tx, twin, replica, now)?;
                for kind in follow_ups {
                    let id = self.next_event_id(tx)?;
                    events::insert(
                        tx,
                        &NewEvent {
                            id: &id,
                            kind: *kind,
                            connection: &event.connection,
                            twin_id: &twin.twin_id,
                            reason: SyncReason::SyncBack,
                            hop: event.hop + 1,
                            message_seq: None,
                            message: None,
                        },
                        now,
                    )?;
                }
            }
            Effect::Unexalated { twin_id } => {
                twins::unexalate(tx, twin_id, now)?;
            }
            Effect::Unexalate { twin_id, message } => {
                if let Some((id, body)) = message {
                    outbox::insert(tx, id, &event.connection, body)?;
                }
                twins::unexalate(tx, twin_id, now)?;
            }
        }
        events::finish(tx, event.seq, &prepared.note, &prepared.log, now)
    }
}
