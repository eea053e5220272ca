//! Events a worker prepares together (see `pipeline`). The incoming events whose processors
//! decided to write their issue store their inputs in one transaction and make their
//! tracker writes in one call (`Tracker::update_many_if`), where alone each takes a
//! transaction of the node's database and one of the tracker's: at saturation those two
//! were a fifth of a node's time.
//!
//! Nothing else changes: every input is stored before any of the writes (the crash points
//! around the writes are passed once for the group), a write that finds its issue changed
//! decides again alone on the issue as it is then, and events that write nothing, first
//! syncs and outgoing events are prepared as they are alone.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::batch::event_span;
use super::crash::CrashPoint;
use super::effect::Prepared;
use super::failure::{Failed, SyncFailure};
use super::incoming::{Decided, Received, Start};
use super::node::Node;
use crate::store::events::{self, Event, Kind};
use crate::tracker::{TrackerError, UpdateIf};

/// The longest a decided write waits for the processors of the events after it (and at
/// most one processor's run past it: one that runs long holds up the writes decided before
/// it started).
const WRITE_WITHIN: Duration = Duration::from_millis(5);

/// An incoming event whose processor decided a write, not made yet.
struct Waiting {
    /// Its place in the group.
    at: usize,
    received: Box<Received>,
    decided: Decided,
}

impl Node {
    /// Prepare `events`, and those `more` gives while it gives some (added to `events`),
    /// one after the other: all of distinct issues. Their outcomes, in the same order.
    pub(super) fn prepare_many(
        &self,
        events: &mut Vec<Event>,
        more: &mut dyn FnMut() -> Option<Event>,
    ) -> Vec<Result<Prepared, Failed>> {
        let mut outcomes: Vec<Option<Result<Prepared, Failed>>> = Vec::new();
        let mut waiting = Vec::new();
        let mut oldest: Option<Instant> = None;
        for at in 0.. {
            if at == events.len() {
                match more() {
                    Some(event) => events.push(event),
                    None => break,
                }
            }
            if oldest.is_some_and(|decided| decided.elapsed() >= WRITE_WITHIN) {
                self.write_waiting(events, std::mem::take(&mut waiting), &mut outcomes);
                oldest = None;
            }
            let event = &events[at];
            outcomes.push(None);
            if event.kind != Kind::Incoming {
                outcomes[at] = Some(self.prepare(event));
                continue;
            }
            let _span = event_span(event).entered();
            let mut received = match self.start_incoming(event) {
                Ok(Start::Run(received)) => received,
                Ok(Start::Done(prepared)) => {
                    outcomes[at] = Some(Ok(*prepared));
                    continue;
                }
                Err(failed) => {
                    outcomes[at] = Some(Err(failed));
                    continue;
                }
            };
            match self.decide_incoming(event, &mut received) {
                Ok(decided) if decided.saved_before() => {
                    oldest.get_or_insert_with(Instant::now);
                    waiting.push(Waiting {
                        at,
                        received,
                        decided,
                    });
                }
                // Nothing to store before: created, or nothing written.
                Ok(decided) => outcomes[at] = Some(self.apply_decided(event, &received, decided)),
                Err(failed) => outcomes[at] = Some(Err(failed)),
            }
        }
        self.write_waiting(events, waiting, &mut outcomes);
        outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every event of the group has an outcome"))
            .collect()
    }

    /// Store the inputs of `waiting` in one transaction, then make their tracker writes in
    /// one call, and finish each.
    fn write_waiting(
        &self,
        events: &[Event],
        waiting: Vec<Waiting>,
        outcomes: &mut [Option<Result<Prepared, Failed>>],
    ) {
        if waiting.is_empty() {
            return;
        }
        // Packed before the transaction: compressing is not done holding the write lock.
        let saved = waiting
            .iter()
            .map(|one| self.pack(one.decided.input()))
            .collect::<Result<Vec<_>>>()
            .and_then(|inputs| {
                self.store.write(|tx| {
                    for (one, input) in waiting.iter().zip(&inputs) {
                        events::save_input(tx, events[one.at].seq, input)?;
                    }
                    Ok(())
                })
            });
        if let Err(error) = saved {
            let failure = SyncFailure::from(error);
            for one in waiting {
                outcomes[one.at] = Some(Err(one.decided.fail(failure.clone())));
            }
            return;
        }
        self.crash_point(CrashPoint::BeforeTrackerWrite);
        let updates: Vec<UpdateIf<'_>> = waiting
            .iter()
            .map(|one| one.decided.update(&events[one.at]))
            .collect();
        let written = self.tracker.update_many_if(&updates);
        drop(updates);
        self.crash_point(CrashPoint::AfterTrackerWrite);
        if written.len() != waiting.len() {
            // A tracker's bug: which writes happened is not known. Each event waits and
            // runs again; the tracker recognises the writes it made by their event ids.
            let failure = SyncFailure::Tracker(TrackerError::Unavailable(format!(
                "the tracker answered {} writes made together with {} outcomes (a bug in its \
                 `update_many_if`); the events run again",
                waiting.len(),
                written.len()
            )));
            for one in waiting {
                outcomes[one.at] = Some(Err(one.decided.fail(failure.clone())));
            }
            return;
        }
        for (mut one, written) in waiting.into_iter().zip(written) {
            let event = &events[one.at];
            let _span = event_span(event).entered();
            outcomes[one.at] = Some(match written {
                Ok(stored) => self.finish_incoming(&one.received, one.decided, stored),
                // Someone wrote the issue while the processor ran: decide again, alone, on
                // the issue as it is now.
                Err(TrackerError::Changed(_)) => self.run_incoming(event, &mut one.received, 2),
                Err(error) => Err(one.decided.fail(error.into())),
            });
        }
    }
}
