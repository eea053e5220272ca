//! The worker pool of a running node. Worker threads prepare events (run their processors);
//! the event loop hands them ready events and commits the ones that finished, in one
//! transaction per round. Nothing waits for the slowest event of a round: an event that
//! runs to its time limit holds one worker and its own twin, while the other workers go on
//! with the other twins and their results commit within a round.
//!
//! A worker takes the events waiting in its lane together, one after the other while the
//! group is young (see `GROUP`), and prepares them as a group (see `grouped`): their
//! tracker writes are made in one call. A slow processor ends its group, and holds up only
//! the writes of the events before it in the group.
//!
//! Order per twin holds because an event is handed out only when no event of its local
//! issue (or, before first sync, its twin) is being prepared, and `events::ready` offers only
//! the first unfinished event of each twin.
//!
//! Workers share out their time between lanes: an idle worker takes the next event of the
//! lane that has used the least worker time lately (see [`Lanes`]), so one lane whose
//! processor always runs to its limit cannot push the others' events behind its own. In
//! `twinsync serve` a node has workers of its own and a lane per connection; in an
//! embedding host every tenant's pipeline shares the host's workers, with a lane per tenant
//! and a bound on the events of one lane running at once.

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
use crate::service::Wake;
use crate::store::events::{self, Event, State};

/// An event prepared: the issue it held, its outcome, and the worker time it took.
type Finished = (Event, String, Result<Prepared, Failed>, Duration);

/// How an event's processor ended, as far as scheduling cares (see [`Pipeline::take_ran`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// It ran to its time or fuel limit, holding a worker this long.
    ToItsLimit(Duration),
    /// It ended by itself: it succeeded, or failed for another reason.
    Otherwise,
}

/// An event handed out, with the issue it holds (see `issue_of`), the node it is of, its
/// lane and where its outcome goes.
struct Job {
    node: Arc<Node>,
    event: Event,
    issue: String,
    lane: String,
    done: Sender<Finished>,
}

/// Events waiting for a worker, one queue per lane (a connection of one node, or a tenant
/// of a host), and the worker time each lane used lately.
struct Lanes<J> {
    /// Events of one lane that may run at once (`None`: no bound): a tenant whose
    /// processor always runs to its time limit then holds that many workers at most.
    per_lane: Option<usize>,
    queued: BTreeMap<String, VecDeque<J>>,
    /// Worker time per lane, halved every [`DECAY`] so that the past weighs less.
    used: BTreeMap<String, Duration>,
    /// When each running event of a lane started: running time counts as used.
    running: BTreeMap<String, Vec<Instant>>,
    decayed_at: Option<Instant>,
    closed: bool,
}

/// Events of one lane a worker prepares together, at most (see `grouped`), and the time
/// after which it takes no more.
const GROUP: usize = 16;
const GROUP_TIME: Duration = Duration::from_millis(5);

/// How often the lanes' used time is halved.
const DECAY: Duration = Duration::from_secs(1);

impl<J> Default for Lanes<J> {
    fn default() -> Self {
        Lanes {
            per_lane: None,
            queued: BTreeMap::new(),
            used: BTreeMap::new(),
            running: BTreeMap::new(),
            decayed_at: None,
            closed: false,
        }
    }
}

impl<J> Lanes<J> {
    /// The next job and when it started: from the lane with queued jobs that used the
    /// least worker time lately, its running events included (on a tie, the one with fewer
    /// running), among the lanes under their bound of running events.
    fn take(&mut self) -> Option<(J, Instant)> {
        let now = Instant::now();
        let lane = self
            .queued
            .keys()
            .filter(|lane| {
                self.per_lane
                    .is_none_or(|max| self.running.get(*lane).map_or(0, Vec::len) < max)
            })
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
        job.map(|job| (job, now))
    }

    /// One more job of `lane` for a worker that is preparing some already, if it is `like`
    /// them (of the same node) and more than `others` wait in the lane: the other workers
    /// keep work of their own. It starts now.
    fn take_more(
        &mut self,
        lane: &str,
        others: usize,
        like: impl Fn(&J) -> bool,
    ) -> Option<(J, Instant)> {
        let queue = self.queued.get_mut(lane)?;
        if queue.len() <= others || !queue.front().is_some_and(like) {
            return None;
        }
        let job = queue.pop_front()?;
        if queue.is_empty() {
            self.queued.remove(lane);
        }
        let now = Instant::now();
        self.running.entry(lane.to_string()).or_default().push(now);
        Some((job, now))
    }

    /// A job of `lane` that started at `started` has finished, having used `took` of a
    /// worker's time.
    fn finished(&mut self, lane: &str, started: Instant, took: Duration) {
        if let Some(running) = self.running.get_mut(lane) {
            if let Some(i) = running.iter().position(|at| *at == started) {
                running.swap_remove(i);
            }
            if running.is_empty() {
                self.running.remove(lane);
            }
        }
        self.charge(lane, took);
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

/// The lanes, shared by the event loops (which queue) and the workers (which take).
#[derive(Default)]
struct Scheduler {
    lanes: Mutex<Lanes<Job>>,
    wake: Condvar,
    /// Rung when a lane's last running event finishes (see [`Workers::forget`]).
    lane_idle: Condvar,
}

impl Scheduler {
    fn lanes(&self) -> MutexGuard<'_, Lanes<Job>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, job: Job) {
        self.lanes()
            .queued
            .entry(job.lane.clone())
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
            if let Some(taken) = lanes.take() {
                return Some(taken);
            }
            lanes = self.wake.wait(lanes).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.lanes().closed = true;
        self.wake.notify_all();
    }
}

/// Worker threads, shared by the pipelines of one node (`twinsync serve`) or of every
/// tenant of a host.
pub struct Workers {
    scheduler: Arc<Scheduler>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    count: usize,
    per_lane: Option<usize>,
}

impl Workers {
    /// Start `count` threads. `per_lane`: events of one lane that may run at once (`None`:
    /// no bound). `finished` is rung after each event.
    pub fn start(
        count: usize,
        per_lane: Option<usize>,
        finished: Option<Arc<Wake>>,
    ) -> std::io::Result<Arc<Workers>> {
        let count = count.max(1);
        let scheduler = Arc::new(Scheduler::default());
        scheduler.lanes().per_lane = per_lane.map(|n| n.max(1));
        // Lanes with a bound (a host's tenants) keep one event per worker: the bound counts
        // events at once.
        let group = if per_lane.is_some() { 1 } else { GROUP };
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (scheduler, finished) = (scheduler.clone(), finished.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("twinsync-worker-{i}"))
                    .spawn(move || work(&scheduler, finished.as_deref(), group, count))?,
            );
        }
        Ok(Arc::new(Workers {
            scheduler,
            threads: Mutex::new(threads),
            count,
            per_lane: per_lane.map(|n| n.max(1)),
        }))
    }

    /// Stop handing out events: each worker finishes the one it is on and stops.
    pub fn close(&self) {
        self.scheduler.close();
    }

    /// Take back the queued events of `lane` (no worker started them).
    fn withdraw(&self, lane: &str) -> Vec<Job> {
        self.scheduler
            .lanes()
            .queued
            .remove(lane)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// Drop the queued events of `lane` (they stay pending in their store) and wait until
    /// none of its events runs any more.
    fn forget(&self, lane: &str) {
        let mut lanes = self.scheduler.lanes();
        lanes.queued.remove(lane);
        while lanes.running.contains_key(lane) {
            lanes = self
                .scheduler
                .lane_idle
                .wait(lanes)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Workers {
    /// Stop handing out work and wait for the workers: each finishes the event it is on
    /// (at once if the runtime was interrupted); nothing is committed, so those events
    /// stay pending and run again after a restart.
    fn drop(&mut self) {
        self.scheduler.close();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// One node's events on their way through [`Workers`]: which are handed out, and their
/// commit, one transaction per round.
pub struct Pipeline {
    node: Arc<Node>,
    workers: Arc<Workers>,
    /// The lane of every event (`None`: its connection's).
    lane: Option<String>,
    done: Sender<Finished>,
    finished: Receiver<Finished>,
    /// Issues (see `issue_of`) with an event handed out and not yet committed.
    busy: HashSet<String>,
    /// Events handed out at most at once: enough to keep every worker busy between rounds,
    /// few enough that the ready query stays short.
    capacity: usize,
    /// How the events collected since [`Pipeline::take_ran`] ended, in queue order; kept
    /// only for a pipeline in a lane of shared workers (a host's tenant), which reads them.
    ran: Vec<Ran>,
    /// When this process last renewed its claims (a shared store only).
    renewed_at: Instant,
}

/// How often a process renews its claims: a fifth of their lease.
const RENEW_EVERY: Duration = Duration::from_secs(1);

impl Pipeline {
    /// Start `workers` threads preparing `node`'s events, shared out between its
    /// connections.
    pub fn start(node: Arc<Node>, workers: usize) -> std::io::Result<Self> {
        let workers = Workers::start(workers, None, None)?;
        Ok(Pipeline::on(node, workers, None))
    }

    /// `node`'s events, prepared by `workers` (shared with other nodes) in lane `lane`, or
    /// one lane per connection if `None`.
    pub fn on(node: Arc<Node>, workers: Arc<Workers>, lane: Option<String>) -> Self {
        let (done, finished) = mpsc::channel();
        // A lane that runs few events at once gets few handed out: a round then reads and
        // commits little, and another tenant's round comes sooner.
        let runs = workers.per_lane.unwrap_or(workers.count).min(workers.count);
        Pipeline {
            capacity: if lane.is_some() {
                (runs * 32).max(32)
            } else {
                (runs * 128).max(256)
            },
            node,
            workers,
            lane,
            done,
            finished,
            busy: HashSet::new(),
            ran: Vec::new(),
            renewed_at: Instant::now(),
        }
    }

    /// Events handed out and not committed yet.
    pub fn in_flight(&self) -> usize {
        self.busy.len()
    }

    /// One round: hand out the ready events that can start, then collect what finishes
    /// within `wait` (or until nothing is left running) and commit it in one transaction.
    /// An event still running after `wait` is collected by a later round.
    pub fn step(&mut self, wait: Duration) -> Result<Progress> {
        self.hand_out(usize::MAX)?;
        self.collect(wait)
    }

    /// Commit, in one transaction, the events that finished, waiting up to `wait` for the
    /// ones running (zero: take what finished, do not wait).
    pub fn collect(&mut self, wait: Duration) -> Result<Progress> {
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
        if finished.is_empty() {
            return Ok(Progress::default());
        }
        // In queue order, whatever order the workers finished in: messages of one round
        // go to the outbox (and out) in the order their events were queued.
        finished.sort_by_key(|(event, _, _, _)| event.seq);
        let mut issues = Vec::with_capacity(finished.len());
        let record = self.lane.is_some();
        let outcomes: Vec<(Event, Result<Prepared, Failed>)> = finished
            .into_iter()
            .map(|(event, issue, outcome, took)| {
                issues.push(issue);
                if record && let Some(ran) = ran(&outcome, took) {
                    self.ran.push(ran);
                }
                (event, outcome)
            })
            .collect();
        let committed = self.node.commit_claimed(&outcomes, Some(&issues));
        // Committed or not, these are no longer being worked on: if the commit failed they
        // are still pending in the store and will be handed out again.
        for issue in issues {
            self.busy.remove(&issue);
        }
        committed
    }

    /// Take back the events handed out that no worker has started yet (only for a pipeline
    /// in a lane of shared workers): they stay pending in the store and are handed out again
    /// later. How many.
    pub fn withdraw(&mut self) -> usize {
        let Some(lane) = &self.lane else {
            return 0;
        };
        let jobs = self.workers.withdraw(lane);
        for job in &jobs {
            self.busy.remove(&job.issue);
        }
        jobs.len()
    }

    /// How the events collected since the last call ended, in queue order (only for a
    /// pipeline in a lane of shared workers).
    pub fn take_ran(&mut self) -> Vec<Ran> {
        std::mem::take(&mut self.ran)
    }

    /// Hand out up to `most` of the ready events that can start (none of their issue in
    /// flight); how many went.
    pub fn hand_out(&mut self, most: usize) -> Result<usize> {
        // The claims of the events in flight (a store shared with other processes only; see
        // `store/shared.rs`), renewed well within their lease, busy or not: a process whose
        // workers are all taken must keep its issues.
        if self.node.store.is_shared() && self.renewed_at.elapsed() >= RENEW_EVERY {
            let busy: Vec<String> = self.busy.iter().cloned().collect();
            self.node.store.renew_claims(&busy)?;
            self.renewed_at = Instant::now();
        }
        let room = self.capacity.saturating_sub(self.busy.len()).min(most);
        // With work in flight, wait until a quarter of the room is free: the query costs the
        // same for one free place as for many, and the workers are busy meanwhile.
        if room == 0 || (!self.busy.is_empty() && room < (self.capacity / 4).min(most)) {
            return Ok(0);
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
            if chosen.len() >= room || !self.busy.insert(issue.clone()) {
                continue;
            }
            chosen.push((head.seq, issue));
        }
        // Other processes of the node may work on some of these issues: keep the ones this
        // process could claim.
        if self.node.store.is_shared() && !chosen.is_empty() {
            let issues: Vec<String> = chosen.iter().map(|(_, issue)| issue.clone()).collect();
            let held = match self.node.store.claim(&issues) {
                Ok(held) => held,
                Err(error) => {
                    for issue in &issues {
                        self.busy.remove(issue);
                    }
                    return Err(error);
                }
            };
            let mut held = held.into_iter();
            chosen.retain(|(_, issue)| {
                let ours = held.next().unwrap_or(false);
                if !ours {
                    self.busy.remove(issue);
                }
                ours
            });
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
        let mut handed = 0;
        for ((_, issue), event) in chosen.into_iter().zip(events) {
            match event {
                // Still pending: another process may have finished it (and given its issue
                // up) between the query and the claim.
                Some(event) if event.state == State::Pending => {
                    let lane = self
                        .lane
                        .clone()
                        .unwrap_or_else(|| event.connection.clone());
                    self.workers.scheduler.queue(Job {
                        node: self.node.clone(),
                        event,
                        issue,
                        lane,
                        done: self.done.clone(),
                    });
                    handed += 1;
                }
                // Gone or finished since the query (an operator skipped it, another process
                // ran it): nothing to do.
                _ => {
                    self.busy.remove(&issue);
                }
            }
        }
        Ok(handed)
    }
}

impl Drop for Pipeline {
    /// Its events that wait for a worker are dropped (they stay pending in the store); the
    /// ones running finish first (at once if the runtime was interrupted), and nothing is
    /// committed, so they stay pending too and run again after a restart.
    fn drop(&mut self) {
        // Workers of its own stop with it (see `Workers`' drop); shared ones go on.
        if let Some(lane) = &self.lane {
            self.workers.forget(lane);
        }
    }
}

/// How `outcome` ended (`None`: a passing failure, the node shutting down say, which says
/// nothing of the processor).
fn ran(outcome: &Result<Prepared, Failed>, took: Duration) -> Option<Ran> {
    match outcome {
        Ok(_) => Some(Ran::Otherwise),
        Err(failed) if failed.failure.is_transient() => None,
        Err(failed) => Some(match failed.failure.kind() {
            "timeout" | "instruction-limit" => Ran::ToItsLimit(took),
            _ => Ran::Otherwise,
        }),
    }
}

/// What a worker keeps of a job while it prepares its event (all of its group are of one
/// lane).
struct Taken {
    issue: String,
    done: Sender<Finished>,
    started: Instant,
}

fn work(scheduler: &Scheduler, finished: Option<&Wake>, group: usize, workers: usize) {
    while let Some((first, started)) = scheduler.next() {
        let Job {
            node,
            event,
            issue,
            lane,
            done,
        } = first;
        let began = Instant::now();
        let mut taken = vec![Taken {
            issue,
            done,
            started,
        }];
        // More events of the lane, while they come quickly: a worker holds a lane no more
        // than `GROUP_TIME` and one event, however slow that event's processor.
        let mut more = || {
            if taken.len() >= group || began.elapsed() >= GROUP_TIME {
                return None;
            }
            let (job, started) = scheduler
                .lanes()
                .take_more(&lane, workers - 1, |job| Arc::ptr_eq(&job.node, &node))?;
            taken.push(Taken {
                issue: job.issue,
                done: job.done,
                started,
            });
            Some(job.event)
        };
        // A bug that panics while preparing one event must not take a worker, and with it
        // the event's twin, out for good: the event waits and is tried again.
        let mut events = vec![event];
        let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            node.prepare_many(&mut events, &mut more)
        }));
        let outcomes = prepared.unwrap_or_else(|panic| {
            let what = crate::service::supervise::panic_message(&*panic);
            events
                .iter()
                .map(|_| {
                    Err(Failed::from(SyncFailure::Storage(format!(
                        "preparing the event panicked (a bug in twinsync): {what}"
                    ))))
                })
                .collect()
        });
        // Events prepared together share the time they took.
        let took = began.elapsed() / outcomes.len().max(1) as u32;
        let mut started = Vec::with_capacity(taken.len());
        for ((event, outcome), taken) in events.into_iter().zip(outcomes).zip(taken) {
            // Sent before the lane counts it finished: a pipeline dropped meanwhile (its
            // receiver gone) has waited for it, and its outcome is not committed.
            let _ = taken.done.send((event, taken.issue, outcome, took));
            started.push(taken.started);
        }
        let mut lanes = scheduler.lanes();
        for started in started {
            lanes.finished(&lane, started, took);
        }
        if !lanes.running.contains_key(&lane) {
            scheduler.lane_idle.notify_all();
        }
        drop(lanes);
        if let Some(finished) = finished {
            finished.ring();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane's queued job, as the tests see it: its number.
    fn queue(lanes: &mut Lanes<i64>, lane: &str, seq: i64) {
        lanes.queued.entry(lane.into()).or_default().push_back(seq);
    }

    #[test]
    fn the_lane_that_used_the_least_time_goes_first() {
        let mut lanes = Lanes::default();
        lanes.charge("slow", Duration::from_secs(2));
        lanes.charge("quick", Duration::from_millis(1));
        for (lane, seq) in [("slow", 1), ("slow", 2), ("quick", 3)] {
            queue(&mut lanes, lane, seq);
        }
        let order: Vec<i64> = std::iter::from_fn(|| lanes.take()).map(|j| j.0).collect();
        assert_eq!(order, [3, 1, 2]);
    }

    #[test]
    fn a_running_event_counts_so_two_workers_do_not_both_start_on_one_lane() {
        let mut lanes = Lanes::default();
        for (lane, seq) in [("a", 1), ("a", 2), ("b", 3)] {
            queue(&mut lanes, lane, seq);
        }
        assert_eq!(lanes.take().map(|j| j.0), Some(1));
        // "a" has one running, "b" none: the second worker takes "b".
        assert_eq!(lanes.take().map(|j| j.0), Some(3));
    }

    #[test]
    fn a_worker_takes_more_of_its_lane_only_while_the_others_keep_work_and_only_alike() {
        let mut lanes = Lanes::default();
        for (lane, seq) in [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 5)] {
            queue(&mut lanes, lane, seq);
        }
        let (first, _) = lanes.take().unwrap();
        assert_eq!(first, 1);
        // Two other workers: more is taken while more than two wait.
        let more = |lanes: &mut Lanes<i64>| lanes.take_more("a", 2, |_| true).map(|j| j.0);
        assert_eq!(more(&mut lanes), Some(2));
        assert_eq!(more(&mut lanes), None);
        assert_eq!(lanes.running["a"].len(), 2);
        // Alone, the worker takes the rest of its lane, but not a job unlike its own.
        assert_eq!(
            lanes.take_more("a", 0, |seq| *seq != 4).map(|j| j.0),
            Some(3)
        );
        assert_eq!(lanes.take_more("a", 0, |seq| *seq != 4).map(|j| j.0), None);
        assert_eq!(lanes.take_more("c", 0, |_| true).map(|j| j.0), None);
        assert_eq!(lanes.take().map(|j| j.0), Some(5));
    }

    #[test]
    fn a_lane_at_its_bound_waits_even_if_it_used_the_least_time() {
        let mut lanes = Lanes {
            per_lane: Some(1),
            ..Lanes::default()
        };
        lanes.charge("b", Duration::from_secs(5));
        for (lane, seq) in [("a", 1), ("a", 2), ("b", 3)] {
            queue(&mut lanes, lane, seq);
        }
        let (first, started) = lanes.take().unwrap();
        assert_eq!(first, 1);
        // "a" runs one already: "b" goes, however much time it used.
        assert_eq!(lanes.take().map(|j| j.0), Some(3));
        assert_eq!(lanes.take(), None);
        lanes.finished("a", started, started.elapsed());
        assert_eq!(lanes.take().map(|j| j.0), Some(2));
    }
}
