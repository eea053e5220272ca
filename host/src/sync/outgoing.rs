//! Preparing an outgoing event: read the local issue, run the outgoing processor, and make
//! the replica into a message for the other node, unless it tells the other side nothing
//! it does not know.

use std::borrow::Cow;

use super::comment_ids;
use super::conflicts::decision_stamp;
use super::crash::CrashPoint;
use super::effect::{Effect, Outbound, Prepared};
use super::failure::{Failed, MAX_SYNC_BACK_HOPS, ProcessorInput, SyncFailure};
use super::message::{Applied, MESSAGE_VERSION, MessageKind, SyncMessage};
use super::node::Node;
use super::verify::digest;
use crate::model::fields::{self, FieldStamps};
use crate::model::{Issue, Replica, SyncReason};
use crate::runtime::{Call, MergeBase};
use crate::store::events::{self, Event};
use crate::store::twins::{self, Twin};
use crate::store::{conflicts, links};

impl Node {
    pub(super) fn prepare_outgoing(&self, event: &Event) -> Result<Prepared, Failed> {
        // What the event needs of the store, in one read.
        let stored = self.store.read(|db| {
            let Some(twin) = twins::get_to_send(db, &event.twin_id)? else {
                return Ok(None);
            };
            let writing = events::writing(db, &twin.local_key, &twin.twin_id)?;
            let comment_links = links::all(db, &twin.twin_id)?;
            let applied = match &twin.last_received {
                Some(_) => events::last_applied_before(db, &twin.twin_id, event.seq)?,
                None => None,
            };
            // An operator's decisions not sent yet: resolving a conflict queues a retry to
            // send them, but whichever outgoing event of the twin runs next takes them (that
            // retry may have been dropped, or failed).
            let decided = conflicts::unsent(db, &twin.twin_id)?;
            Ok(Some((twin, writing, comment_links, applied, decided)))
        })?;
        let Some((twin, writing, comment_links, applied, decided)) = stored else {
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
        if let Some(writing) = writing {
            // That event may have written the issue before a crash: read now, its write
            // would pass for a local edit. It runs first.
            return Err(SyncFailure::IssueBusy {
                key: twin.local_key.clone(),
                event: writing,
            }
            .into());
        }
        let issue =
            self.tracker
                .get(&twin.local_key)?
                .ok_or_else(|| SyncFailure::LocalIssueMissing {
                    key: twin.local_key.clone(),
                })?;
        // Who reads the issue: this twin, with this processor and its settings.
        let reader = format!("{} {}", twin.twin_id, plugin.fingerprint());
        if decided.is_empty() && read_already(event, &twin, &reader, &issue) {
            return Ok(nothing(
                "nothing new: the twin's last outgoing event read the issue as it is",
                String::new(),
            ));
        }

        // Fields written here since they were last stamped are new writes, stamped now (the
        // time the change was seen).
        let mut local_stamps = twin.local_stamps.clone();
        fields::stamp_local_writes(
            &mut local_stamps,
            twin.stamped.as_ref(),
            &issue,
            self.now_ms(),
            &self.instance,
        );
        for decided in &decided {
            let stamp = decision_stamp(
                &twin,
                &local_stamps,
                &decided.field,
                decided.at,
                &self.instance,
            );
            local_stamps.insert(decided.field.clone(), stamp);
        }
        let decided: Vec<i64> = decided.iter().map(|d| d.id).collect();

        let call = Call {
            ctx: self.context(&connection, event, false),
            limits: &connection.limits,
            can_send: connection.can_send(),
            directory: self.store.clone(),
            merge_base: MergeBase::default(),
        };
        self.plugins.started(&event.id, plugin);
        let outcome = plugin.run_outgoing(&self.runtime, call, &issue);
        self.burned(outcome.fuel_used);
        self.crash_point(CrashPoint::AfterProcessor);
        let log = outcome.log;
        let input = ProcessorInput {
            ctx: self.context(&connection, event, false),
            replica: None,
            previous: None,
            issue: Cow::Borrowed(&issue),
            merge_base: None,
        };
        let input = serde_json::to_string(&input).map_err(anyhow::Error::from)?;
        let fail = |failure: SyncFailure| Failed {
            failure,
            log: log.clone(),
            input: Some(input.clone()),
        };
        let replica = outcome.result.map_err(|e| fail(e.into()))?;
        // Packed once the processor succeeded: a failure stores the input itself.
        let packed = self.pack(&input)?;
        let dialect = self.store.dialect();
        let read_by = (event.reason == SyncReason::LocalChange).then_some(reader);
        let local_only = |note: &str, log: String| -> Result<Prepared, Failed> {
            Ok(Prepared {
                effect: Effect::Outgoing {
                    twin_id: twin.twin_id.clone(),
                    keys: (twin.local_key.clone(), twin.remote_key.clone()),
                    send: None,
                    decided: decided.clone(),
                    state: twins::Outgoing::pack(
                        dialect,
                        &issue,
                        &local_stamps,
                        None,
                        read_by.clone(),
                    )?,
                },
                note: note.into(),
                log,
                input: Some(packed.clone()),
            })
        };
        let Some(mut replica) = replica else {
            return local_only("the outgoing processor sent nothing", log);
        };
        comment_ids::for_remote(&mut replica, &comment_links);
        if let Some(note) = check_bounce(event, &twin, &replica, &local_stamps).map_err(fail)? {
            return local_only(note, log);
        }

        let seq = twin.sent_seq + 1;
        // What this side last applied from the other, for the other side to check.
        let applied = applied
            .zip(twin.last_received.as_ref())
            .map(|(seq, received)| Applied {
                seq,
                digest: digest(received),
            });
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
            stamps: local_stamps,
            applied,
        };
        let body = serde_json::to_string(&message).map_err(anyhow::Error::from)?;
        // Kept with the twin as what was sent last (the message was made with it).
        let replica = message.replica.take().unwrap_or_default();
        let sent = Some((seq, &replica));
        let state = twins::Outgoing::pack(dialect, &issue, &message.stamps, sent, read_by)?;
        Ok(Prepared {
            note: format!("sent as message {seq} of twin {}", twin.twin_id),
            effect: Effect::Outgoing {
                twin_id: twin.twin_id,
                keys: (twin.local_key, twin.remote_key),
                send: Some(Outbound {
                    message_id: message.id,
                    body: self.pack(&body)?,
                }),
                decided,
                state,
            },
            log,
            input: Some(packed),
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
            stamps: Default::default(),
            applied: None,
        };
        let message = if sends {
            let body = serde_json::to_string(&message).map_err(anyhow::Error::from)?;
            Some(Outbound {
                message_id: message.id,
                body: self.pack(&body)?,
            })
        } else {
            None
        };
        Ok(Prepared {
            note: if sends {
                "unexalated: the other side is told, the link is gone, the issue stays".into()
            } else {
                "unexalated here (this side cannot send, so the other side keeps its link)".into()
            },
            effect: Effect::Unexalate {
                twin_id: twin.twin_id,
                message,
            },
            log: String::new(),
            input: None,
        })
    }
}

fn nothing(note: &str, log: String) -> Prepared {
    Prepared {
        effect: Effect::Nothing,
        note: note.into(),
        log,
        input: None,
    }
}

/// Whether a local change's event finds the issue as the twin's last outgoing event for a
/// local change read it (`reader`: the twin, with the same processor and settings), with
/// nothing written to the issue's stamps since (nothing received, no other connection's
/// event): the processor would get what it got then, but for the event's id and time, and
/// make the replica that event made, which the other side has or which was not worth
/// sending. Under load, a change made after an event was handed out but before it read the
/// issue queues another event, which finds nothing new: this finishes it before the
/// processor runs.
fn read_already(event: &Event, twin: &Twin, reader: &str, issue: &Issue) -> bool {
    event.reason == SyncReason::LocalChange
        && twin.stamped_by.as_deref() == Some(reader)
        && twin.stamped.as_ref() == Some(issue)
}

/// Decide whether a replica is worth sending. `Ok(Some(note))`: nothing to send, finish with
/// the note. `Err`: a sync-back chain that keeps bouncing, stopped.
fn check_bounce(
    event: &Event,
    twin: &Twin,
    replica: &Replica,
    stamps: &FieldStamps,
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
        SyncReason::LocalChange if nothing_new(twin, replica, stamps) => {
            Ok(Some("nothing the other side does not have: nothing sent"))
        }
        _ => Ok(None),
    }
}

/// Whether the other side has everything a replica says: each field holds the value and
/// stamp this side sent last, or the value and stamp the other side sent; each comment is
/// one already exchanged. That covers a replica unchanged since last sent, and a change
/// that only echoes what the other side sent (re-saved by automation here, say): sending it
/// back would start a loop. A new write always goes out, even one that puts back a value
/// the other side has: its stamp is news.
pub(super) fn nothing_new(twin: &Twin, replica: &Replica, stamps: &FieldStamps) -> bool {
    let (sent, received) = (twin.last_sent.as_ref(), twin.last_received.as_ref());
    if sent.is_none() && received.is_none() {
        return false;
    }
    // For each of what was sent and what was received: the fields whose values differ.
    let differs = |other: Option<&Replica>| other.map(|o| fields::changed(o, replica));
    let (differs_from_sent, differs_from_received) = (differs(sent), differs(received));
    let known = |field: &String, differing: &Option<Vec<String>>, their_stamps: &FieldStamps| {
        differing.as_ref().is_some_and(|d| !d.contains(field))
            && stamps.get(field) == their_stamps.get(field)
    };
    let all_fields: Vec<String> = fields::names(replica)
        .chain(sent.into_iter().flat_map(fields::names))
        .collect();
    let fields_known = all_fields.iter().all(|field| {
        known(field, &differs_from_sent, &twin.sent_stamps)
            || known(field, &differs_from_received, &twin.remote_stamps)
    });
    let exchanged = || sent.into_iter().chain(received).flat_map(|r| &r.comments);
    let comment_known =
        |c: &crate::model::Comment| exchanged().any(|k| k.created == c.created && k.body == c.body);
    fields_known && replica.comments.iter().all(comment_known)
}
