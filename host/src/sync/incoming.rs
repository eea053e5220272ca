//! Processing an incoming event: run the incoming processor on the received replica and
//! apply the result to the tracker, then record the twin and queue a sync back if asked.

use std::borrow::Cow;

use super::failure::{Failed, ProcessorInput, SyncFailure};
use super::message::{MessageKind, SyncMessage};
use super::node::Node;
use crate::model::{Issue, SyncReason};
use crate::runtime::{Call, ProcessorFailure, SyncBack};
use crate::store::events::{self, Event, Kind, NewEvent};
use crate::store::twins::{self, Twin};
use crate::tracker::Origin;

impl Node {
    pub(super) fn process_incoming(&self, event: &Event) -> Result<(), Failed> {
        let now = self.now_ms();
        let mut message: SyncMessage =
            serde_json::from_str(event.message.as_deref().unwrap_or_default()).map_err(|e| {
                SyncFailure::CorruptMessage {
                    reason: e.to_string(),
                }
            })?;
        let twin = self.store.read(|db| twins::get(db, &message.twin))?;

        if message.kind == MessageKind::Unexalate {
            self.store.write(|tx| {
                let note = if twins::unexalate(tx, &message.twin, now)? {
                    "unexalated by the other side: the link is gone, the issue stays"
                } else {
                    "unexalate for a twin not under sync: nothing to do"
                };
                events::finish(tx, event.seq, note, "", now)
            })?;
            return Ok(());
        }
        if twin.is_none()
            && self
                .store
                .read(|db| twins::is_unexalated(db, &message.twin))?
        {
            // Sent before the other side learnt of the unexalate: applying it would create
            // the issue again.
            self.store.write(|tx| {
                events::finish(
                    tx,
                    event.seq,
                    "the twin was unexalated: message ignored",
                    "",
                    now,
                )
            })?;
            return Ok(());
        }

        let unknown = || SyncFailure::UnknownConnection {
            name: message.connection.clone(),
        };
        let connection = self.connection(&message.connection).ok_or_else(unknown)?;
        let plugin = connection.incoming.as_ref().ok_or_else(unknown)?;
        let replica = message
            .replica
            .take()
            .ok_or_else(|| SyncFailure::CorruptMessage {
                reason: "update without replica".into(),
            })?;
        let first_sync = twin.is_none();
        let previous = twin.as_ref().and_then(Twin::previous);
        let local = match &twin {
            None => Issue::default(),
            Some(twin) => self.tracker.get(&twin.local_key)?.ok_or_else(|| {
                SyncFailure::LocalIssueMissing {
                    key: twin.local_key.clone(),
                }
            })?,
        };

        let call = Call {
            ctx: self.context(&connection, event, first_sync),
            limits: &connection.limits,
            can_send: connection.can_send(),
            directory: self.store.clone(),
        };
        let outcome = plugin.run_incoming(&self.runtime, call, &replica, previous, &local);
        let log = outcome.log;
        // The input is serialised only when something failed.
        let fail = |failure: SyncFailure| {
            let input = ProcessorInput {
                ctx: self.context(&connection, event, first_sync),
                replica: Some(Cow::Borrowed(&replica)),
                previous: previous.map(Cow::Borrowed),
                issue: Cow::Borrowed(&local),
            };
            Failed::after_run(failure, &log, &input)
        };
        let result = outcome.result.map_err(|e| fail(e.into()))?;
        check_output(&local, &result, first_sync).map_err(|e| fail(e.into()))?;

        let origin = Origin::Sync {
            event_id: &event.id,
        };
        let stored_key = if first_sync {
            self.tracker
                .create(&result, origin)
                .map_err(|e| fail(e.into()))?
                .key
        } else if result.same_content(&local) {
            local.key.clone()
        } else {
            self.tracker
                .update(&result, origin)
                .map_err(|e| fail(e.into()))?
                .key
        };
        let Some(local_key) = stored_key else {
            return Err(fail(SyncFailure::Storage(
                "the tracker stored the issue without a key".into(),
            )));
        };

        let sync_back = outcome.sync_back == SyncBack::Requested && connection.can_send();
        let unexalate = outcome.unexalate;
        self.store
            .write(|tx| {
                let record = Twin {
                    twin_id: message.twin.clone(),
                    connection: message.connection.clone(),
                    local_key: local_key.clone(),
                    remote_key: Some(message.sender_key.clone()),
                    sent_seq: 0,
                    exalate_replica: None,
                    last_sent: None,
                    last_received: None,
                };
                twins::record_received(tx, &record, &replica, now)?;
                // A sync back goes before an unexalate asked for in the same event.
                let follow_ups = [(sync_back, Kind::Outgoing), (unexalate, Kind::Unexalate)];
                for (_, kind) in follow_ups.iter().filter(|(asked, _)| *asked) {
                    let id = self.next_event_id(tx)?;
                    events::insert(
                        tx,
                        &NewEvent {
                            id: &id,
                            kind: *kind,
                            connection: &message.connection,
                            twin_id: &message.twin,
                            reason: SyncReason::SyncBack,
                            hop: message.hop + 1,
                            message_seq: None,
                            message: None,
                        },
                        now,
                    )?;
                }
                let mut note = if first_sync {
                    format!("created {local_key}")
                } else {
                    format!("applied to {local_key}")
                };
                if sync_back {
                    note.push_str("; sync back queued");
                }
                if unexalate {
                    note.push_str("; unexalate queued");
                }
                events::finish(tx, event.seq, &note, &log, now)
            })
            .map_err(|e| fail(e.into()))?;
        Ok(())
    }
}

/// What a processor may not do to the local issue.
fn check_output(local: &Issue, result: &Issue, first_sync: bool) -> Result<(), ProcessorFailure> {
    let invalid = |reason: String| Err(ProcessorFailure::InvalidOutput { reason });
    if first_sync && result.key.is_some() {
        return invalid(format!(
            "on first sync the issue does not exist yet, but the processor returned key {:?}; leave the key empty, the tracker assigns it",
            result.key.as_deref().unwrap_or_default()
        ));
    }
    if !first_sync && result.key != local.key {
        return invalid(format!(
            "the processor changed the issue's key from {:?} to {:?}",
            local.key.as_deref().unwrap_or_default(),
            result.key.as_deref().unwrap_or_default()
        ));
    }
    if result.summary.trim().is_empty() {
        return invalid("the summary is empty".into());
    }
    Ok(())
}
