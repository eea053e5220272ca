//! The seam through which twinsync embeds in a tracker. A tracker stores issues, tells which
//! ones changed, and accepts writes from the sync engine idempotently.

mod query;
mod redmine;
mod reference;

pub use query::Query;
pub use redmine::{DEFAULT_EVENT_FIELD, RedmineSettings, RedmineTracker};
pub use reference::{PostgresTracker, ReferenceTracker};

use crate::model::Issue;

/// Who is writing to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    /// A person or an integration: the change syncs to the other side.
    User,
    /// twinsync, applying the incoming event `event_id`. Such a change does not sync back by
    /// itself, and writing twice with the same event id changes the tracker once.
    Sync { event_id: &'a str },
}

/// One write of [`Tracker::update_many_if`]: the arguments of one [`Tracker::update_if`].
#[derive(Debug, Clone, Copy)]
pub struct UpdateIf<'a> {
    pub issue: &'a Issue,
    pub origin: Origin<'a>,
    pub seen: Option<&'a Issue>,
}

/// One change of one issue in the tracker's change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// Written by twinsync itself (`Origin::Sync`): not a local change to send.
    pub by_sync: bool,
}

/// A page of the change feed and where to continue from.
#[derive(Debug, Clone, Default)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    /// Pass this to the next `changes` call. Opaque to the caller.
    pub cursor: Option<String>,
}

/// Why a tracker call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackerError {
    /// Worth retrying: the tracker is down, busy or unreachable.
    #[error("tracker unavailable: {0}")]
    Unavailable(String),
    /// Not worth retrying as it is: the tracker refuses this write.
    #[error("tracker rejected the change: {0}")]
    Rejected(String),
    #[error("issue {0} does not exist in the tracker")]
    NotFound(String),
    /// The issue is not the one the writer read: someone wrote it in between. Read it
    /// again and decide again.
    #[error("issue {0} changed since it was read")]
    Changed(String),
}

impl TrackerError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TrackerError::Unavailable(_) | TrackerError::Changed(_)
        )
    }
}

/// A tracker twinsync can keep in sync.
pub trait Tracker: Send + Sync {
    /// The issue with this key, if there is one.
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError>;

    /// Create an issue. The tracker assigns key, id, times and comment ids, and returns the
    /// issue as stored. With `Origin::Sync`, a second call with the same event id returns
    /// the issue the first call created.
    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError>;

    /// Store `issue` (found by its key) as given: comments without an id, or with an id the
    /// tracker does not know, are added. Returns the issue as stored. With `Origin::Sync`,
    /// a second call with the same event id changes nothing.
    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError>;

    /// [`Tracker::update`], only if the tracker's issue is still `seen` (the issue as the
    /// writer read it before deciding what to write); otherwise `TrackerError::Changed` and
    /// nothing is written, so that a person's edit made meanwhile is never overwritten by a
    /// decision that did not see it. A repeated `Origin::Sync` write of an event already
    /// applied returns the issue as `update` does, whatever `seen` says.
    ///
    /// The default reads the issue and compares before writing, which leaves a short
    /// window; trackers that can compare and write atomically override it.
    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        if let Some(seen) = seen
            && let Some(key) = &issue.key
            && self.get(key)?.as_ref() != Some(seen)
        {
            return Err(TrackerError::Changed(key.clone()));
        }
        self.update(issue, origin)
    }

    /// [`Tracker::update_if`] for several issues, one outcome per write, in order. Each write
    /// stands alone: one that fails (`Changed` say) leaves the others as they are. A node
    /// makes the writes of the incoming events a worker prepared together in one call: a
    /// tracker that can (the reference tracker) makes them in one transaction, which costs
    /// far less than one each. The default makes them one by one.
    fn update_many_if(&self, writes: &[UpdateIf<'_>]) -> Vec<Result<Issue, TrackerError>> {
        writes
            .iter()
            .map(|write| self.update_if(write.issue, write.origin, write.seen))
            .collect()
    }

    /// Changes after `cursor` (`None`: from the beginning), oldest first, at most `limit`.
    /// A node that polls its tracker calls this every 20 ms while changes keep coming and it
    /// has nothing else to do, every 100 ms once the tracker is quiet: a tracker whose feed
    /// is costly to read keeps its own pace (the Redmine tracker's `poll_interval`).
    fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<ChangeBatch, TrackerError>;

    /// Keys of the issues a query selects, for bulk exalate.
    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError>;
}
