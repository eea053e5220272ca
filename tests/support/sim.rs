//! A deterministic simulation of nodes syncing over an unreliable network, driven by a seed:
//! random edits on every side, messages delayed, reordered, duplicated and lost, links going
//! down, nodes restarting, and nodes crashing at every step of an event (the node's crash
//! hook unwinds out of it at the chosen point, and the node is started again on its files).
//! Everything runs in one thread on a manual clock, so a seed always plays out the same way.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use twinsync::clock::ManualClock;
use twinsync::model::{Comment, FieldValue, Issue};
use twinsync::runtime::ConflictPolicy;
use twinsync::setup::reference_node_on;
use twinsync::store::{conflicts, events, twins};
use twinsync::sync::{Connection, CrashPoint, Flow, Node, Policies, SyncMessage, Take};
use twinsync::tracker::{Origin, ReferenceTracker, Tracker};

use crate::{processor, runtime};

/// xorshift64*: small and reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

struct SimNode {
    name: &'static str,
    project: &'static str,
    /// (connection, remote instance) pairs.
    connections: Vec<(&'static str, &'static str)>,
    node: Arc<Node>,
    tracker: Arc<ReferenceTracker>,
}

struct Link {
    name: &'static str,
    a: usize,
    b: usize,
    down: bool,
}

/// A message on the wire.
struct InFlight {
    from: usize,
    to: usize,
    link: usize,
    message: SyncMessage,
}

/// The fields a simulation edits and checks.
pub const FIELDS: &[&str] = &[
    "summary",
    "description",
    "status",
    "labels",
    "custom-field:tier",
];

/// Nodes in a line (A - B for two, A - B - C for three), one connection between neighbours.
pub struct Sim {
    pub seed: u64,
    rng: Rng,
    dir: TempDir,
    clock: Arc<ManualClock>,
    nodes: Vec<SimNode>,
    links: Vec<Link>,
    wire: Vec<InFlight>,
    policy: ConflictPolicy,
    /// The nodes' PostgreSQL databases, dropped with the simulation.
    _databases: crate::store::Cleanup,
    /// Edits made by simulated people.
    pub edits: usize,
    /// Conflicts an operator settled.
    pub resolved: usize,
    /// Events the nodes processed after the set-up.
    pub events: usize,
    comments: usize,
    /// Percent of processing steps armed with a crash.
    crash_percent: u64,
    /// The crash armed for the processing step under way: at the `n`th time the node
    /// passes `point`. Shared with every node's crash hook.
    armed: Arc<Mutex<Option<(CrashPoint, u32)>>>,
    /// The point of the crash armed, until it fires.
    armed_point: Option<CrashPoint>,
    /// Crashes that happened, per point.
    pub crashes: BTreeMap<&'static str, usize>,
}

/// What the crash hook unwinds with: a crash the simulation asked for.
struct InjectedCrash;

const NAMES: [(&str, &str); 3] = [("A", "AAA"), ("B", "BBB"), ("C", "CCC")];
const LINKS: [&str; 2] = ["a-b", "b-c"];

impl Sim {
    /// `nodes` (2 or 3) in a line, `issues` issues created on A and synced along the line.
    pub fn new(seed: u64, nodes: usize, issues: usize, policy: ConflictPolicy) -> Sim {
        Sim::with_crashes(seed, nodes, issues, policy, 0)
    }

    /// Like [`Sim::new`], with a crash armed in `crash_percent` of the processing steps:
    /// at a random crash point (most often between a tracker write and the node's commit),
    /// on whichever node processes.
    pub fn with_crashes(
        seed: u64,
        nodes: usize,
        issues: usize,
        policy: ConflictPolicy,
        crash_percent: u64,
    ) -> Sim {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            _databases: crate::store::Cleanup(dir.path().to_path_buf()),
            dir,
            clock: Arc::new(ManualClock::starting_at(1_767_225_600_000)),
            nodes: Vec::new(),
            links: Vec::new(),
            wire: Vec::new(),
            policy,
            edits: 0,
            resolved: 0,
            events: 0,
            comments: 0,
            crash_percent: 0,
            armed: Arc::new(Mutex::new(None)),
            armed_point: None,
            crashes: BTreeMap::new(),
        };
        for i in 0..nodes {
            let mut connections = Vec::new();
            if i > 0 {
                connections.push((LINKS[i - 1], NAMES[i - 1].0));
            }
            if i + 1 < nodes {
                connections.push((LINKS[i], NAMES[i + 1].0));
                sim.links.push(Link {
                    name: LINKS[i],
                    a: i,
                    b: i + 1,
                    down: false,
                });
            }
            let (name, project) = NAMES[i];
            let (node, tracker) = sim.open(name, project, &connections);
            sim.nodes.push(SimNode {
                name,
                project,
                connections,
                node,
                tracker,
            });
        }
        // The issues start on A and travel down the line, one link at a time.
        for n in 0..issues {
            let issue = Issue {
                summary: format!("issue {n}"),
                status: "Open".into(),
                labels: vec!["start".into()],
                custom_fields: vec![twinsync::model::CustomField {
                    name: "tier".into(),
                    value: FieldValue::Option("Bronze".into()),
                }],
                ..Issue::default()
            };
            let key = sim.nodes[0]
                .tracker
                .create(&issue, Origin::User)
                .unwrap()
                .key
                .unwrap();
            sim.nodes[0].node.poll_changes().unwrap();
            sim.nodes[0].node.exalate(LINKS[0], &key).unwrap();
        }
        sim.settle();
        // Each middle node passes its copies on over its next link.
        for (i, link) in LINKS.iter().enumerate().take(nodes - 1).skip(1) {
            for twin in twinsync::ops::twins(sim.nodes[i].node.store()).unwrap() {
                sim.nodes[i].node.exalate(link, &twin.local_key).unwrap();
            }
            sim.settle();
        }
        sim.events = 0;
        sim.crash_percent = crash_percent;
        sim
    }

    fn open(
        &self,
        name: &str,
        project: &str,
        connections: &[(&str, &str)],
    ) -> (Arc<Node>, Arc<ReferenceTracker>) {
        let connections = connections
            .iter()
            .map(|(connection, remote)| {
                Connection::new(
                    connection,
                    remote,
                    Flow::Bidirectional,
                    Some(processor("mirror")),
                    Some(processor("mirror")),
                    Default::default(),
                )
                .unwrap()
                .with_policies(Policies::all(self.policy))
            })
            .collect();
        let opened = reference_node_on(
            crate::store::open(&self.dir(name)),
            &self.dir(name),
            name,
            project,
            runtime(),
            connections,
            self.clock.clone(),
        )
        .unwrap();
        let armed = self.armed.clone();
        opened.node.set_crash_hook(Arc::new(move |point| {
            let mut armed = armed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((target, n)) = armed.as_mut()
                && *target == point
            {
                if *n > 1 {
                    *n -= 1;
                } else {
                    *armed = None;
                    drop(armed);
                    // Not `panic!`: no panic message for a crash asked for.
                    std::panic::resume_unwind(Box::new(InjectedCrash));
                }
            }
        }));
        (opened.node, opened.tracker)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Play `steps` random steps.
    pub fn play(&mut self, steps: usize) {
        for _ in 0..steps {
            match self.rng.below(100) {
                0..=24 => self.edit(),
                25..=44 => {
                    let i = self.rng.below(self.nodes.len());
                    let limit = 1 + self.rng.below(4);
                    self.process(i, limit);
                }
                45..=64 => self.put_on_wire(),
                65..=84 => self.deliver_one(),
                85..=89 => {
                    let l = self.rng.below(self.links.len());
                    self.links[l].down = !self.links[l].down;
                }
                90..=92 => {
                    let i = self.rng.below(self.nodes.len());
                    self.restart(i);
                }
                93..=94 => self.resolve(),
                _ => self
                    .clock
                    .advance(Duration::from_millis(1 + self.rng.below(2_000) as u64)),
            }
        }
    }

    /// A person edits a random field of a random issue on a random node.
    fn edit(&mut self) {
        let i = self.rng.below(self.nodes.len());
        let issues = self.nodes[i].tracker.list().unwrap();
        if issues.is_empty() {
            return;
        }
        let mut issue = issues[self.rng.below(issues.len())].clone();
        let tag = format!("{} {}", self.nodes[i].name, self.edits);
        match self.rng.below(6) {
            0 => issue.summary = format!("summary by {tag}"),
            1 => issue.description = Some(format!("description by {tag}")),
            2 => {
                issue.status =
                    ["Open", "In Progress", "Resolved", "Closed"][self.rng.below(4)].into()
            }
            3 => issue.labels = vec![format!("label-{}", self.rng.below(3))],
            4 => issue.set_custom_field(
                "tier",
                FieldValue::Option(["Gold", "Silver", "Bronze"][self.rng.below(3)].into()),
            ),
            _ => {
                self.comments += 1;
                issue.comments.push(Comment {
                    id: String::new(),
                    author: None,
                    body: format!("comment {} by {tag}", self.comments),
                    created: String::new(),
                    updated: None,
                    internal: false,
                });
            }
        }
        self.nodes[i].tracker.update(&issue, Origin::User).unwrap();
        self.edits += 1;
    }

    /// An operator settles a random open conflict on a random node, keeping either side's
    /// value. (Refused when the issue kept changing or the twin is gone: an operator sees
    /// the error and the conflict stays open.)
    fn resolve(&mut self) {
        let i = self.rng.below(self.nodes.len());
        let node = self.nodes[i].node.clone();
        let open = node.store().read(|db| conflicts::open(db)).unwrap();
        if open.is_empty() {
            return;
        }
        let id = open[self.rng.below(open.len())].id;
        let take = self.either_side();
        if node.resolve_conflict(id, take).is_ok() {
            self.resolved += 1;
        }
    }

    /// Operators settle every open conflict, one at a time, keeping either side's value at
    /// random, the nodes settling after each (its copy on the other side of the link then
    /// closes as the values converge). Returns how many stayed open.
    pub fn resolve_all(&mut self) -> usize {
        for _ in 0..100 {
            let open = self.nodes.iter().enumerate().find_map(|(i, n)| {
                let open = n.node.store().read(|db| conflicts::open(db)).unwrap();
                open.first().map(|c| (i, c.id))
            });
            let Some((i, id)) = open else {
                return 0;
            };
            let take = self.either_side();
            self.nodes[i].node.resolve_conflict(id, take).unwrap();
            self.resolved += 1;
            self.settle();
        }
        self.open_conflicts().len()
    }

    /// The side an operator keeps: either, at random.
    fn either_side(&mut self) -> Take {
        if self.rng.chance(50) {
            Take::Local
        } else {
            Take::Remote
        }
    }

    fn process(&mut self, i: usize, limit: usize) {
        if self.armed_point.is_none()
            && self.crash_percent > 0
            && self.rng.chance(self.crash_percent)
        {
            // The window between the tracker write and the node's commit most often: it is
            // the one a crash could turn into a silent difference. A crash stays armed until
            // a node (whichever processes) reaches its point.
            let point = match self.rng.below(8) {
                0 => CrashPoint::AfterProcessor,
                1 => CrashPoint::BeforeCommit,
                2 => CrashPoint::AfterCommit,
                3 | 4 => CrashPoint::BeforeTrackerWrite,
                _ => CrashPoint::AfterTrackerWrite,
            };
            let nth = 1 + self.rng.below(3) as u32;
            *self.armed.lock().unwrap() = Some((point, nth));
            self.armed_point = Some(point);
        }
        let node = self.nodes[i].node.clone();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            node.poll_changes().unwrap();
            node.process_ready(limit).unwrap()
        }));
        drop(node);
        match outcome {
            Ok(progress) => self.events += progress.total(),
            Err(payload) if payload.is::<InjectedCrash>() => {
                let point = self
                    .armed_point
                    .take()
                    .expect("a crash fires only when armed");
                *self.crashes.entry(point.name()).or_default() += 1;
                if std::env::var("TWINSYNC_SIM_TRACE").is_ok() {
                    eprintln!(
                        "crash of {} at {} (clock {})",
                        self.nodes[i].name,
                        point.name(),
                        twinsync::clock::millis(twinsync::clock::Clock::now(&*self.clock))
                            % 100_000
                    );
                }
                self.restart(i);
            }
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Copy some messages of a random link direction onto the wire. A message stays in its
    /// sender's outbox until acknowledged, so it may go on the wire more than once.
    fn put_on_wire(&mut self) {
        let l = self.rng.below(self.links.len());
        let (from, to) = if self.rng.chance(50) {
            (self.links[l].a, self.links[l].b)
        } else {
            (self.links[l].b, self.links[l].a)
        };
        let outbox = self.nodes[from]
            .node
            .outbox(self.links[l].name, 1 + self.rng.below(3))
            .unwrap();
        for message in outbox {
            self.wire.push(InFlight {
                from,
                to,
                link: l,
                message,
            });
        }
    }

    /// Deliver a random message from the wire: reordered, lost when the link is down, and
    /// sometimes its acknowledgement is lost (it will come again).
    fn deliver_one(&mut self) {
        if self.wire.is_empty() {
            return;
        }
        let flight = self.wire.swap_remove(self.rng.below(self.wire.len()));
        if self.links[flight.link].down {
            return;
        }
        let receipt = self.nodes[flight.to].node.receive(&flight.message).unwrap();
        if receipt.is_acknowledgement() && self.rng.chance(80) {
            self.nodes[flight.from]
                .node
                .acknowledge(std::slice::from_ref(&flight.message.id))
                .unwrap();
        }
    }

    /// Stop a node without warning and start it again on its files.
    fn restart(&mut self, i: usize) {
        // A node keeps nothing in memory that is not in its database: a new node on the same
        // files, replacing the old one, is a restart.
        let (name, project) = (self.nodes[i].name, self.nodes[i].project);
        let (node, tracker) = self.open(name, project, &self.nodes[i].connections);
        self.nodes[i].node = node;
        self.nodes[i].tracker = tracker;
    }

    /// Heal the network and let everything drain: links up, every message delivered in
    /// order and acknowledged, retry times passed, until nothing moves.
    pub fn settle(&mut self) {
        // No crash while settling: what is checked after it is where a crash led.
        *self.armed.lock().unwrap() = None;
        self.armed_point = None;
        for link in &mut self.links {
            link.down = false;
        }
        self.wire.clear();
        let mut quiet_rounds = 0;
        for _ in 0..1_000 {
            let mut moved = 0;
            for i in 0..self.nodes.len() {
                let node = &self.nodes[i].node;
                moved += node.poll_changes().unwrap();
                let progress = node.process_ready(1_000).unwrap();
                self.events += progress.total();
                moved += progress.done + progress.failed;
            }
            for l in 0..self.links.len() {
                for (from, to) in [
                    (self.links[l].a, self.links[l].b),
                    (self.links[l].b, self.links[l].a),
                ] {
                    let outbox = self.nodes[from]
                        .node
                        .outbox(self.links[l].name, 1_000)
                        .unwrap();
                    let receipts = self.nodes[to].node.receive_all(&outbox).unwrap();
                    let taken: Vec<String> = outbox
                        .iter()
                        .zip(receipts)
                        .take_while(|(_, r)| r.is_acknowledgement())
                        .map(|(m, _)| m.id.clone())
                        .collect();
                    moved += taken.len();
                    self.nodes[from].node.acknowledge(&taken).unwrap();
                }
            }
            self.clock.advance(Duration::from_secs(120));
            quiet_rounds = if moved == 0 { quiet_rounds + 1 } else { 0 };
            if quiet_rounds == 2 {
                return;
            }
        }
        panic!("seed {}: the nodes never settled", self.seed);
    }

    /// Each issue as every node holds it: the groups of twins along the line, from A's
    /// issues.
    pub fn groups(&self) -> Vec<Vec<(usize, Issue)>> {
        let mut groups = Vec::new();
        for issue in self.nodes[0].tracker.list().unwrap() {
            let mut group = vec![(0, issue.clone())];
            let mut key = issue.key.clone().unwrap();
            // Twin ids are the same on both ends of a link.
            for (i, link) in self.links.iter().enumerate() {
                let here = self.nodes[i].node.store();
                let Some(twin) = here
                    .read(|db| twins::by_local_key(db, link.name, &key))
                    .unwrap()
                else {
                    break;
                };
                let there = self.nodes[i + 1].node.store();
                let Some(other) = there.read(|db| twins::get(db, &twin.twin_id)).unwrap() else {
                    break;
                };
                let next = self.nodes[i + 1]
                    .tracker
                    .get(&other.local_key)
                    .unwrap()
                    .expect("the twin's issue exists");
                key = other.local_key;
                group.push((i + 1, next));
            }
            groups.push(group);
        }
        groups
    }

    /// Open conflicts on any node, as (node, twin's local key, field).
    pub fn open_conflicts(&self) -> Vec<(usize, String, String)> {
        let mut found = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let open = n.node.store().read(|db| conflicts::open(db)).unwrap();
            for c in open {
                let key = n
                    .node
                    .store()
                    .read(|db| twins::get(db, &c.twin_id))
                    .unwrap()
                    .map(|t| t.local_key)
                    .unwrap_or_default();
                found.push((i, key, c.field));
            }
        }
        found
    }

    /// Events that ended as sync errors, on any node.
    pub fn sync_errors(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                n.node
                    .store()
                    .read(|db| events::in_state(db, "failed"))
                    .unwrap()
            })
            .map(|e| format!("{}: {}", e.id, e.error.unwrap_or_default()))
            .collect()
    }

    /// Events, on any node, whose note contains `text`.
    pub fn notes_containing(&self, text: &str) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| n.node.store().read(|db| events::all(db)).unwrap())
            .filter(|e| e.note.as_deref().is_some_and(|note| note.contains(text)))
            .map(|e| format!("{}: {}", e.id, e.note.unwrap_or_default()))
            .collect()
    }

    /// Every node's events, for reading a failing seed (`TWINSYNC_SIM_TRACE=1`).
    pub fn trace(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!("== {}\n", n.name));
            if let Ok(db) = rusqlite::Connection::open(self.dir(n.name).join("tracker.db")) {
                let mut stmt = db
                    .prepare(
                        "SELECT seq, key, coalesce(sync_event, 'user') FROM changes ORDER BY seq",
                    )
                    .unwrap();
                let rows: Vec<String> = stmt
                    .query_map([], |r| {
                        Ok(format!(
                            "{}:{}:{}",
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?
                        ))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                out.push_str(&format!("tracker writes: {}\n", rows.join(" ")));
            }
            for e in n.node.store().read(|db| events::all(db)).unwrap() {
                let message = e
                    .message
                    .as_deref()
                    .and_then(|m| serde_json::from_str::<SyncMessage>(m).ok());
                let detail = message
                    .and_then(|m| {
                        m.replica.map(|r| {
                            format!("status={:?} stamp={:?}", r.status, m.stamps.get("status"))
                        })
                    })
                    .unwrap_or_default();
                if let Some(input) = e
                    .input
                    .as_deref()
                    .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
                {
                    out.push_str(&format!(
                        "  input: issue status={} summary={} local status stamp={}\n",
                        input["issue"]["status"],
                        input["issue"]["summary"],
                        input["merge_base"]["local_stamps"]["status"]
                    ));
                }
                out.push_str(&format!(
                    "{} {:?} {:?} at {} {} -> {} {}\n{}",
                    e.id,
                    e.kind,
                    e.reason,
                    e.created_at % 100_000,
                    detail,
                    e.note.unwrap_or_default(),
                    e.error.unwrap_or_default(),
                    e.log.unwrap_or_default()
                ));
            }
        }
        out
    }

    pub fn node_name(&self, i: usize) -> &'static str {
        self.nodes[i].name
    }
}

/// A field of an issue, as text to compare across nodes.
pub fn field(issue: &Issue, name: &str) -> String {
    match name {
        "summary" => issue.summary.clone(),
        "description" => issue.description.clone().unwrap_or_default(),
        "status" => issue.status.clone(),
        "labels" => issue.labels.join(","),
        _ => format!("{:?}", issue.custom_field("tier")),
    }
}
