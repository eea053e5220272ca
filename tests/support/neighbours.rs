//! A node with a noisy neighbour: connection `noisy`'s processor (`scripted`) misbehaves on
//! every event, connection `quiet`'s is `mirror`. Measures the quiet connection's rate
//! through the node's worker pool (the one `twinsync serve` runs), alone and beside the
//! noisy one; used by `tests/noisy_neighbour.rs` and `cargo bench --bench noisy_neighbour`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use twinsync::model::FieldValue;
use twinsync::runtime::Limits;
use twinsync::setup::reference_node;
use twinsync::store::events::{self, State};
use twinsync::sync::{Connection, Flow, Pipeline};
use twinsync::tracker::{Origin, Tracker};
use twinsync::transport::local::LocalNetwork;

use crate::{BEHAVIOUR, issue, processor, runtime};

pub const QUIET_EVENTS: usize = 300;
/// Each neighbour event costs about what an ordinary one does (an instance, a call, a sync
/// error written), so 20 of them beside 300 quiet ones bound the ratio near 94 % even if
/// sleeping cost nothing more.
pub const NOISY_EVENTS: usize = 20;
pub const WORKERS: usize = 2;

pub struct Figures {
    pub quiet_per_second: f64,
    pub noisy_failed: Vec<String>,
}

/// Queue `QUIET_EVENTS` quiet and `noisy` noisy incoming events on External, then run its
/// worker pool until every quiet event is done: the quiet events per second, and the error
/// kinds of the noisy events that finished by then.
pub fn quiet_rate(noisy: usize, behaviour: &str, noisy_limits: Limits) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(twinsync::clock::ManualClock::starting_at(1_767_225_600_000));
    let connection = |name: &str, remote: &str, incoming: &str, limits: Limits| {
        Connection::new(
            name,
            remote,
            Flow::Bidirectional,
            Some(processor(incoming)),
            Some(processor("mirror")),
            limits,
        )
        .unwrap()
    };
    let internal = reference_node(
        &dir.path().join("internal"),
        "Internal",
        "INT",
        runtime(),
        vec![
            connection("noisy", "External", "mirror", Limits::default()),
            connection("quiet", "External", "mirror", Limits::default()),
        ],
        clock.clone(),
    )
    .unwrap();
    let external = reference_node(
        &dir.path().join("external"),
        "External",
        "EXT",
        runtime(),
        vec![
            connection("noisy", "Internal", "scripted", noisy_limits),
            connection("quiet", "Internal", "mirror", Limits::default()),
        ],
        clock.clone(),
    )
    .unwrap();
    // The noisy issues first: the oldest events are the noisy ones.
    for (connection, count) in [("noisy", noisy), ("quiet", QUIET_EVENTS)] {
        for i in 0..count {
            let mut new = issue(&format!("{connection} {i}"));
            if connection == "noisy" {
                new.set_custom_field(BEHAVIOUR, FieldValue::Text(behaviour.into()));
            }
            let key = internal
                .tracker
                .create(&new, Origin::User)
                .unwrap()
                .key
                .unwrap();
            internal.node.exalate(connection, &key).unwrap();
        }
    }
    while internal.node.process_ready(256).unwrap().total() > 0 {}
    let network = LocalNetwork::new(vec![internal.node.clone(), external.node.clone()]);
    while network.deliver().unwrap() > 0 {}

    let quiet_pending = || {
        external
            .node
            .store()
            .read(|db| events::in_state(db, "pending"))
            .unwrap()
            .iter()
            .filter(|e| e.connection == "quiet")
            .count()
    };
    assert_eq!(quiet_pending(), QUIET_EVENTS);
    let mut pipeline = Pipeline::start(external.node.clone(), WORKERS).unwrap();
    let started = Instant::now();
    while quiet_pending() > 0 {
        pipeline.step(Duration::from_millis(10)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(120), "stuck");
    }
    let took = started.elapsed();
    drop(pipeline);
    let failed = external
        .node
        .store()
        .read(|db| events::in_state(db, "failed"))
        .unwrap();
    assert!(failed.iter().all(|e| e.connection == "noisy"), "{failed:?}");
    assert!(
        external
            .node
            .store()
            .read(|db| events::in_state(db, "done"))
            .unwrap()
            .iter()
            .filter(|e| e.connection == "quiet")
            .all(|e| e.state == State::Done)
    );
    Figures {
        quiet_per_second: QUIET_EVENTS as f64 / took.as_secs_f64(),
        noisy_failed: failed.into_iter().filter_map(|e| e.error_kind).collect(),
    }
}

/// Best quiet rate of `runs` runs alone and of `runs` runs beside the noisy neighbour, and
/// the noisy events' error kinds.
pub fn compare(behaviour: &str, limits: Limits, runs: usize) -> (f64, f64, Vec<String>) {
    // One measurement at a time: the tests of this file would otherwise load each other.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut alone: f64 = 0.0;
    let mut beside: f64 = 0.0;
    let mut kinds = Vec::new();
    for _ in 0..runs {
        alone = alone.max(quiet_rate(0, behaviour, limits.clone()).quiet_per_second);
        let noisy = quiet_rate(NOISY_EVENTS, behaviour, limits.clone());
        beside = beside.max(noisy.quiet_per_second);
        kinds.extend(noisy.noisy_failed);
    }
    (alone, beside, kinds)
}
