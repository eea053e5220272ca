//! Test harness: two reference-tracker nodes in one process, processors built from source,
//! and a clock the test controls; `process` runs real `twinsync serve` processes.

pub mod cli;
pub mod console;
pub mod languages;
pub mod neighbours;
pub mod postgres;
pub mod process;
pub mod redmine;
pub mod sim;
pub mod store;
pub mod tenants;
pub mod trackers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tempfile::TempDir;
use twinsync::clock::ManualClock;
use twinsync::model::{Direction, FieldValue, Issue, SyncContext, SyncReason};
use twinsync::runtime::{Limits, Plugin, Runtime, RuntimeConfig};
use twinsync::setup::{ReferenceNode, reference_node_on};
use twinsync::store::events::{self, Event, State};
use twinsync::store::twins;
use twinsync::sync::{Connection, Flow, Node, Policies};
use twinsync::tracker::{Origin, Tracker};
use twinsync::transport::local::{LocalNetwork, RunStats};

/// The test processor whose behaviour the issue picks (see `guest/test-processors/scripted`).
pub const SCRIPTED: &str = env!("TWINSYNC_TEST_SCRIPTED");
/// A valid component that is not a processor.
pub const WRONG_WORLD: &str = env!("TWINSYNC_TEST_WRONG_WORLD");
/// A processor of the current contract that labels what it sees (origin, its `greeting`
/// setting: both new in 0.2.0).
pub const CONTRACT_PROBE: &str = env!("TWINSYNC_TEST_CONTRACT_PROBE");
/// `mirror` as built from the frozen contract 0.1.0, kept as a binary (built once, never
/// rebuilt): a plugin shipped for 0.1.0 must keep running.
pub const MIRROR_V0_1_0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mirror-v0.1.0.wasm");
/// `mirror` as built for contract 0.2.0, which reads the whole merge base
/// (`read-merge-base`) where the current one asks for the fields it settles
/// (`read-field-base`, 0.2.1); kept as a binary like the 0.1.0 one.
pub const MIRROR_V0_2_0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mirror-v0.2.0.wasm");
/// A processor that imports `wasi:http`, which the host does not provide.
pub const HTTP_IMPORTER: &str = env!("TWINSYNC_TEST_HTTP_IMPORTER");
/// The custom field that tells `scripted` what to do.
pub const BEHAVIOUR: &str = "test behaviour";
/// The connection between the two nodes of a [`Pair`].
pub const CONNECTION: &str = "internal-external";

/// One runtime for the whole test binary, as a node has one.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let config = RuntimeConfig {
                cache_dir: Some(compile_cache_dir()),
                ..RuntimeConfig::default()
            };
            Arc::new(Runtime::new(&config).expect("runtime"))
        })
        .clone()
}

/// Where test runtimes cache compiled components, so that only the first test run after a
/// change compiles the large Python and JavaScript components (seconds each).
pub fn compile_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-compile-cache")
}

/// A processor by name: a built-in one, `scripted`, or the path of a `.wasm` file (see
/// [`Language::processor`](languages::Language::processor)). Compiled once per test
/// binary, however many tests ask for it at the same time.
pub fn processor(name: &str) -> Arc<Plugin> {
    type Slot = Arc<OnceLock<Arc<Plugin>>>;
    static CACHE: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(name.into())
        .or_default()
        .clone();
    slot.get_or_init(|| {
        let wasm = processor_wasm(name).unwrap_or_else(|message| panic!("{message}"));
        let plugin = runtime().load(name, &wasm).unwrap_or_else(|error| {
            // A component built before the contract changed no longer links.
            let stale = if name.ends_with(".wasm") {
                REBUILD_POLYGLOT
            } else {
                ""
            };
            panic!("cannot load {name}: {error}{stale}")
        });
        Arc::new(plugin)
    })
    .clone()
}

const REBUILD_POLYGLOT: &str = "\nThe Python and JavaScript processors are built by \
    `scripts/build-polyglot`, which `./scripts/test` runs before `cargo test`.";

/// The component [`processor`] loads for `name`, or why there is none.
pub fn processor_wasm(name: &str) -> Result<Vec<u8>, String> {
    if name.ends_with(".wasm") {
        return std::fs::read(name)
            .map_err(|error| format!("cannot read {name} ({error}){REBUILD_POLYGLOT}"));
    }
    match twinsync::builtin::get(name) {
        Some(wasm) => Ok(wasm.to_vec()),
        None if name == "scripted" => {
            Ok(std::fs::read(SCRIPTED).expect("scripted.wasm is built by build.rs"))
        }
        None => Err(format!("no test processor called {name}")),
    }
}

/// How one node of a pair is set up.
#[derive(Clone)]
pub struct Side {
    /// Processor names as [`processor`] takes them.
    pub incoming: String,
    pub outgoing: String,
    pub flow: Flow,
    pub limits: Limits,
    pub policies: Policies,
}

impl Side {
    /// The same processor both ways, on a bidirectional connection.
    pub fn both(processor: impl Into<String>) -> Side {
        let processor = processor.into();
        Side {
            incoming: processor.clone(),
            outgoing: processor,
            flow: Flow::Bidirectional,
            limits: Limits::default(),
            policies: Policies::default(),
        }
    }

    /// One conflict policy for every field of this side's connection.
    pub fn policy(mut self, policy: twinsync::runtime::ConflictPolicy) -> Side {
        self.policies = Policies::all(policy);
        self
    }

    pub fn flow(mut self, flow: Flow) -> Side {
        self.flow = flow;
        self
    }

    pub fn incoming(mut self, processor: impl Into<String>) -> Side {
        self.incoming = processor.into();
        self
    }

    fn connection(&self, remote: &str) -> Connection {
        Connection::new(
            CONNECTION,
            remote,
            self.flow,
            Some(processor(&self.incoming)),
            Some(processor(&self.outgoing)),
            self.limits.clone(),
        )
        .expect("valid test connection")
        .with_policies(self.policies.clone())
    }
}

/// Two nodes, Internal (keys INT-n) and External (keys EXT-n), in one process.
pub struct Pair {
    pub internal: ReferenceNode,
    pub external: ReferenceNode,
    pub network: LocalNetwork,
    pub clock: Arc<ManualClock>,
    _dir: TempDir,
    /// Last: the nodes' PostgreSQL databases go once the nodes have.
    _databases: store::Cleanup,
}

impl Pair {
    pub fn new(internal: Side, external: Side) -> Pair {
        let dir = tempfile::tempdir().expect("temp dir");
        // 2026-01-01T00:00:00Z
        let clock = Arc::new(ManualClock::starting_at(1_767_225_600_000));
        let node = |name: &str, project: &str, side: &Side, remote: &str| {
            reference_node_on(
                store::open(&dir.path().join(name)),
                &dir.path().join(name),
                name,
                project,
                runtime(),
                vec![side.connection(remote)],
                clock.clone(),
            )
            .expect("node")
        };
        let internal = node("Internal", "INT", &internal, "External");
        let external = node("External", "EXT", &external, "Internal");
        let network = LocalNetwork::new(vec![internal.node.clone(), external.node.clone()]);
        Pair {
            internal,
            external,
            network,
            clock,
            _databases: store::Cleanup(dir.path().to_path_buf()),
            _dir: dir,
        }
    }

    /// The reference tracker's SQLite file of node `name` (`Internal` or `External`), for a
    /// test that changes it behind the tracker's back.
    pub fn tracker_file(&self, name: &str) -> PathBuf {
        self._dir.path().join(name).join("tracker.db")
    }

    /// Put another tracker in front of External (to make it fail, say): External becomes a
    /// new node on the same database with this tracker.
    pub fn replace_external_tracker(&mut self, tracker: Arc<dyn Tracker>) {
        let old = &self.external.node;
        let connections = old.connections().iter().map(|c| (**c).clone()).collect();
        let node = twinsync::sync::Node::new(
            old.instance(),
            tracker,
            old.store().clone(),
            runtime(),
            connections,
            self.clock.clone(),
        )
        .expect("node");
        self.external.node = Arc::new(node);
        self.network =
            LocalNetwork::new(vec![self.internal.node.clone(), self.external.node.clone()]);
    }

    /// Create an issue on Internal, as a user would, and return its key. The node sees the
    /// creation (as a running node would) before anything else happens.
    pub fn create(&self, issue: Issue) -> String {
        let created = self
            .internal
            .tracker
            .create(&issue, Origin::User)
            .expect("create");
        self.internal.node.poll_changes().expect("poll");
        created.key.expect("created issues have a key")
    }

    /// Create an issue on Internal and exalate it; returns (key, twin id).
    pub fn create_and_exalate(&self, issue: Issue) -> (String, String) {
        let key = self.create(issue);
        let twin = self
            .internal
            .node
            .exalate(CONNECTION, &key)
            .expect("exalate");
        (key, twin)
    }

    /// Run both nodes until nothing is left to do now.
    pub fn run(&self) -> RunStats {
        self.network.run_until_idle(1_000).expect("run")
    }

    /// The issue twinned with `twin` on External.
    pub fn external_issue(&self, twin: &str) -> Option<Issue> {
        let link = self
            .external
            .node
            .store()
            .read(|db| twins::get(db, twin))
            .expect("read");
        link.map(|t| {
            self.external
                .tracker
                .get(&t.local_key)
                .expect("get")
                .expect("issue exists")
        })
    }

    pub fn internal_issue(&self, key: &str) -> Issue {
        self.internal
            .tracker
            .get(key)
            .expect("get")
            .expect("issue exists")
    }
}

/// A user edit on a node's tracker.
pub fn edit(node: &ReferenceNode, key: &str, change: impl FnOnce(&mut Issue)) {
    let mut issue = node.tracker.get(key).expect("get").expect("issue exists");
    change(&mut issue);
    node.tracker.update(&issue, Origin::User).expect("update");
}

/// The sync errors of a node.
pub fn failed(node: &Node) -> Vec<Event> {
    node.store()
        .read(|db| events::in_state(db, "failed"))
        .expect("read")
}

/// Events of a node that are not done yet (pending or failed).
pub fn unfinished(node: &Node) -> Vec<Event> {
    node.store()
        .read(|db| events::all(db))
        .expect("read")
        .into_iter()
        .filter(|e| matches!(e.state, State::Pending | State::Failed))
        .collect()
}

/// The table at the end of the seed page:
///
/// | Source                          | Target                                  |
/// |---------------------------------|-----------------------------------------|
/// | Exalate issue, status Open      |                                         |
/// |                                 | Create issue, status Open               |
/// | Change status to In Progress    |                                         |
/// |                                 | Sync back issue, status Open            |
/// | Sync back processed: Open again |                                         |
/// |                                 | Status In Progress (message of step 3)  |
///
/// replayed step by step with Internal (the source) and External (the target) running
/// these processors. Returns the final status on (Internal, External).
pub fn replay_conflict_table(internal: Side, external: Side) -> (String, String) {
    let pair = Pair::new(internal, external);
    let (key, twin) = pair.create_and_exalate(issue("Printer on fire"));
    let (int, ext) = (&pair.internal.node, &pair.external.node);

    // Source: exalate, status Open.
    assert_eq!(int.process_ready(10).unwrap().done, 1);
    pair.network.deliver().unwrap();
    // Target: create the issue with status Open, and queue the sync back.
    assert_eq!(ext.process_ready(10).unwrap().done, 1);
    // Source: change status to In Progress, and send it.
    edit(&pair.internal, &key, |i| i.status = "In Progress".into());
    int.poll_changes().unwrap();
    assert_eq!(int.process_ready(10).unwrap().done, 1);
    // Target: sync back the issue, status Open.
    assert_eq!(ext.process_ready(10).unwrap().done, 1);
    pair.network.deliver().unwrap();
    // Source: the sync back is processed. Target: the message of step 3 arrives.
    assert_eq!(int.process_ready(10).unwrap().done, 1);
    assert_eq!(ext.process_ready(10).unwrap().done, 1);
    // Nothing else happens afterwards.
    pair.run();

    let source = pair.internal_issue(&key).status;
    let target = pair.external_issue(&twin).unwrap().status;
    (source, target)
}

/// The context of External's incoming processor on the first sync of a twin, for tests
/// that call a processor directly.
pub fn first_sync_context() -> SyncContext {
    SyncContext {
        connection: CONNECTION.into(),
        local_instance: "External".into(),
        remote_instance: "Internal".into(),
        direction: Direction::Bidirectional,
        first_sync: true,
        event_id: "Internal-1".into(),
        reason: SyncReason::ManualExalate,
        hop: 0,
        now: "2026-01-01T00:00:00Z".into(),
        origin: twinsync::model::Origin::Remote,
    }
}

/// A new issue with a summary and status Open.
pub fn issue(summary: &str) -> Issue {
    Issue {
        summary: summary.into(),
        status: "Open".into(),
        ..Issue::default()
    }
}

/// A new issue that tells `scripted` what to do.
pub fn scripted_issue(summary: &str, behaviour: &str) -> Issue {
    let mut issue = issue(summary);
    issue.set_custom_field(BEHAVIOUR, FieldValue::Text(behaviour.into()));
    issue
}
