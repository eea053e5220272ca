//! Preparing an incoming event: run the incoming processor on the received replica and apply
//! the result to the tracker. Recording the twin and queueing a sync back happen at commit.
//!
//! The tracker write comes before the node's commit and is idempotent per event id
//! (`Origin::Sync`): if the node stops in between, the event runs again and the tracker
//! recognises the write it already has. Effects happen once.

use std::borrow::Cow;

use super::comment_ids;
use super::effect::{Effect, Prepared};
use super::failure::{Failed, ProcessorInput, SyncFailure};
use super::message::{MessageKind, SyncMessage};
use super::node::Node;
use crate::model::Issue;
use crate::model::fields::{self, FieldStamps};
use crate::runtime::{Call, FieldStamp, MergeBase, SyncBack};
use crate::store::events::{Event, Kind};
use crate::store::links;
use crate::store::twins::{self, Twin};
use crate::tracker::Origin;

impl Node {
    pub(super) fn prepare_incoming(&self, event: &Event) -> Result<Prepared, Failed> {
        let mut message: SyncMessage =
            serde_json::from_str(event.message.as_deref().unwrap_or_default()).map_err(|e| {
                SyncFailure::CorruptMessage {
                    reason: e.to_string(),
                }
            })?;
        let twin = self.store.read(|db| twins::get(db, &message.twin))?;

        if message.kind == MessageKind::Unexalate {
            let note = if twin.is_some() {
                "unexalated by the other side: the link is gone, the issue stays"
            } else {
                "unexalate for a twin not under sync: nothing to do"
            };
            return Ok(Prepared {
                effect: Effect::Unexalated {
                    twin_id: message.twin,
                },
                note: note.into(),
                log: String::new(),
            });
        }
        if twin.is_none()
            && self
                .store
                .read(|db| twins::is_unexalated(db, &message.twin))?
        {
            // Sent before the other side learnt of the unexalate: applying it would create
            // the issue again.
            return Ok(Prepared {
                effect: Effect::Nothing,
                note: "the twin was unexalated: message ignored".into(),
                log: String::new(),
            });
        }

        let unknown = || SyncFailure::UnknownConnection {
            name: message.connection.clone(),
        };
        let connection = self.connection(&message.connection).ok_or_else(unknown)?;
        let plugin = connection.incoming.as_ref().ok_or_else(unknown)?;
        let received = message
            .replica
            .take()
            .ok_or_else(|| SyncFailure::CorruptMessage {
                reason: "update without replica".into(),
            })?;
        let first_sync = twin.is_none();
        let local = match &twin {
            None => Issue::default(),
            Some(twin) => self.tracker.get(&twin.local_key)?.ok_or_else(|| {
                SyncFailure::LocalIssueMissing {
                    key: twin.local_key.clone(),
                }
            })?,
        };
        // The processor sees comment ids in the local side's terms (see `comment_ids`).
        let comment_links = match &twin {
            Some(twin) => self.store.read(|db| links::all(db, &twin.twin_id))?,
            None => Vec::new(),
        };
        let mut replica = received.clone();
        comment_ids::for_processor(&mut replica, &comment_links);
        let previous = twin.as_ref().and_then(Twin::previous).map(|previous| {
            let mut previous = previous.clone();
            comment_ids::for_processor(&mut previous, &comment_links);
            previous
        });
        let mut local_stamps = twin
            .as_ref()
            .map(|t| t.local_stamps.clone())
            .unwrap_or_default();
        if let Some(twin) = &twin {
            // Local writes not sent yet: stamped now (and kept), they go out with the stamp
            // this side's decision used, so both sides decide the same.
            fields::stamp_local_writes(
                &mut local_stamps,
                twin.stamped.as_ref(),
                &local,
                self.now_ms(),
                &self.instance,
            );
        }
        let merge_base = MergeBase {
            local: twin.as_ref().and_then(|t| t.local_base.clone()),
            local_stamps: FieldStamp::list(&local_stamps),
            remote_stamps: FieldStamp::list(&message.stamps),
            previous_remote_stamps: twin
                .as_ref()
                .map(|t| FieldStamp::list(&t.remote_stamps))
                .unwrap_or_default(),
            default_policy: connection.policies.default,
            policies: connection.policies.as_list(),
        };

        let call = Call {
            ctx: self.context(&connection, event, first_sync),
            limits: &connection.limits,
            can_send: connection.can_send(),
            directory: self.store.clone(),
            merge_base,
        };
        self.plugins.started(&event.id, plugin);
        let outcome = plugin.run_incoming(&self.runtime, call, &replica, previous.as_ref(), &local);
        let log = outcome.log;
        // The input is serialised only when something failed.
        let fail = |failure: SyncFailure| {
            let input = ProcessorInput {
                ctx: self.context(&connection, event, first_sync),
                replica: Some(Cow::Borrowed(&replica)),
                previous: previous.as_ref().map(Cow::Borrowed),
                issue: Cow::Borrowed(&local),
            };
            Failed::after_run(failure, &log, &input)
        };
        // The runtime has checked the result (`check_incoming`), as for `plugin check`.
        let result = outcome.result.map_err(|e| fail(e.into()))?;

        let origin = Origin::Sync {
            event_id: &event.id,
        };
        let stored = if first_sync {
            self.tracker
                .create(&result, origin)
                .map_err(|e| fail(e.into()))?
        } else if result.same_content(&local) {
            local.clone()
        } else {
            self.tracker
                .update(&result, origin)
                .map_err(|e| fail(e.into()))?
        };
        let Some(local_key) = stored.key.clone() else {
            return Err(fail(SyncFailure::Storage(
                "the tracker stored the issue without a key".into(),
            )));
        };

        adopt_stamps(
            &mut local_stamps,
            &message.stamps,
            &local,
            &stored,
            &received,
        );
        let sync_back = outcome.sync_back == SyncBack::Requested && connection.can_send();
        // A sync back goes before an unexalate asked for in the same event.
        let follow_ups: Vec<Kind> = [
            (sync_back, Kind::Outgoing),
            (outcome.unexalate, Kind::Unexalate),
        ]
        .into_iter()
        .filter_map(|(asked, kind)| asked.then_some(kind))
        .collect();
        let mut note = if first_sync {
            format!("created {local_key}")
        } else {
            format!("applied to {local_key}")
        };
        if sync_back {
            note.push_str("; sync back queued");
        }
        if outcome.unexalate {
            note.push_str("; unexalate queued");
        }
        if !outcome.conflicts.is_empty() {
            note.push_str(&format!(
                "; {} conflict(s) held for review",
                outcome.conflicts.len()
            ));
        }
        let mut record = Twin::received(
            message.twin,
            message.connection,
            local_key,
            message.sender_key,
        );
        record.local_stamps = local_stamps;
        record.remote_stamps = message.stamps;
        Ok(Prepared {
            effect: Effect::Applied {
                links: comment_ids::new_links(&local, &result, &stored),
                still_differ: fields::changed(&stored, &received),
                twin: record,
                replica: received,
                local: stored,
                follow_ups,
                conflicts: outcome.conflicts,
            },
            note,
            log,
        })
    }
}

/// The stamps of the local issue after a merge: a field that now holds the remote value
/// holds the remote write, stamp and all; where both sides held the same value already,
/// the later of the two stamps names it on both sides.
fn adopt_stamps(
    stamps: &mut FieldStamps,
    remote: &FieldStamps,
    before: &Issue,
    after: &Issue,
    received: &Issue,
) {
    let differ = fields::changed(after, received);
    let changed = fields::changed(before, after);
    for (field, theirs) in remote {
        if differ.contains(field) {
            continue;
        }
        let later = stamps
            .get(field)
            .is_none_or(|mine| theirs.key() > mine.key());
        if changed.contains(field) || later {
            stamps.insert(field.clone(), theirs.clone());
        }
    }
}
