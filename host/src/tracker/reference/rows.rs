//! What the reference tracker does, whatever stores it: the checks, the key and id
//! assignment, the conditional update and the idempotent sync write. Each storage gives
//! access to its rows inside one write transaction ([`Rows`]); everything else is here,
//! once, so that the SQLite and the PostgreSQL trackers cannot drift apart.

use crate::model::Issue;
use crate::tracker::{Origin, TrackerError};

/// The rows of one write transaction of a reference tracker.
pub trait Rows {
    /// The stored issue `key`.
    fn load(&mut self, key: &str) -> Result<Option<Issue>, TrackerError>;
    /// Store a new issue under `key`.
    fn insert(&mut self, key: &str, issue: &Issue) -> Result<(), TrackerError>;
    /// Store `issue` over the issue `key`.
    fn replace(&mut self, key: &str, issue: &Issue) -> Result<(), TrackerError>;
    /// The next number of the counter `name` (issue ids, comment ids, ...), from 1.
    fn next(&mut self, name: &str) -> Result<i64, TrackerError>;
    /// The next issue number of `project`, from 1: keys are `PROJECT-n`.
    fn next_number(&mut self, project: &str) -> Result<i64, TrackerError>;
    /// Append to the change feed.
    fn record_change(&mut self, key: &str, sync_event: Option<&str>) -> Result<(), TrackerError>;
    /// The issue the sync event `event_id` wrote, if it wrote one already.
    fn written_by(&mut self, event_id: &str) -> Result<Option<String>, TrackerError>;
    /// Remember that the sync event `event_id` wrote the issue `key`.
    fn record_sync_write(&mut self, event_id: &str, key: &str) -> Result<(), TrackerError>;
}

/// A write for `origin` in `rows`: unless `origin` is a sync event that wrote already (then
/// the issue as it is now, and nothing written), `write` runs and the sync write is kept.
pub(super) fn write<R: Rows>(
    rows: &mut R,
    origin: Origin<'_>,
    write: impl FnOnce(&mut R) -> Result<Issue, TrackerError>,
) -> Result<Issue, TrackerError> {
    if let Origin::Sync { event_id } = origin
        && let Some(key) = rows.written_by(event_id)?
    {
        return rows.load(&key)?.ok_or(TrackerError::NotFound(key));
    }
    let issue = write(rows)?;
    if let Origin::Sync { event_id } = origin {
        rows.record_sync_write(event_id, issue.key.as_deref().unwrap_or_default())?;
    }
    Ok(issue)
}

/// Create `issue`: the tracker gives it its key, id, times and comment ids.
pub(super) fn create(
    rows: &mut impl Rows,
    issue: &Issue,
    default_project: &str,
    origin: Origin<'_>,
    now: &str,
) -> Result<Issue, TrackerError> {
    let mut issue = issue.clone();
    if issue.project.is_empty() {
        issue.project = default_project.to_string();
    }
    let key = format!("{}-{}", issue.project, rows.next_number(&issue.project)?);
    issue.key = Some(key.clone());
    issue.id = Some(rows.next("issue")?.to_string());
    issue.created = Some(now.to_string());
    issue.updated = Some(now.to_string());
    if issue.status.is_empty() {
        issue.status = "Open".into();
    }
    if issue.issue_type.is_empty() {
        issue.issue_type = "Task".into();
    }
    assign_ids(rows, &mut issue, &Issue::default(), now)?;
    rows.insert(&key, &issue)?;
    rows.record_change(&key, sync_event(origin))?;
    Ok(issue)
}

/// Write `issue` over the stored issue of its key, unless the stored issue is not `seen`.
/// Runs in the write's transaction: nobody can write in between.
pub(super) fn update(
    rows: &mut impl Rows,
    issue: &Issue,
    origin: Origin<'_>,
    seen: Option<&Issue>,
    now: &str,
) -> Result<Issue, TrackerError> {
    let key = key_of(issue)?;
    let stored = rows
        .load(&key)?
        .ok_or_else(|| TrackerError::NotFound(key.clone()))?;
    if seen.is_some_and(|seen| *seen != stored) {
        return Err(TrackerError::Changed(key));
    }
    let mut issue = issue.clone();
    // What identifies the issue is the tracker's, not the writer's.
    issue.id = stored.id.clone();
    issue.created = stored.created.clone();
    issue.updated = stored.updated.clone();
    assign_ids(rows, &mut issue, &stored, now)?;
    if issue == stored {
        return Ok(stored);
    }
    issue.updated = Some(now.to_string());
    rows.replace(&key, &issue)?;
    rows.record_change(&key, sync_event(origin))?;
    Ok(issue)
}

/// What the reference tracker refuses to store.
pub(super) fn check(issue: &Issue) -> Result<(), TrackerError> {
    if issue.summary.trim().is_empty() {
        return Err(TrackerError::Rejected("the summary is empty".into()));
    }
    let mut names: Vec<&str> = issue
        .custom_fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(TrackerError::Rejected(format!(
            "custom field `{}` appears twice",
            pair[0]
        )));
    }
    Ok(())
}

/// The key of an issue to update.
pub(super) fn key_of(issue: &Issue) -> Result<String, TrackerError> {
    issue
        .key
        .clone()
        .ok_or_else(|| TrackerError::Rejected("an issue to update needs a key".into()))
}

/// Give new comments and attachments (no id, or an id this issue does not have) an id, and
/// new comments a creation time if they have none.
fn assign_ids(
    rows: &mut impl Rows,
    issue: &mut Issue,
    stored: &Issue,
    now: &str,
) -> Result<(), TrackerError> {
    for comment in &mut issue.comments {
        if comment.id.is_empty() || !stored.comments.iter().any(|c| c.id == comment.id) {
            comment.id = format!("c{}", rows.next("comment")?);
        }
        if comment.created.is_empty() {
            comment.created = now.to_string();
        }
    }
    for attachment in &mut issue.attachments {
        if attachment.id.is_empty() || !stored.attachments.iter().any(|a| a.id == attachment.id) {
            attachment.id = format!("a{}", rows.next("attachment")?);
        }
    }
    Ok(())
}

fn sync_event(origin: Origin<'_>) -> Option<&str> {
    match origin {
        Origin::Sync { event_id } => Some(event_id),
        Origin::User => None,
    }
}

pub(super) fn encode(issue: &Issue) -> String {
    serde_json::to_string(issue).expect("an issue always encodes to JSON")
}

pub(super) fn decode(body: &str) -> Result<Issue, TrackerError> {
    serde_json::from_str(body)
        .map_err(|e| TrackerError::Unavailable(format!("stored issue is corrupt: {e}")))
}
