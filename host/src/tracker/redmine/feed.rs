//! The change feed. Core Redmine has no webhooks, so twinsync polls the project's issues by
//! `updated_on`, which has two traps:
//!
//! - it has one-second resolution: two changes within a second show the same time;
//! - a change can become visible after a later one (its transaction commits later), and
//!   Redmine's `updated_on>=T` means "after T minus one second".
//!
//! So the cursor is not a time alone. It holds a time `from` some seconds (`LOOKBACK`) before
//! the newest change seen, and for every issue changed since: its `updated_on` and its last
//! journal id. Each poll lists the issues changed since `from`. An issue whose `updated_on`
//! the cursor has, and whose second was long over when it was read (`settled`), did not
//! change; any other is read with its journals, and it changed if its time or last journal
//! differ from the cursor's. Every change of an issue makes a journal, which tells apart two
//! changes in the same second. Nothing seen is reported twice, across restarts too (the
//! cursor is stored by the node), and a change that shows up late is still found as long as
//! it is less than `LOOKBACK` late.
//!
//! A change is twinsync's own (`by_sync`) when every journal since the last one seen was
//! written by a sync event: it changes twinsync's event field, or its note's footer names an
//! event (see `write`). An issue created by a sync event has the event field from the start.
//! Journals of the API user count only with those marks, so an operator's edits through
//! twinsync's admin API are synced like anybody's.
//!
//! Redmine does not move `updated_on` when a comment is edited: such edits are not seen.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::RedmineTracker;
use super::footer;
use super::json::{Journal, Page, RedmineIssue};
use super::mapping::{field_text, key_of};
use crate::clock::rfc3339;
use crate::tracker::{Change, ChangeBatch, TrackerError};

/// How late a change may become visible and still be found.
const LOOKBACK: Duration = Duration::from_secs(10);
/// How long after its second an `updated_on` is trusted to carry no further change.
const SETTLE: Duration = Duration::from_secs(3);
/// Redmine's largest page.
const PAGE: usize = 100;

/// Where the feed is: see the module's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    from: String,
    seen: BTreeMap<u64, Seen>,
}

/// What the feed knows of an issue: `updated_on`, last journal id, settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Seen(String, u64, bool);

/// The cursor as the last poll left it. The node stores a cursor only with changes, so
/// without this, what a quiet poll learnt (issues now settled) would be learnt again on
/// every poll.
#[derive(Default)]
pub(super) struct Memory {
    given: Option<String>,
    cursor: Option<Cursor>,
}

impl RedmineTracker {
    /// Changes after `cursor`, at most `limit`.
    pub(super) fn poll(
        &self,
        given: Option<&str>,
        limit: usize,
    ) -> Result<ChangeBatch, TrackerError> {
        let now = SystemTime::now();
        let remembered = {
            let memory = super::lock(&self.feed);
            (memory.given.as_deref() == given)
                .then(|| memory.cursor.clone())
                .flatten()
        };
        let mut cursor = match (remembered, given) {
            (Some(cursor), _) => cursor,
            (None, Some(text)) => serde_json::from_str(text).map_err(|e| {
                TrackerError::Rejected(format!("unreadable Redmine change cursor ({e}): {text}"))
            })?,
            // No cursor yet: what changed before the node first looked is not news.
            (None, None) => Cursor {
                from: rfc3339(now - LOOKBACK),
                seen: BTreeMap::new(),
            },
        };
        let start = cursor.from.clone();
        let mut changes = Vec::new();
        // Issues listed later than these may have been skipped (or not read): `from` must
        // not pass them.
        let mut hold_at: Option<String> = None;
        let mut offset = 0;
        'pages: loop {
            let page: Page<RedmineIssue> = self.client.get(
                "/issues.json",
                &[
                    ("project_id", self.project.id.to_string()),
                    ("status_id", "*".into()),
                    ("updated_on", format!(">={start}")),
                    ("sort", "updated_on,id".into()),
                    ("limit", PAGE.to_string()),
                    ("offset", offset.to_string()),
                ],
            )?;
            for listed in &page.items {
                if changes.len() >= limit {
                    hold_at = min_time(hold_at, &listed.updated_on);
                    break 'pages;
                }
                if cursor
                    .seen
                    .get(&listed.id)
                    .is_some_and(|s| s.0 == listed.updated_on && s.2)
                {
                    continue;
                }
                // Deleted since it was listed: nothing to sync.
                let Some(issue) = self.fetch(listed.id, "journals")? else {
                    continue;
                };
                let last_journal = issue.journals.iter().map(|j| j.id).max().unwrap_or(0);
                let previous = cursor.seen.get(&issue.id).cloned();
                let settled = time(&issue.updated_on) + Duration::from_secs(1) + SETTLE <= now;
                let seen = Seen(issue.updated_on.clone(), last_journal, settled);
                if previous
                    .as_ref()
                    .is_none_or(|p| p.0 != seen.0 || p.1 != seen.1)
                {
                    changes.push(Change {
                        key: key_of(issue.id),
                        by_sync: self.by_sync(&issue, previous.as_ref(), &start),
                    });
                }
                cursor.seen.insert(issue.id, seen);
            }
            offset += page.items.len();
            if page.items.is_empty() || offset >= page.total_count {
                break;
            }
            // Offsets shift when an issue listed earlier changes meanwhile: one could slip
            // between pages, but not before the end of this page.
            if let Some(last) = page.items.last() {
                hold_at = min_time(hold_at, &last.updated_on);
            }
        }
        advance(&mut cursor, hold_at);
        let returned = if changes.is_empty() {
            given.map(str::to_string)
        } else {
            Some(serde_json::to_string(&cursor).expect("a cursor always encodes"))
        };
        *super::lock(&self.feed) = Memory {
            given: returned.clone(),
            cursor: Some(cursor),
        };
        Ok(ChangeBatch {
            changes,
            cursor: returned,
        })
    }

    /// Whether what changed in `issue` since `previous` was all written by sync events.
    fn by_sync(&self, issue: &RedmineIssue, previous: Option<&Seen>, from: &str) -> bool {
        let window = time(from) - Duration::from_secs(1);
        let journals: Vec<&Journal> = issue
            .journals
            .iter()
            .filter(|j| match previous {
                Some(seen) => j.id > seen.1,
                None => time(&j.created_on) >= window,
            })
            .collect();
        let created = previous.is_none() && time(&issue.created_on) >= window;
        if journals.is_empty() && !created {
            // Nothing to attribute the change to: better synced than lost.
            return false;
        }
        (!created || self.created_by_sync(issue))
            && journals.iter().all(|j| self.journal_by_sync(j))
    }

    fn journal_by_sync(&self, journal: &Journal) -> bool {
        let field = self.event_field.to_string();
        let sets_event = journal
            .details
            .iter()
            .any(|d| d.property == "cf" && d.name == field);
        let mine = journal.user.as_ref().is_some_and(|u| u.id == self.me.id);
        let signed = || {
            journal
                .notes
                .as_deref()
                .and_then(|n| footer::split(n).1)
                .is_some_and(|f| f.event.is_some())
        };
        sets_event || (mine && signed())
    }

    /// Whether the issue had twinsync's event field when it was created: the old value in
    /// the first journal that changed it, or else its value now.
    fn created_by_sync(&self, issue: &RedmineIssue) -> bool {
        let field = self.event_field.to_string();
        let first_change = issue
            .journals
            .iter()
            .flat_map(|j| &j.details)
            .find(|d| d.property == "cf" && d.name == field);
        match first_change {
            Some(detail) => detail.old_value.as_deref().is_some_and(|v| !v.is_empty()),
            None => field_text(issue, self.event_field).is_some(),
        }
    }
}

/// Move `from` up to `LOOKBACK` before the newest change seen (but not past `hold_at`), and
/// forget issues that will not be listed again.
fn advance(cursor: &mut Cursor, hold_at: Option<String>) {
    let Some(newest) = cursor.seen.values().map(|s| time(&s.0)).max() else {
        return;
    };
    let mut from = newest.checked_sub(LOOKBACK).unwrap_or(newest);
    if let Some(hold) = hold_at {
        from = from.min(time(&hold));
    }
    if from > time(&cursor.from) {
        cursor.from = rfc3339(from);
    }
    // Redmine lists from one second before `from`.
    let floor = time(&cursor.from) - Duration::from_secs(1);
    cursor.seen.retain(|_, s| time(&s.0) >= floor);
}

fn time(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn min_time(held: Option<String>, candidate: &str) -> Option<String> {
    match held {
        Some(held) if time(&held) <= time(candidate) => Some(held),
        _ => Some(candidate.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(updated: &str) -> Seen {
        Seen(updated.into(), 1, true)
    }

    #[test]
    fn from_trails_the_newest_change_and_old_issues_are_forgotten() {
        let mut cursor = Cursor {
            from: "2026-11-27T10:00:00Z".into(),
            seen: BTreeMap::from([
                (1, seen("2026-11-27T10:00:05Z")),
                (2, seen("2026-11-27T10:00:30Z")),
                (3, seen("2026-11-27T10:00:19Z")),
            ]),
        };
        advance(&mut cursor, None);
        assert_eq!(cursor.from, "2026-11-27T10:00:20Z");
        // Redmine lists from 10:00:19 on: issue 3 may come again, issue 1 cannot.
        assert_eq!(cursor.seen.keys().copied().collect::<Vec<_>>(), vec![2, 3]);

        advance(&mut cursor, Some("2026-11-27T10:00:12Z".into()));
        assert_eq!(cursor.from, "2026-11-27T10:00:20Z", "from never goes back");
    }

    #[test]
    fn from_waits_for_issues_that_may_have_been_skipped() {
        let mut cursor = Cursor {
            from: "2026-11-27T10:00:00Z".into(),
            seen: BTreeMap::from([(1, seen("2026-11-27T10:01:00Z"))]),
        };
        advance(&mut cursor, Some("2026-11-27T10:00:30Z".into()));
        assert_eq!(cursor.from, "2026-11-27T10:00:30Z");
    }
}
