//! The worker pool of a running node. Worker threads prepare events (run their processors)
//! one at a time each; the event loop hands them ready events and commits the ones that
//! finished, in one transaction per round. Nothing waits for the slowest event of a group:
//! an event that runs to its time limit holds one worker and its own twin, while the other
//! workers go on with the other twins and their results commit within a round.
//!
//! Order per twin holds because an event is handed out only when no event of its local
//! issue (or, before first sync, its twin) is being prepared, and `events::ready` offers only
//! the first unfinished event of each twin.
//!
//! Workers share out their time between connections: an idle worker takes the next event
//! of the connection that has used the least worker time lately (see [`Lanes`]), so one
//! connection whose processor always runs to its limit cannot push the others' events
//! behind its own.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::batch::{Progress, issue_of_twin};
use super::effect::Prepared;
use super::failure::{Failed, SyncFailure};
use super::node::Node;
use crate::store::events::{self, Event};

type Finished = (Event, String, Result<Prepared, Failed>);

/// An event handed out, with the issue it holds (see `issue_of`).
struct Job {
    event: Event,
    issue: String,
}

/// Events waiting for a worker, one queue per connection ("lane"), and the worker time
/// each lane used lately.
#[derive(Default)]
struct Lanes {
    queued: BTreeMap<String, VecDeque<Job>>,
    /// Worker time per lane, halved every [`DECAY`] so that the past weighs less.
    used: BTreeMap<String, Duration>,
    /// When each running event of a lane started: running time counts as used.
    running: BTreeMap<String, Vec<Instant>>,
    decayed_at: Option<Instant>,
    closed: bool,
}

/// How often the lanes' used time is halved.
const DECAY: Duration = Duration::from_secs(1);

impl Lanes {
    /// The next job: from the lane with queued jobs that used the least worker time lately,
    /// its running events included (on a tie, the one with fewer running).
    fn take(&mut self) -> Option<Job> {
        let now = Instant::now();
        let lane = self
            .queued
            .keys()
            .min_by_key(|lane| {
                let running = self.running.get(*lane).map_or(&[][..], Vec::as_slice);
                let so_far: Duration = running.iter().map(|at| now - *at).sum();
                let used = self.used.get(*lane).copied().unwrap_or_default();
                (used + so_far, running.len())
            })?
            .clone();
        let queue = self.queued.get_mut(&lane)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.queued.remove(&lane);
        }
        self.running.entry(lane).or_default().push(now);
        job
    }

    /// A job of `lane` that started at `started` has finished.
    fn finished(&mut self, lane: &str, started: Instant) {
        let now = Instant::now();
        if let Some(running) = self.running.get_mut(lane) {
            if let Some(i) = running.iter().position(|at| *at == started) {
                running.swap_remove(i);
            }
            if running.is_empty() {
                self.running.remove(lane);
            }
        }
        self.charge(lane, now - started);
    }

    fn charge(&mut self, lane: &str, time: Duration) {
        let now = Instant::now();
        let decayed_at = *self.decayed_at.get_or_insert(now);
        if now.duration_since(decayed_at) >= DECAY {
            self.used.retain(|_, used| {
                *used /= 2;
                !used.is_zero()
            });
            self.decayed_at = Some(now);
        }
        *self.used.entry(lane.to_string()).or_default() += time;
    }
}

/// The lanes, shared by the event loop (which queues) and the workers (which take).
#[derive(Default)]
struct Scheduler {
    lanes: Mutex<Lanes>,
    wake: Condvar,
}

impl Scheduler {
    fn lanes(&self) -> MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, job: Job) {
        self.lanes()
            .queued
            .entry(job.event.connection.clone())
            .or_default()
            .push_back(job);
        self.wake.notify_one();
    }

    /// The next job and when it started, waiting for one; `None` once closed.
    fn next(&self) -> Option<(Job, Instant)> {
        let mut lanes = self.lanes();
        loop {
            if lanes.closed {
                return None;
            }
            if let Some(job) = lanes.take() {
                let started = lanes.running[&job.event.connection]
                    .last()
                    .copied()
                    .unwrap_or_else(Instant::now);
                return Some((job, started));
            }
            lanes = self.wake.wait(lanes).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.lanes().closed = true;
        self.wake.notify_all();
    }
}

/// Worker threads and what they are working on.
pub struct Pipeline {
    node: Arc<Node>,
    scheduler: Arc<Scheduler>,
    finished: Receiver<Finished>,
    /// Issues (see `issue_of`) with an event handed out and not yet committed.
    busy: HashSet<String>,
    /// Events handed out at most at once: enough to keep every worker busy between rounds,
    /// few enough that the ready query stays short.
    capacity: usize,
    threads: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Start `workers` threads preparing `node`'s events.
    pub fn start(node: Arc<Node>, workers: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let scheduler = Arc::new(Scheduler::default());
        let (done, finished) = mpsc::channel();
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (node, scheduler, done) = (node.clone(), scheduler.clone(), done.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("twinsync-worker-{i}"))
                    .spawn(move || work(&node, &scheduler, &done))?,
            );
        }
        Ok(Pipeline {
            node,
            scheduler,
            finished,
            busy: HashSet::new(),
            capacity: (workers * 128).max(256),
            threads,
        })
    }

    /// Events handed out and not committed yet.
    pub fn in_flight(&self) -> usize {
        self.busy.len()
    }

    /// One round: hand out the ready events that can start, then collect what finishes
    /// within `wait` (or until nothing is left running) and commit it in one transaction.
    /// An event still running after `wait` is collected by a later round.
    pub fn step(&mut self, wait: Duration) -> Result<Progress> {
        self.hand_out()?;
        let deadline = Instant::now() + wait;
        let mut finished = Vec::new();
        while finished.len() < self.busy.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.finished.recv_timeout(left) {
                Ok(one) => finished.push(one),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the workers have stopped"),
            }
        }
        // In queue order, whatever order the workers finished in: messages of one round
        // go to the outbox (and out) in the order their events were queued.
        finished.sort_by_key(|(event, _, _)| event.seq);
        let mut issues = Vec::with_capacity(finished.len());
        let outcomes: Vec<(Event, Result<Prepared, Failed>)> = finished
            .into_iter()
            .map(|(event, issue, outcome)| {
                issues.push(issue);
                (event, outcome)
            })
            .collect();
        let committed = self.node.commit_finished(&outcomes);
        // Committed or not, these are no longer being worked on: if the commit failed they
        // are still pending in the store and will be handed out again.
        for issue in issues {
            self.busy.remove(&issue);
        }
        committed
    }

    fn hand_out(&mut self) -> Result<()> {
        let room = self.capacity.saturating_sub(self.busy.len());
        // With work in flight, wait until a quarter of the room is free: the query costs the
        // same for one free place as for many, and the workers are busy meanwhile.
        if room == 0 || (!self.busy.is_empty() && room < self.capacity / 4) {
            return Ok(());
        }
        let now = self.node.now_ms();
        // Events in flight are still pending: ask for enough to find `room` others. Only
        // the heads are read here; the chosen events are read whole below.
        let limit = room + self.busy.len();
        let heads = self
            .node
            .store
            .read(|db| events::ready_heads(db, now, limit))?;
        let mut chosen = Vec::with_capacity(room);
        for head in heads {
            let issue = issue_of_twin(&head.twin_id, head.local_key.as_deref());
            if self.busy.len() >= self.capacity || !self.busy.insert(issue.clone()) {
                continue;
            }
            chosen.push((head.seq, issue));
        }
        let read = self.node.store.read(|db| {
            chosen
                .iter()
                .map(|(seq, _)| events::by_seq(db, *seq))
                .collect::<Result<Vec<_>>>()
        });
        let events = match read {
            Ok(events) => events,
            Err(error) => {
                for (_, issue) in &chosen {
                    self.busy.remove(issue);
                }
                return Err(error);
            }
        };
        for ((_, issue), event) in chosen.into_iter().zip(events) {
            match event {
                Some(event) => self.scheduler.queue(Job { event, issue }),
                // Gone since the query (an operator skipped it): nothing to do.
                None => {
                    self.busy.remove(&issue);
                }
            }
        }
        Ok(())
    }
}

impl Drop for Pipeline {
    /// Stop handing out work and wait for the workers: each finishes the event it is on
    /// (at once if the runtime was interrupted); nothing is committed, so those events
    /// stay pending and run again after a restart.
    fn drop(&mut self) {
        self.scheduler.close();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn work(node: &Node, scheduler: &Scheduler, done: &Sender<Finished>) {
    while let Some((Job { event, issue }, started)) = scheduler.next() {
        // A bug that panics while preparing one event must not take a worker, and with it
        // the event's twin, out for good: the event waits and is tried again.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node.prepare(&event)))
                .unwrap_or_else(|panic| {
                    let what = crate::service::supervise::panic_message(&*panic);
                    Err(Failed::from(SyncFailure::Storage(format!(
                        "preparing the event panicked (a bug in twinsync): {what}"
                    ))))
                });
        scheduler.lanes().finished(&event.connection, started);
        if done.send((event, issue, outcome)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, connection: &str) -> Event {
        Event {
            seq,
            id: format!("e{seq}"),
            kind: events::Kind::Incoming,
            connection: connection.into(),
            twin_id: format!("t{seq}"),
            reason: crate::model::SyncReason::LocalChange,
            hop: 0,
            message: None,
            state: events::State::Pending,
            attempts: 0,
            error_kind: None,
            error: None,
            log: None,
            input: None,
            note: None,
            created_at: 0,
            first_attempt_at: None,
            last_attempt_at: None,
            next_attempt_at: None,
        }
    }

    #[test]
    fn the_lane_that_used_the_least_time_goes_first() {
        let mut lanes = Lanes::default();
        lanes.charge("slow", Duration::from_secs(2));
        lanes.charge("quick", Duration::from_millis(1));
        for (lane, seq) in [("slow", 1), ("slow", 2), ("quick", 3)] {
            let event = event(seq, lane);
            lanes.queued.entry(lane.into()).or_default().push_back(Job {
                issue: format!("issue:{seq}"),
                event,
            });
        }
        let order: Vec<i64> = std::iter::from_fn(|| lanes.take())
            .map(|j| j.event.seq)
            .collect();
        assert_eq!(order, [3, 1, 2]);
    }

    #[test]
    fn a_running_event_counts_so_two_workers_do_not_both_start_on_one_lane() {
        let mut lanes = Lanes::default();
        for (lane, seq) in [("a", 1), ("a", 2), ("b", 3)] {
            lanes.queued.entry(lane.into()).or_default().push_back(Job {
                issue: format!("issue:{seq}"),
                event: event(seq, lane),
            });
        }
        assert_eq!(lanes.take().map(|j| j.event.seq), Some(1));
        // "a" has one running, "b" none: the second worker takes "b".
        assert_eq!(lanes.take().map(|j| j.event.seq), Some(3));
    }
}
