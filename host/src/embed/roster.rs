//! The tenants as one of the host's loops sees them: read again when tenants came or went,
//! but at most every [`REREAD`], so that adding 10,000 tenants one after the other does
//! not make each loop read the whole list 10,000 times.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use super::tenant::Running;

/// The least time between two readings of the tenants.
pub(super) const REREAD: Duration = Duration::from_millis(50);

#[derive(Default)]
pub(super) struct Roster {
    generation: Option<u64>,
    read_at: Option<Instant>,
    pub(super) tenants: Vec<Arc<Running>>,
    pub(super) by_name: HashMap<String, Arc<Running>>,
}

/// What [`Roster::refresh`] did.
#[derive(PartialEq, Eq)]
pub(super) enum Refresh {
    /// The tenants were read again.
    Read,
    /// Nothing changed.
    Same,
    /// They changed, and were read too recently: call again within [`REREAD`].
    Later,
}

impl Roster {
    /// Whether tenants came or went since it was read: a name it does not have, or has
    /// stopped, may be a tenant added (again) since. Such a name must be carried to the
    /// next reading, not dropped: its bell does not ring again until it is taken.
    pub(super) fn behind(&self, shared: &Shared) -> bool {
        self.generation != Some(shared.generation.load(Ordering::Acquire))
    }

    pub(super) fn refresh(&mut self, shared: &Shared) -> Refresh {
        let current = shared.generation.load(Ordering::Acquire);
        if self.generation == Some(current) {
            return Refresh::Same;
        }
        if self.read_at.is_some_and(|at| at.elapsed() < REREAD) {
            return Refresh::Later;
        }
        self.generation = Some(current);
        self.read_at = Some(Instant::now());
        self.tenants = shared.running();
        self.by_name = self
            .tenants
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        Refresh::Read
    }
}
