//! Wiring a node on the reference tracker, as the demo, the tests and the benchmarks do.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::clock::Clock;
use crate::runtime::Runtime;
use crate::store::NodeStore;
use crate::sync::{Connection, Node};
use crate::tracker::ReferenceTracker;

/// A node and its reference tracker, both in SQLite files under one directory.
pub struct ReferenceNode {
    pub node: Arc<Node>,
    pub tracker: Arc<ReferenceTracker>,
}

/// Open (or create) `dir/tracker.db` and `dir/twinsync.db` and build a node on them. New
/// issues get keys `PROJECT-n`.
pub fn reference_node(
    dir: &Path,
    instance: &str,
    project: &str,
    runtime: Arc<Runtime>,
    connections: Vec<Connection>,
    clock: Arc<dyn Clock>,
) -> Result<ReferenceNode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tracker = Arc::new(ReferenceTracker::open(
        &dir.join("tracker.db"),
        project,
        clock.clone(),
    )?);
    let store = Arc::new(NodeStore::open(&dir.join("twinsync.db"))?);
    let node = Node::new(
        instance,
        tracker.clone(),
        store,
        runtime,
        connections,
        clock,
    )?;
    Ok(ReferenceNode {
        node: Arc::new(node),
        tracker,
    })
}
