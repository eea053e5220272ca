//! Concurrent edits converge. A deterministic simulation drives two nodes (and a chain of
//! three) from a seed: random edits on every side, messages delayed, reordered, duplicated
//! and lost, links down, nodes restarting, and nodes crashing at every step of an event
//! (after the processor, before and after the tracker write, before and after the commit),
//! aimed most often at the window between the tracker write and the node's commit. After the network heals and
//! the queues drain:
//!
//! - with last-writer-wins, every synced field is equal on every node, and every comment is
//!   on every node exactly once;
//! - with hold-for-review, every field is equal or has a conflict recorded, while operators
//!   settle conflicts at random, keeping either side's value;
//! - the events processed stay within a fixed multiple of the edits (no sync storms).
//!
//! A failing seed is printed; `TWINSYNC_SIM_SEED=N cargo test -p twinsync --test simulation`
//! plays that seed alone, and `TWINSYNC_SIM_SEEDS=N` plays N seeds per test instead of the
//! default 500, 300 and 300 (a tenth of those with the nodes' state in PostgreSQL,
//! `TWINSYNC_TEST_STORE=postgres`).

use std::collections::BTreeMap;

use twinsync::runtime::ConflictPolicy;
use twinsync::sync::CrashPoint;
use twinsync_tests::sim::{FIELDS, Sim, field};

/// Percent of the simulation's processing steps that crash the node at some point.
const CRASH_PERCENT: u64 = 20;

/// Crashes injected, per point.
type Crashes = BTreeMap<&'static str, usize>;

/// Events processed per edit, at most, after the set-up: each edit makes at most one event
/// on its node and one on each node it travels to, plus retries after lost messages.
const EVENTS_PER_EDIT: usize = 12;

fn seeds(range: std::ops::Range<u64>) -> Vec<u64> {
    if let Ok(seed) = std::env::var("TWINSYNC_SIM_SEED") {
        return vec![seed.parse().expect("TWINSYNC_SIM_SEED is a number")];
    }
    match std::env::var("TWINSYNC_SIM_SEEDS") {
        // More seeds per test, for a longer run (from the same first seed).
        Ok(n) => {
            let n: u64 = n.parse().expect("TWINSYNC_SIM_SEEDS is a number");
            (range.start..range.start + n).collect()
        }
        // On PostgreSQL (`TWINSYNC_TEST_STORE=postgres`) every node of every seed makes a
        // database: a tenth of the seeds, the same engine through the other store.
        Err(_) if twinsync_tests::store::on_postgres() => {
            let n = (range.end - range.start) / 10;
            (range.start..range.start + n).collect()
        }
        Err(_) => range.collect(),
    }
}

/// Play one seed; returns what is wrong, if anything.
fn play(
    seed: u64,
    nodes: usize,
    policy: ConflictPolicy,
    crashes: &mut Crashes,
    resolved: &mut usize,
) -> Result<(), String> {
    let mut sim = Sim::with_crashes(seed, nodes, 2, policy, CRASH_PERCENT);
    sim.play(60);
    for (point, n) in &sim.crashes {
        *crashes.entry(point).or_default() += n;
    }
    sim.settle();
    if policy == ConflictPolicy::HoldForReview {
        let left = sim.resolve_all();
        if left > 0 {
            return Err(format!(
                "{left} conflicts still open after operators settled them"
            ));
        }
    }
    *resolved += sim.resolved;
    check(&sim, nodes, policy)
}

/// What is wrong once a simulation settled, if anything.
fn check(sim: &Sim, nodes: usize, policy: ConflictPolicy) -> Result<(), String> {
    if std::env::var("TWINSYNC_SIM_TRACE").is_ok() {
        eprintln!("{}", sim.trace());
    }
    let errors = sim.sync_errors();
    if !errors.is_empty() {
        return Err(format!("sync errors: {errors:?}"));
    }
    // Nothing corrupts the nodes' records here: the sides never disagree on what they
    // exchanged.
    let disagreements = sim.notes_containing("applied something else");
    if !disagreements.is_empty() {
        return Err(format!(
            "the nodes disagree on what was exchanged: {disagreements:?}"
        ));
    }
    if sim.events > EVENTS_PER_EDIT * sim.edits.max(1) {
        return Err(format!(
            "a sync storm: {} events for {} edits",
            sim.events, sim.edits
        ));
    }
    let conflicts = sim.open_conflicts();
    for group in sim.groups() {
        if group.len() != nodes {
            return Err(format!("an issue did not reach every node: {group:?}"));
        }
        for name in FIELDS {
            let values: BTreeMap<&str, String> = group
                .iter()
                .map(|(i, issue)| (sim.node_name(*i), field(issue, name)))
                .collect();
            let equal = values.values().all(|v| *v == values[sim.node_name(0)]);
            let held = group.iter().any(|(i, issue)| {
                let key = issue.key.clone().unwrap_or_default();
                conflicts
                    .iter()
                    .any(|(n, k, f)| n == i && *k == key && f == name)
            });
            match policy {
                ConflictPolicy::HoldForReview if !equal && !held => {
                    return Err(format!(
                        "{name} differs and no conflict was recorded: {values:?}"
                    ));
                }
                ConflictPolicy::HoldForReview => {}
                _ if !equal => return Err(format!("{name} differs: {values:?}")),
                _ => {}
            }
        }
        // Comments: the same set everywhere, none twice.
        let mut sets = Vec::new();
        for (i, issue) in &group {
            let mut bodies: Vec<&str> = issue.comments.iter().map(|c| c.body.as_str()).collect();
            bodies.sort();
            let count = bodies.len();
            bodies.dedup();
            if bodies.len() != count {
                return Err(format!(
                    "a comment is twice on {}: {bodies:?}",
                    sim.node_name(*i)
                ));
            }
            sets.push(bodies.join(" | "));
        }
        if sets.iter().any(|s| *s != sets[0]) {
            return Err(format!("comments differ between nodes: {sets:#?}"));
        }
    }
    Ok(())
}

fn run(range: std::ops::Range<u64>, nodes: usize, policy: ConflictPolicy) {
    let mut failures = Vec::new();
    let played = seeds(range);
    let mut crashes = Crashes::new();
    let mut resolved = 0;
    for &seed in &played {
        if let Err(what) = play(seed, nodes, policy, &mut crashes, &mut resolved) {
            failures.push(format!("seed {seed}: {what}"));
        }
    }
    eprintln!(
        "{} seeds ({nodes} nodes, {policy:?}); conflicts settled by an operator: {resolved}; crashes injected, by point: {crashes:?}",
        played.len()
    );
    if played.len() > 1 && policy == ConflictPolicy::HoldForReview {
        assert!(
            resolved > 0,
            "no conflict settled in {} seeds",
            played.len()
        );
    }
    if played.len() > 1 {
        for point in CrashPoint::ALL {
            assert!(
                crashes.get(point.name()).copied().unwrap_or(0) > 0,
                "no crash at {} in {} seeds",
                point.name(),
                played.len()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} seed(s) failed ({nodes} nodes, {policy:?}); replay one with TWINSYNC_SIM_SEED=N:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn two_nodes_last_writer_wins_converge() {
    run(0..500, 2, ConflictPolicy::LastWriterWins);
}

#[test]
fn a_chain_of_three_nodes_last_writer_wins_converge() {
    run(1_000..1_300, 3, ConflictPolicy::LastWriterWins);
}

#[test]
fn hold_for_review_converges_or_records_a_conflict() {
    run(2_000..2_300, 2, ConflictPolicy::HoldForReview);
}

/// Along a chain, with operators settling conflicts as they go: a value kept on the middle
/// node reaches both ends.
#[test]
fn hold_for_review_on_a_chain_of_three_nodes_converges_or_records_a_conflict() {
    run(3_000..3_200, 3, ConflictPolicy::HoldForReview);
}
