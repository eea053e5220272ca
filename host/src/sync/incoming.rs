//! Preparing an incoming event: run the incoming processor on the received replica and apply
//! the result to the tracker. Recording the twin and queueing a sync back happen at commit.
//!
//! The tracker write comes before the node's commit and is idempotent per event id
//! (`Origin::Sync`): if the node stops in between, the event runs again and the tracker
//! recognises the write it already has. Effects happen once. The processor's input is
//! stored before the write, so the repeat starts from the issue the first run read: the
//! tracker's copy, which holds the write already, would make it look like a local edit
//! (stamped at the restart, it would win every last-writer-wins decision after it).
//!
//! The write is conditional on the issue being still the one the processor read: a
//! person's edit made while the processor ran makes the event run again on the fresh issue
//! instead of being overwritten.

use std::borrow::Cow;
use std::sync::Arc;

use super::comment_ids;
use super::connection::Connection;
use super::crash::CrashPoint;
use super::effect::{Effect, Prepared};
use super::failure::{BaseInput, Failed, ProcessorInput, SyncFailure};
use super::message::{MessageKind, SyncMessage};
use super::node::Node;
use super::verify::digest;
use crate::model::fields::{self, FieldStamps};
use crate::model::{Issue, Replica};
use crate::runtime::{Call, Plugin, RecordedConflict, SyncBack};
use crate::store::events::{self, Event, Kind};
use crate::store::links;
use crate::store::twins::{self, Twin};
use crate::tracker::{Origin, TrackerError, UpdateIf};

/// Runs of an event's processor, at most, when the issue keeps changing under it.
const MAX_RUNS: u32 = 3;

/// An incoming event read and checked, ready for its processor.
pub(super) struct Received {
    message: SyncMessage,
    twin: Option<Twin>,
    connection: Arc<Connection>,
    /// The connection's incoming processor.
    plugin: Arc<Plugin>,
    /// The replica the message carries.
    replica: Replica,
    /// The other side applied something else than this side sent last: resync.
    disagrees: bool,
    /// The issue an earlier run stored, to start from (taken by the first run).
    earlier: Option<Issue>,
    /// The twin's comment links, as (local id, remote id).
    comment_links: Vec<(String, String)>,
}

/// What an incoming event's first look reads of the store, in one read.
struct Stored {
    twin: Option<Twin>,
    /// Another twin's unfinished write to the twin's issue.
    writing: Option<String>,
    comment_links: Vec<(String, String)>,
    /// No twin, and it was unexalated.
    unexalated: bool,
}

/// Where an incoming event stands after its first look.
pub(super) enum Start {
    /// Nothing to run: an unexalate, or a message for a twin unexalated since.
    Done(Box<Prepared>),
    /// Run the processor.
    Run(Box<Received>),
}

/// What a processor decided for an incoming event, before anything of it is stored.
pub(super) struct Decided {
    first_sync: bool,
    /// `local` is the issue an earlier run stored, not the tracker's now.
    repeat: bool,
    /// The local issue the processor read (empty on first sync).
    local: Issue,
    /// The issue the processor returned.
    result: Issue,
    /// The processor's input as stored with the event.
    input: String,
    log: String,
    local_stamps: FieldStamps,
    now: i64,
    sync_back: bool,
    unexalate: bool,
    conflicts: Vec<RecordedConflict>,
}

impl Decided {
    /// The tracker is written: the local issue is not what the result holds, or there is
    /// none yet.
    fn writes(&self) -> bool {
        self.first_sync || !self.result.same_content(&self.local)
    }

    /// The input is stored before the tracker write: if the node stops between that
    /// write and its commit, the repeat starts from the issue read (see above). On first
    /// sync there is no issue to start from (the tracker finds the one it created by the
    /// event's id): the input is stored at commit, as when nothing is written.
    pub(super) fn saved_before(&self) -> bool {
        self.writes() && !self.first_sync
    }

    pub(super) fn input(&self) -> &str {
        &self.input
    }

    /// The conditional update this decision makes (see [`Decided::saved_before`]).
    pub(super) fn update<'a>(&'a self, event: &'a Event) -> UpdateIf<'a> {
        UpdateIf {
            issue: &self.result,
            origin: Origin::Sync {
                event_id: &event.id,
            },
            seen: Some(&self.local),
        }
    }

    pub(super) fn fail(&self, failure: SyncFailure) -> Failed {
        Failed {
            failure,
            log: self.log.clone(),
            input: Some(self.input.clone()),
        }
    }
}

impl Node {
    pub(super) fn prepare_incoming(&self, event: &Event) -> Result<Prepared, Failed> {
        match self.start_incoming(event)? {
            Start::Done(prepared) => Ok(*prepared),
            Start::Run(mut received) => self.run_incoming(event, &mut received, 1),
        }
    }

    /// Read the message and the twin, and check that the event may run.
    pub(super) fn start_incoming(&self, event: &Event) -> Result<Start, Failed> {
        let mut message: SyncMessage =
            serde_json::from_str(event.message.as_deref().unwrap_or_default()).map_err(|e| {
                SyncFailure::CorruptMessage {
                    reason: e.to_string(),
                }
            })?;
        let Stored {
            twin,
            writing,
            comment_links,
            unexalated,
        } = self.store.read(|db| {
            let twin = twins::get(db, &message.twin)?;
            Ok(match &twin {
                Some(found) => Stored {
                    writing: events::writing(db, &found.local_key, &found.twin_id)?,
                    comment_links: links::all(db, &found.twin_id)?,
                    unexalated: false,
                    twin,
                },
                None => Stored {
                    unexalated: twins::is_unexalated(db, &event.connection, &message.twin)?,
                    twin,
                    writing: None,
                    comment_links: Vec::new(),
                },
            })
        })?;
        // Every lookup is tied to the event's connection: checked when the message
        // arrived, and again here in case the database says otherwise since.
        if let Some(twin) = &twin
            && (twin.connection != event.connection || message.connection != event.connection)
        {
            return Err(SyncFailure::ForeignTwin {
                twin: twin.twin_id.clone(),
                connection: event.connection.clone(),
            }
            .into());
        }

        if message.kind == MessageKind::Unexalate {
            let note = if twin.is_some() {
                "unexalated by the other side: the link is gone, the issue stays"
            } else {
                "unexalate for a twin not under sync: nothing to do"
            };
            return Ok(Start::Done(Box::new(Prepared {
                effect: Effect::Unexalated {
                    twin_id: message.twin,
                },
                note: note.into(),
                log: String::new(),
                input: None,
            })));
        }
        if unexalated {
            // Sent before the other side learnt of the unexalate: applying it would create
            // the issue again.
            return Ok(Start::Done(Box::new(Prepared {
                effect: Effect::Nothing,
                note: "the twin was unexalated: message ignored".into(),
                log: String::new(),
                input: None,
            })));
        }

        let unknown = || SyncFailure::UnknownConnection {
            name: message.connection.clone(),
        };
        let connection = self.connection(&message.connection).ok_or_else(unknown)?;
        let plugin = connection.incoming.clone().ok_or_else(unknown)?;
        let replica = message
            .replica
            .take()
            .ok_or_else(|| SyncFailure::CorruptMessage {
                reason: "update without replica".into(),
            })?;
        if let Some(twin) = &twin
            && let Some(writing) = writing
        {
            // Another connection's event may have written the issue before a crash: read
            // now, its write would pass for a local edit. It runs first.
            return Err(SyncFailure::IssueBusy {
                key: twin.local_key.clone(),
                event: writing,
            }
            .into());
        }
        // The other side says what it last applied of ours: if that is our last message, it
        // must be what we sent. If not, the sides disagree on what was exchanged: resync.
        let disagrees = match (&message.applied, &twin) {
            (Some(applied), Some(twin)) if applied.seq == twin.sent_seq => {
                twin.last_sent.as_ref().map(digest).as_deref() != Some(applied.digest.as_str())
            }
            _ => false,
        };
        if disagrees {
            tracing::warn!(
                twin = %message.twin,
                "the other side applied something else than this side sent as message {}: resync queued",
                message.applied.as_ref().map_or(0, |a| a.seq)
            );
        }
        // An earlier run may have written to the tracker and stopped before the node
        // committed. The issue it read is stored: starting from it, the processor decides
        // what it decided then, the tracker recognises the write (or makes it, if it did not
        // happen), and the value written is never taken for a local edit made since.
        let earlier = match (&twin, event.input.as_deref()) {
            (Some(_), Some(json)) => serde_json::from_str::<ProcessorInput<'_>>(json)
                .ok()
                .map(|input| input.issue.into_owned()),
            _ => None,
        };
        Ok(Start::Run(Box::new(Received {
            message,
            twin,
            connection,
            plugin,
            replica,
            disagrees,
            earlier,
            comment_links,
        })))
    }

    /// Run the processor and apply its result, from `attempt` on: someone who writes the
    /// issue while the processor runs makes it decide again on the issue as it is then.
    pub(super) fn run_incoming(
        &self,
        event: &Event,
        received: &mut Received,
        mut attempt: u32,
    ) -> Result<Prepared, Failed> {
        loop {
            let decided = self.decide_incoming(event, received)?;
            match self.apply_decided(event, received, decided) {
                // (Passing: after a few tries the event waits and retries.)
                Err(failed)
                    if matches!(
                        failed.failure,
                        SyncFailure::Tracker(TrackerError::Changed(_))
                    ) && attempt < MAX_RUNS =>
                {
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Run the processor on the local issue: the one an earlier run stored the first time,
    /// the tracker's after that.
    pub(super) fn decide_incoming(
        &self,
        event: &Event,
        received: &mut Received,
    ) -> Result<Decided, Failed> {
        let earlier = received.earlier.take();
        let Received {
            message,
            twin,
            connection,
            plugin,
            replica: received,
            comment_links,
            ..
        } = &*received;
        let twin = twin.as_ref();
        let repeat = earlier.is_some();
        let local = match (earlier, twin) {
            (Some(local), _) => local,
            (None, None) => Issue::default(),
            (None, Some(twin)) => self.tracker.get(&twin.local_key)?.ok_or_else(|| {
                SyncFailure::LocalIssueMissing {
                    key: twin.local_key.clone(),
                }
            })?,
        };
        let first_sync = twin.is_none();
        // The processor sees comment ids in the local side's terms (see `comment_ids`).
        let mut replica = received.clone();
        comment_ids::for_processor(&mut replica, comment_links);
        let previous = twin.and_then(Twin::previous).map(|previous| {
            let mut previous = previous.clone();
            comment_ids::for_processor(&mut previous, comment_links);
            previous
        });
        let mut local_stamps = twin.map(|t| t.local_stamps.clone()).unwrap_or_default();
        let now = self.now_ms();
        if let Some(twin) = twin {
            // Local writes not sent yet: stamped now (and kept), they go out with the stamp
            // this side's decision used, so both sides decide the same.
            fields::stamp_local_writes(
                &mut local_stamps,
                twin.stamped.as_ref(),
                &local,
                now,
                &self.instance,
            );
        }
        let base = BaseInput {
            local: twin.and_then(|t| t.local_base.clone()),
            local_stamps: local_stamps.clone(),
            remote_stamps: message.stamps.clone(),
            previous_remote_stamps: twin.map(|t| t.remote_stamps.clone()).unwrap_or_default(),
            policies: connection.policies.clone(),
        };

        let call = Call {
            ctx: self.context(connection, event, first_sync),
            limits: &connection.limits,
            can_send: connection.can_send(),
            directory: self.store.clone(),
            merge_base: base.merge_base(),
        };
        self.plugins.started(&event.id, plugin);
        let outcome = plugin.run_incoming(&self.runtime, call, &replica, previous.as_ref(), &local);
        self.burned(outcome.fuel_used);
        self.crash_point(CrashPoint::AfterProcessor);
        let log = outcome.log;
        let input = ProcessorInput {
            ctx: self.context(connection, event, first_sync),
            replica: Some(Cow::Borrowed(&replica)),
            previous: previous.as_ref().map(Cow::Borrowed),
            issue: Cow::Borrowed(&local),
            merge_base: Some(Cow::Borrowed(&base)),
        };
        let input = serde_json::to_string(&input).map_err(anyhow::Error::from)?;
        // The runtime has checked the result (`check_incoming`), as for `plugin check`.
        let result = match outcome.result {
            Ok(result) => result,
            Err(error) => {
                return Err(Failed {
                    failure: error.into(),
                    log,
                    input: Some(input),
                });
            }
        };
        Ok(Decided {
            first_sync,
            repeat,
            local,
            result,
            input,
            log,
            local_stamps,
            now,
            sync_back: outcome.sync_back == SyncBack::Requested && connection.can_send(),
            unexalate: outcome.unexalate,
            conflicts: outcome.conflicts,
        })
    }

    /// Write what the processor decided to the tracker, alone (see `grouped` for events
    /// prepared together), and say what the event commits.
    pub(super) fn apply_decided(
        &self,
        event: &Event,
        received: &Received,
        decided: Decided,
    ) -> Result<Prepared, Failed> {
        let stored = self.write_incoming(event, &decided)?;
        self.finish_incoming(received, decided, stored)
    }

    /// Make the tracker hold what the processor decided; the issue as stored.
    fn write_incoming(&self, event: &Event, decided: &Decided) -> Result<Issue, Failed> {
        let writes = decided.writes();
        if decided.saved_before() {
            let input = self
                .pack(&decided.input)
                .map_err(|e| decided.fail(e.into()))?;
            self.store
                .write(|tx| events::save_input(tx, event.seq, &input))
                .map_err(|e| decided.fail(e.into()))?;
        }
        if writes {
            self.crash_point(CrashPoint::BeforeTrackerWrite);
        }
        let update = decided.update(event);
        let stored = if decided.first_sync {
            self.tracker.create(update.issue, update.origin)
        } else if writes {
            self.tracker
                .update_if(update.issue, update.origin, update.seen)
        } else {
            Ok(decided.local.clone())
        }
        .map_err(|e| decided.fail(e.into()))?;
        if writes {
            self.crash_point(CrashPoint::AfterTrackerWrite);
        }
        Ok(stored)
    }

    /// What the event commits, now that the tracker holds `stored`.
    pub(super) fn finish_incoming(
        &self,
        received: &Received,
        decided: Decided,
        stored: Issue,
    ) -> Result<Prepared, Failed> {
        let Some(local_key) = stored.key.clone() else {
            return Err(decided.fail(SyncFailure::Storage(
                "the tracker stored the issue without a key".into(),
            )));
        };
        // Stored at commit, unless it was stored before the tracker write.
        let input = if decided.saved_before() {
            None
        } else {
            let packed = self.pack(decided.input());
            Some(packed.map_err(|e| decided.fail(e.into()))?)
        };
        let Decided {
            first_sync,
            repeat,
            local,
            result,
            input: _,
            log,
            mut local_stamps,
            now,
            sync_back,
            unexalate,
            conflicts,
        } = decided;
        let Received {
            message,
            replica: received,
            disagrees,
            ..
        } = received;
        let disagrees = *disagrees;
        if repeat {
            // The tracker returned the issue as it is now, which may hold writes made by
            // someone else since this event's write (while the node was down): the stamps
            // are those of what the event wrote, and each later write gets its own.
            adopt_stamps(
                &mut local_stamps,
                &message.stamps,
                &local,
                &result,
                received,
            );
            for field in fields::changed(&result, &stored) {
                fields::stamp_write(&mut local_stamps, &field, now, &self.instance);
            }
        } else {
            adopt_stamps(
                &mut local_stamps,
                &message.stamps,
                &local,
                &stored,
                received,
            );
        }
        if disagrees {
            // Which of the other side's values are wrong is not known, only that they are
            // not what was sent: this side's issue goes out as new writes of every field, so
            // the other side takes it (unless it has a later write of its own).
            for field in fields::names(&stored).collect::<Vec<_>>() {
                fields::stamp_write(&mut local_stamps, &field, now, &self.instance);
            }
        }
        // A sync back goes before an unexalate asked for in the same event.
        let follow_ups: Vec<Kind> = [(sync_back, Kind::Outgoing), (unexalate, Kind::Unexalate)]
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
        if unexalate {
            note.push_str("; unexalate queued");
        }
        if disagrees {
            note.push_str("; the other side applied something else than was sent: resync queued");
        }
        if !conflicts.is_empty() {
            note.push_str(&format!(
                "; {} conflict(s) held for review",
                conflicts.len()
            ));
        }
        let mut record = Twin::received(
            message.twin.clone(),
            message.connection.clone(),
            local_key,
            message.sender_key.clone(),
        );
        record.local_stamps = local_stamps;
        record.remote_stamps = message.stamps.clone();
        let state = twins::Received::pack(self.store.dialect(), &record, received, &stored)?;
        Ok(Prepared {
            effect: Effect::Applied {
                links: comment_ids::new_links(&local, &result, &stored),
                diff: super::history::Diff::between(&local, &stored),
                still_differ: fields::changed(&stored, received),
                twin: record,
                state,
                follow_ups,
                conflicts,
                resync: disagrees,
            },
            note,
            log,
            input,
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
