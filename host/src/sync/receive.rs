//! Taking a message from a peer: what it may touch and whether it is new. Signatures are
//! checked before this (by the transport); here every message is tied to its connection.
//!
//! Authorisation: a message may only name ids that belong to its connection. Its id must be
//! in the namespace of the connection's remote instance (`ids`), so a peer can neither take
//! an id this node will make nor one another peer will send. Its twin must be a twin of the
//! connection (known here on no other connection), or, for a twin this node has never
//! seen, one the remote instance named (the side that exalates names the twin). Anything
//! else is refused (`Forbidden`) before it is stored or answered with a sequence number.
//!
//! Duplicates are recognised by id and by number together, per connection and twin:
//! - the id is stored with the same twin, number and content: a redelivery (`Duplicate`);
//! - the id is stored with anything else, or the twin's number is stored under another id:
//!   the two disagree (a sender whose database went back, say), refused with both ids so
//!   that the sender's operator sees it as a sync error; nothing is dropped silently;
//! - neither is stored and the number is at most the last received: a redelivery of a
//!   message whose record was deleted after `keep-events-days` (`Duplicate`);
//! - otherwise the number must be the next one (`Accepted`), or an earlier one is missing
//!   (`OutOfOrder`).

use anyhow::Result;

use super::ids;
use super::message::{MessageKind, Receipt, SyncMessage};
use super::node::Node;
use crate::model::SyncReason;
use crate::store::bodies::Packed;
use crate::store::events::{self, Kind, LastReceived, NewEvent, Waiting};
use crate::store::sql::Sql;
use crate::store::twins::{self, Known};

impl Node {
    /// Store `message` as an incoming event, if it may be; `body` is the message packed
    /// for the store.
    pub(super) fn accept(
        &self,
        tx: &dyn Sql,
        message: &SyncMessage,
        body: &Packed,
        now: i64,
    ) -> Result<Receipt> {
        if let Err(reason) = message.validate() {
            return Ok(Receipt::Refused { reason });
        }
        let Some(connection) = self.connection(&message.connection) else {
            return Ok(Receipt::Refused {
                reason: format!(
                    "connection `{}` is not configured on this node",
                    message.connection
                ),
            });
        };
        if !connection.can_receive() {
            return Ok(Receipt::Refused {
                reason: format!(
                    "connection `{}` only sends from this node",
                    message.connection
                ),
            });
        }
        let remote = connection.remote_instance.as_str();
        if ids::event_owner(&message.id) != Some(remote) {
            return Ok(Receipt::Forbidden {
                reason: format!(
                    "message id `{}` is not one of {remote}'s ids ({remote}-DATABASE-N): a peer sends only ids it made",
                    message.id
                ),
            });
        }
        let known = twins::known_on(tx, &message.twin, &message.connection)?;
        if known == Known::Elsewhere {
            return Ok(Receipt::Forbidden {
                reason: format!(
                    "twin `{}` is not a twin of connection `{}`",
                    message.twin, message.connection
                ),
            });
        }
        if known == Known::Nowhere && ids::twin_owner(&message.twin) != Some(remote) {
            return Ok(Receipt::Forbidden {
                reason: format!(
                    "twin `{}` is not a twin of connection `{}`, and a new twin is named by {remote} ({remote}-DATABASE-tN)",
                    message.twin, message.connection
                ),
            });
        }
        if let Some(receipt) = self.seen_before(tx, message)? {
            return Ok(receipt);
        }
        let received = events::last_received(tx, &message.connection, &message.twin)?;
        let last = received.map_or(0, |r| r.message_seq);
        if message.seq <= last {
            // Its record was deleted after the keeping time (an older one than the last
            // is kept only that long): a redelivery of a message applied long ago.
            return Ok(Receipt::Duplicate);
        }
        let next = last.saturating_add(1);
        if message.seq > next {
            return Ok(Receipt::OutOfOrder { expected: next });
        }
        let event = NewEvent {
            id: &message.id,
            kind: Kind::Incoming,
            connection: &message.connection,
            twin_id: &message.twin,
            reason: message.reason,
            hop: message.hop,
            message_seq: Some(message.seq),
            message: Some(body),
        };
        match self.superseded_by(tx, message, received)? {
            Some(waiting) => events::supersede(tx, &waiting, &event, now)?,
            None => events::insert(tx, &event, now)?,
        }
        Ok(Receipt::Accepted)
    }

    /// The received change of the twin that `message` makes needless, if any: the twin's
    /// last open event, a local change's update that waits behind another event (nothing
    /// has read it). Each message is the sender's whole replica with every field's stamp,
    /// so applying the later one alone decides what applying both would, as when the
    /// sender folds changes into one event; a receiver that fell behind then applies a
    /// twin's latest state once, not every state in between. Sync backs, unexalates and
    /// retries are always applied.
    fn superseded_by(
        &self,
        tx: &dyn Sql,
        message: &SyncMessage,
        last: Option<LastReceived>,
    ) -> Result<Option<Waiting>> {
        let (Some(last), MessageKind::Update, SyncReason::LocalChange) =
            (last, message.kind, message.reason)
        else {
            return Ok(None);
        };
        let Some(waiting) = events::incoming_waiting(tx, &message.twin, &last)? else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct KindOf {
            kind: MessageKind,
        }
        let update = serde_json::from_str::<KindOf>(&waiting.message)
            .is_ok_and(|waiting| waiting.kind == MessageKind::Update);
        Ok(update.then_some(waiting))
    }

    /// `Duplicate` for a message stored before exactly as it is; a refusal when its id or
    /// its number is stored with something else; `None` when neither is stored. Compared as
    /// messages, not as text: a release that writes the same message differently (a stamp
    /// without its empty `replaced_at`) still knows a message an earlier one stored.
    fn seen_before(&self, tx: &dyn Sql, message: &SyncMessage) -> Result<Option<Receipt>> {
        let conflict = |reason: String| {
            tracing::error!(
                connection = %message.connection,
                twin = %message.twin,
                message = %message.id,
                "refused a message that contradicts one received before: {reason}"
            );
            Ok(Some(Receipt::Refused { reason }))
        };
        if let Some(stored) = events::stored(tx, &message.id)? {
            let same = stored.kind == "incoming"
                && stored.connection == message.connection
                && stored.twin_id == message.twin
                && stored.message_seq == Some(message.seq)
                && stored
                    .message
                    .as_deref()
                    .and_then(|text| serde_json::from_str::<SyncMessage>(text).ok())
                    .is_some_and(|stored| stored == *message);
            if same {
                return Ok(Some(Receipt::Duplicate));
            }
            return conflict(format!(
                "message id `{}` was received before with other content (as message {} of twin `{}`); \
                 the sender reuses ids (was its database restored?)",
                message.id,
                stored.message_seq.unwrap_or_default(),
                stored.twin_id
            ));
        }
        if let Some(id) = events::received_as(tx, &message.connection, &message.twin, message.seq)?
        {
            return conflict(format!(
                "message {} of twin `{}` was received before as `{id}`, this one is `{}`; \
                 the sender reuses numbers (was its database restored?)",
                message.seq, message.twin, message.id
            ));
        }
        Ok(None)
    }
}
