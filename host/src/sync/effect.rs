//! What processing an event changes in the node's database, decided first and written
//! later: a batch of events is prepared (in parallel), then all their effects are committed
//! in one transaction (group commit).

use crate::store::sql::Sql;
use anyhow::Result;

use super::history::Diff;
use super::node::Node;
use crate::model::SyncReason;
use crate::runtime::RecordedConflict;
use crate::store::bodies::{self, Packed};
use crate::store::events::{self, Event, Kind, NewEvent};
use crate::store::twins::{self, Twin};
use crate::store::{conflicts, links, outbox};

/// The outcome of a prepared event.
pub(super) struct Prepared {
    pub effect: Effect,
    pub note: String,
    pub log: String,
    /// What the processor was given (JSON, packed by the worker), to store with the event
    /// if it was not stored already.
    pub input: Option<Packed>,
}

/// A message ready to queue for the other node, packed (see [`bodies::pack`]).
pub(super) struct Outbound {
    pub message_id: String,
    pub body: Packed,
}

// One per event in a batch, short-lived: boxing the large variants would only add allocations.
#[allow(clippy::large_enum_variant)]
pub(super) enum Effect {
    /// Nothing to write besides finishing the event.
    Nothing,
    /// A local issue was read for sending: remember it as the merge base, with its field
    /// times, and queue the message if there is one.
    Outgoing {
        twin_id: String,
        /// The twin's keys, for its history entry (read with the twin: no event of the
        /// twin can change them before this one commits).
        keys: (String, Option<String>),
        send: Option<Outbound>,
        /// The operator's decisions on the twin's conflicts whose stamps this event sends.
        decided: Vec<i64>,
        /// The local issue, its stamps and the replica sent, packed.
        state: twins::Outgoing,
    },
    /// A received replica was applied to the tracker: record the twin, link new comments,
    /// record conflicts, queue follow-ups.
    Applied {
        twin: Twin,
        /// The replica received and the local issue it led to, with their stamps, packed.
        state: twins::Received,
        follow_ups: Vec<Kind>,
        links: Vec<(String, String)>,
        conflicts: Vec<RecordedConflict>,
        /// Fields on which the two sides still differ: open conflicts on the others close.
        still_differ: Vec<String>,
        /// What changed in the local issue, for the twin's history.
        diff: Diff,
        /// Send the issue as it is (the sides disagree on what was exchanged).
        resync: bool,
    },
    /// The other side stopped syncing the twin.
    Unexalated { twin_id: String },
    /// This side stops syncing the twin, telling the other side if it can.
    Unexalate {
        twin_id: String,
        message: Option<Outbound>,
    },
}

impl Node {
    /// `json` packed for this node's store, before the transaction that stores it (see
    /// [`bodies::pack`]).
    pub(super) fn pack(&self, json: &str) -> Result<Packed> {
        bodies::pack(self.store.dialect(), json)
    }

    /// Local issue `local_key` was written by twinsync for a twin of `connection` (a change
    /// applied, a conflict's value kept): the issue's twins on other connections pass the
    /// change on, as they do a person's edit (the change feed leaves twinsync's own writes
    /// out).
    pub(super) fn pass_on(
        &self,
        tx: &dyn Sql,
        local_key: &str,
        connection: &str,
        now: i64,
    ) -> Result<()> {
        for (other, other_connection) in twins::of_issue(tx, local_key)? {
            let sends = self
                .connection(&other_connection)
                .is_some_and(|c| c.can_send());
            if other_connection != connection && sends {
                self.queue(
                    tx,
                    Kind::Outgoing,
                    &other_connection,
                    &other,
                    SyncReason::LocalChange,
                    0,
                    now,
                )?;
            }
        }
        Ok(())
    }

    /// Write a prepared event's effects and finish it, inside the batch's transaction.
    pub(super) fn commit(
        &self,
        tx: &dyn Sql,
        event: &Event,
        prepared: &Prepared,
        now: i64,
    ) -> Result<()> {
        self.record_done(tx, event, prepared, now)?;
        match &prepared.effect {
            Effect::Nothing => {}
            Effect::Outgoing {
                twin_id,
                keys: _,
                send,
                decided,
                state,
            } => {
                if let Some(out) = send {
                    outbox::insert(tx, &out.message_id, &event.connection, twin_id, &out.body)?;
                }
                twins::record_outgoing(tx, twin_id, state)?;
                conflicts::sent(tx, decided, now)?;
            }
            Effect::Applied {
                twin,
                state,
                follow_ups,
                links: new_links,
                conflicts: recorded,
                still_differ,
                diff: _,
                resync,
            } => {
                twins::record_received(tx, twin, state, now)?;
                for (local_id, remote_id) in new_links {
                    links::link(tx, &twin.twin_id, local_id, remote_id)?;
                }
                conflicts::close_converged(tx, &twin.twin_id, still_differ, now)?;
                for c in recorded {
                    conflicts::record(
                        tx,
                        &twin.twin_id,
                        &twin.connection,
                        &c.field,
                        &c.local_value,
                        &c.remote_value,
                        &event.id,
                        now,
                    )?;
                }
                for kind in follow_ups {
                    self.queue(
                        tx,
                        *kind,
                        &twin.connection,
                        &twin.twin_id,
                        SyncReason::SyncBack,
                        event.hop.saturating_add(1),
                        now,
                    )?;
                }
                if *resync
                    && self
                        .connection(&twin.connection)
                        .is_some_and(|c| c.can_send())
                {
                    self.queue(
                        tx,
                        Kind::Outgoing,
                        &twin.connection,
                        &twin.twin_id,
                        SyncReason::Retry,
                        0,
                        now,
                    )?;
                }
                self.pass_on(tx, &twin.local_key, &twin.connection, now)?;
            }
            Effect::Unexalated { twin_id } => {
                twins::unexalate(tx, &event.connection, twin_id, now)?;
            }
            Effect::Unexalate { twin_id, message } => {
                if let Some(out) = message {
                    outbox::insert(tx, &out.message_id, &event.connection, twin_id, &out.body)?;
                }
                twins::unexalate(tx, &event.connection, twin_id, now)?;
            }
        }
        if let Some(input) = &prepared.input {
            events::save_input(tx, event.seq, input)?;
        }
        events::finish(tx, event.seq, &prepared.note, &prepared.log, now)
    }

    /// Queue a new event for a twin.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn queue(
        &self,
        tx: &dyn Sql,
        kind: Kind,
        connection: &str,
        twin_id: &str,
        reason: SyncReason,
        hop: u32,
        now: i64,
    ) -> Result<()> {
        let id = self.next_event_id(tx)?;
        events::insert(
            tx,
            &NewEvent {
                id: &id,
                kind,
                connection,
                twin_id,
                reason,
                hop,
                message_seq: None,
                message: None,
            },
            now,
        )
    }
}
