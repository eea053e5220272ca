//! The tracker a tenant's spec names: the reference tracker in its directory, or a project
//! of a Redmine (connected, and its URL, key, project and fields checked, when the tenant
//! starts: a wrong setting is the tenant's error at once, not every event's).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::spec::TrackerSpec;
use crate::clock::Clock;
use crate::tracker::{RedmineTracker, ReferenceTracker, Tracker};

/// Open the tracker of a tenant whose directory is `dir`.
pub fn open(spec: &TrackerSpec, dir: &Path, clock: Arc<dyn Clock>) -> Result<Arc<dyn Tracker>> {
    Ok(match spec {
        TrackerSpec::Reference { project } => Arc::new(ReferenceTracker::open(
            &dir.join("tracker.db"),
            project,
            clock,
        )?),
        TrackerSpec::Redmine(redmine) => Arc::new(
            RedmineTracker::connect(&redmine.settings())
                .context("cannot use the tenant's Redmine")?,
        ),
    })
}
