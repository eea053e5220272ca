//! Writing issues to Redmine, once per sync event.
//!
//! The engine may apply an incoming event twice: it writes to the tracker, then commits to
//! its own database, and a crash in between repeats the event. Redmine has no transaction
//! that spans both, so the record that an event was applied lives in Redmine, written in
//! the same request as the change: twinsync's hidden custom field (`event-field`) holds
//! the id of the sync event that wrote the issue last.
//!
//! - An event is written as a few requests: the field changes with the first new comment,
//!   then one request per further comment (Redmine makes one journal per comment), each
//!   setting the event field to `EVENT (in progress)`. Then the issue is read back and
//!   checked, and only then a last request sets the field to `EVENT`.
//! - A repeated update finds `EVENT` and changes nothing, even if someone changed the issue
//!   since. A repeated create finds its issue by the field (a filter; and the same subject,
//!   by twinsync's user) instead of creating a second one.
//! - After a crash part-way, `EVENT (in progress)` is found and the rest is written: the
//!   comments this event already wrote are recognised by the event in their footer (see
//!   `footer`), and field changes already made compare equal.
//! - The field's changes in the journals, and the event in the notes' footers, are how the
//!   change feed tells twinsync's writes from people's (see `feed`).
//!
//! Redmine silently ignores some values (a status its workflow does not allow, a custom
//! field the tracker does not have): after writing, the issue is read again and every field
//! written is checked, so that a change that did not take is a sync error, not a silent
//! divergence.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::RedmineTracker;
use super::api::Failure;
use super::catalog::{Catalog, by_name, names};
use super::footer::{self, Footer};
use super::json::{FieldDefinition, Named, RedmineIssue};
use super::mapping::{field_text, find_user, key_of, normalise, parse_key, raw_value, same_raw};
use crate::model::{Comment, FieldValue, Issue, User};
use crate::tracker::{Origin, TrackerError};

const IN_PROGRESS: &str = " (in progress)";

/// The event field's value while the writes of `event` are not all done.
fn in_progress(event: &str) -> String {
    format!("{event}{IN_PROGRESS}")
}

/// What one request should change, and what to check afterwards.
#[derive(Default)]
struct Plan {
    attributes: Map<String, Value>,
    custom_fields: Vec<Value>,
    expected: Vec<Expected>,
}

/// A value twinsync wrote, as it must read back.
enum Expected {
    Subject(String),
    Description(String),
    Status(String),
    Priority(String),
    Tracker(String),
    Assignee(Option<u64>),
    Field { id: u64, name: String, value: Value },
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.custom_fields.is_empty()
    }

    /// The request body: the changes, plus the event field when a sync event writes.
    fn body(&self, event_field: u64, marker: Option<&str>) -> Map<String, Value> {
        let mut body = self.attributes.clone();
        let mut fields = self.custom_fields.clone();
        if let Some(marker) = marker {
            fields.push(json!({"id": event_field, "value": marker}));
        }
        if !fields.is_empty() {
            body.insert("custom_fields".into(), Value::Array(fields));
        }
        body
    }
}

impl RedmineTracker {
    pub(super) fn create_issue(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
    ) -> Result<Issue, TrackerError> {
        if !issue.project.is_empty() && issue.project != self.project.identifier {
            return Err(TrackerError::Rejected(format!(
                "this node syncs Redmine project `{}` and cannot create issues in `{}`",
                self.project.identifier, issue.project
            )));
        }
        let event = event_of(origin);
        if let Some(event) = event
            && let Some(id) = self.find_created_by(event, &issue.summary)?
        {
            // A repeat: the first run created the issue. Finish it, never create another.
            return self.update_issue(&with_key(issue, id), origin, None);
        }
        let plan = self.plan(issue, None)?;
        let more = !issue.comments.is_empty();
        // Marked done only once everything is written and read back (see `update_issue`).
        let marker = event.map(in_progress);
        let mut body = plan.body(self.event_field, marker.as_deref());
        body.insert("project_id".into(), json!(self.project.id));
        let answer = self
            .client
            .send("POST", "/issues.json", &json!({ "issue": body }))?
            .ok_or_else(|| {
                TrackerError::Rejected("Redmine created an issue but did not return it".into())
            })?;
        let created: RedmineIssue =
            serde_json::from_value(answer["issue"].clone()).map_err(|e| {
                TrackerError::Rejected(format!("Redmine's answer to a create is unreadable: {e}"))
            })?;
        self.check(&plan, &created)?;
        if more || event.is_some() {
            // The comments become journals, one request each; then the event is marked done.
            return self.update_issue(&with_key(issue, created.id), origin, None);
        }
        Ok(self.read(&created))
    }

    /// Update `issue`; with `seen`, only if Redmine's issue is still the one read (same
    /// `updated_on` and content), else `Changed`. Redmine has no conditional update: what
    /// is written between this read and the PUT (well under a second) is not detected.
    pub(super) fn update_issue(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        let key = issue
            .key
            .as_deref()
            .ok_or_else(|| TrackerError::Rejected("an issue to update needs a key".into()))?;
        let id = parse_key(key)?;
        let current = self
            .fetch(id, "journals,allowed_statuses")?
            .ok_or_else(|| TrackerError::NotFound(key.to_string()))?;
        let event = event_of(origin);
        if event.is_some() && field_text(&current, self.event_field) == event {
            // Applied completely before: a repeat changes nothing.
            return Ok(self.read(&current));
        }
        // A run of this event stopped part-way: what is left may be only the final mark.
        let unfinished = event.is_some_and(|e| {
            field_text(&current, self.event_field) == Some(in_progress(e).as_str())
        });
        // (An unfinished run of this event changed the issue itself: not someone else.)
        if let Some(seen) = seen
            && !unfinished
            && self.read(&current) != *seen
        {
            return Err(TrackerError::Changed(key.to_string()));
        }
        let plan = self.plan(issue, Some(&current))?;
        let stored = self.read(&current).comments;
        let new: Vec<&Comment> = issue
            .comments
            .iter()
            .filter(|c| !stored.iter().any(|s| s.id == c.id))
            .filter(|c| !event.is_some_and(|e| self.wrote_comment(&current, e, c)))
            .collect();
        let edited: Vec<(&Comment, &Comment)> = issue
            .comments
            .iter()
            .filter_map(|c| Some((c, stored.iter().find(|s| s.id == c.id)?)))
            .filter(|(c, s)| normalise(&c.body) != s.body)
            .collect();
        if plan.is_empty() && new.is_empty() && edited.is_empty() && !unfinished {
            return Ok(self.read(&current));
        }
        for (comment, stored) in edited {
            self.edit_comment(&current, comment, stored)?;
        }
        // Redmine makes one journal per request: one request per new comment, the field
        // changes with the first; the last one marks the event done.
        let mut requests: Vec<Map<String, Value>> = new
            .iter()
            .map(|comment| {
                let note = footer::compose(&comment.body, &footer_for(comment, event));
                Map::from_iter([
                    ("notes".to_string(), json!(note)),
                    ("private_notes".to_string(), json!(comment.internal)),
                ])
            })
            .collect();
        if requests.is_empty() {
            requests.push(Map::new());
        }
        let marker = event.map(in_progress);
        for (n, mut body) in requests.into_iter().enumerate() {
            let changes = if n == 0 { &plan } else { &Plan::default() };
            body.extend(changes.body(self.event_field, marker.as_deref()));
            if !body.is_empty() {
                self.put_issue(id, &body)?;
            }
        }
        let mut after = self
            .fetch(id, "journals")?
            .ok_or_else(|| TrackerError::NotFound(key.to_string()))?;
        self.check(&plan, &after)?;
        if let Some(event) = event {
            // Done only now that Redmine is known to hold the change: a repeat after a
            // rejected read-back, or after a PUT that timed out but took, finds the event
            // unfinished and writes (and checks) what is missing instead of reporting done.
            let done = Plan::default().body(self.event_field, Some(event));
            self.put_issue(id, &done)?;
            after = self
                .fetch(id, "journals")?
                .ok_or_else(|| TrackerError::NotFound(key.to_string()))?;
        }
        Ok(self.read(&after))
    }

    /// `PUT /issues/N.json`, repeated when Redmine reports a concurrent update.
    fn put_issue(&self, id: u64, body: &Map<String, Value>) -> Result<(), TrackerError> {
        let path = format!("/issues/{id}.json");
        let request = json!({ "issue": body });
        let mut attempt = 1;
        loop {
            match self.client.send("PUT", &path, &request) {
                Ok(_) => return Ok(()),
                Err(e) if e.failure == Failure::Invalid(Vec::new()) && attempt < 3 => {
                    std::thread::sleep(Duration::from_millis(200 * attempt));
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A comment whose text changed: edit its journal, keeping twinsync's footer.
    fn edit_comment(
        &self,
        current: &RedmineIssue,
        comment: &Comment,
        stored: &Comment,
    ) -> Result<(), TrackerError> {
        let journal = current
            .journals
            .iter()
            .find(|j| j.id.to_string() == stored.id);
        let kept = journal
            .filter(|j| j.user.as_ref().is_some_and(|u| u.id == self.me.id))
            .and_then(|j| footer::split(j.notes.as_deref().unwrap_or_default()).1)
            .unwrap_or_default();
        let note = footer::compose(&comment.body, &kept);
        self.client.send(
            "PUT",
            &format!("/journals/{}.json", stored.id),
            &json!({"journal": {"notes": note}}),
        )?;
        Ok(())
    }

    /// Whether `event` already wrote `comment` to the issue: a journal of ours whose footer
    /// names the event, with the same text and time.
    fn wrote_comment(&self, current: &RedmineIssue, event: &str, comment: &Comment) -> bool {
        current
            .journals
            .iter()
            .filter(|j| j.user.as_ref().is_some_and(|u| u.id == self.me.id))
            .filter_map(|j| match footer::split(j.notes.as_deref()?) {
                (body, Some(footer)) => Some((body, footer)),
                _ => None,
            })
            .any(|(body, footer)| {
                footer.event.as_deref() == Some(event)
                    && body == normalise(&comment.body)
                    && (comment.created.is_empty()
                        || footer.created.as_deref() == Some(&comment.created))
            })
    }

    /// The issue a sync event created, if an earlier run of it did. Event ids are unique
    /// only as long as the node's database lives: an issue from before a reset may carry
    /// the same id. A repeat writes the same subject, as twinsync's user, so those must
    /// match too.
    fn find_created_by(&self, event: &str, subject: &str) -> Result<Option<u64>, TrackerError> {
        let filter = format!("cf_{}", self.event_field);
        let values = format!("{event}|{}", in_progress(event));
        let found = self.list(&[(filter.as_str(), values)])?;
        // Checked here too: were the filter ignored, Redmine would list every issue.
        Ok(found
            .iter()
            .find(|raw| {
                field_text(raw, self.event_field)
                    .is_some_and(|v| v == event || v == in_progress(event))
                    && raw.subject == subject
                    && raw.author.as_ref().is_some_and(|a| a.id == self.me.id)
            })
            .map(|raw| raw.id))
    }

    /// The changes that make Redmine's issue (`current`, or nothing yet) hold `issue`.
    fn plan(&self, issue: &Issue, current: Option<&RedmineIssue>) -> Result<Plan, TrackerError> {
        let mut plan = Plan::default();
        if issue.summary.trim().is_empty() {
            return Err(TrackerError::Rejected(
                "the summary is empty, and Redmine needs a subject".into(),
            ));
        }
        if current.is_none_or(|c| c.subject != issue.summary) {
            plan.attributes
                .insert("subject".into(), json!(issue.summary));
            plan.expected.push(Expected::Subject(issue.summary.clone()));
        }
        let description = normalise(issue.description.as_deref().unwrap_or_default());
        let stored = current.map(|c| normalise(c.description.as_deref().unwrap_or_default()));
        if stored
            .as_ref()
            .map_or(!description.is_empty(), |s| *s != description)
        {
            plan.attributes
                .insert("description".into(), json!(description));
            plan.expected.push(Expected::Description(description));
        }
        if !issue.status.is_empty() && current.is_none_or(|c| c.status.name != issue.status) {
            let status = self.named("status", &issue.status, |c| &c.statuses)?;
            if let Some(current) = current
                && let Some(allowed) = &current.allowed_statuses
                && !allowed.iter().any(|s| s.id == status.id)
            {
                return Err(TrackerError::Rejected(format!(
                    "Redmine's workflow does not let user `{}` change the status of {} from {} to {}; it allows: {}",
                    self.me.login,
                    key_of(current.id),
                    current.status.name,
                    status.name,
                    names(allowed)
                )));
            }
            plan.attributes.insert("status_id".into(), json!(status.id));
            plan.expected.push(Expected::Status(status.name));
        }
        if let Some(priority) = &issue.priority
            && current.is_none_or(|c| c.priority.name != *priority)
        {
            let priority = self.named("priority", priority, |c| &c.priorities)?;
            plan.attributes
                .insert("priority_id".into(), json!(priority.id));
            plan.expected.push(Expected::Priority(priority.name));
        }
        if !issue.issue_type.is_empty()
            && current.is_none_or(|c| c.tracker.name != issue.issue_type)
        {
            let tracker = self.named("issue type (tracker)", &issue.issue_type, |c| &c.trackers)?;
            plan.attributes
                .insert("tracker_id".into(), json!(tracker.id));
            plan.expected.push(Expected::Tracker(tracker.name));
        }
        let assignee = issue
            .assignee
            .as_ref()
            .map(|u| self.user_id(u))
            .transpose()?;
        let assigned = current.and_then(|c| c.assigned_to.as_ref()).map(|a| a.id);
        if assignee != assigned {
            plan.attributes.insert(
                "assigned_to_id".into(),
                assignee.map_or(json!(""), |id| json!(id)),
            );
            plan.expected.push(Expected::Assignee(assignee));
        }
        for field in &issue.custom_fields {
            if field.name == self.event_field_name {
                return Err(TrackerError::Rejected(format!(
                    "custom field `{}` is where twinsync records its sync events; a processor may not write it",
                    field.name
                )));
            }
            let Some(definition) = self.field(&field.name, &field.value)? else {
                continue;
            };
            let user = match &field.value {
                FieldValue::User(user) => Some(self.user_id(user)?),
                _ => None,
            };
            let value = raw_value(&field.value, &definition, user);
            let stored = current
                .and_then(|c| c.custom_fields.iter().find(|f| f.id == definition.id))
                .map_or(&Value::Null, |f| &f.value);
            if !same_raw(stored, &value) {
                plan.custom_fields
                    .push(json!({"id": definition.id, "value": value}));
                plan.expected.push(Expected::Field {
                    id: definition.id,
                    name: definition.name.clone(),
                    value,
                });
            }
        }
        Ok(plan)
    }

    /// Status, priority or tracker `name`, reloading the catalog once if it is unknown.
    fn named(
        &self,
        what: &str,
        name: &str,
        records: fn(&Catalog) -> &[Named],
    ) -> Result<Named, TrackerError> {
        if let Some(found) = by_name(records(&self.catalog()), name) {
            return Ok(found.clone());
        }
        let catalog = self.refresh_catalog()?;
        by_name(records(&catalog), name).cloned().ok_or_else(|| {
            TrackerError::Rejected(format!(
                "unknown {what} `{name}`; Redmine has: {}",
                names(records(&catalog))
            ))
        })
    }

    /// The definition of custom field `name`; `None` when Redmine has no such field and
    /// the value is empty anyway.
    fn field(
        &self,
        name: &str,
        value: &FieldValue,
    ) -> Result<Option<FieldDefinition>, TrackerError> {
        if let Some(found) = self.catalog().field(name) {
            return Ok(Some(found.clone()));
        }
        let catalog = self.refresh_catalog()?;
        match catalog.field(name) {
            Some(found) => Ok(Some(found.clone())),
            None if *value == FieldValue::Null => Ok(None),
            None => Err(TrackerError::Rejected(format!(
                "Redmine has no issue custom field `{name}`; it has: {}",
                catalog
                    .fields
                    .iter()
                    .filter(|f| f.id != self.event_field)
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The Redmine user a `User` stands for (see `find_user`).
    fn user_id(&self, user: &User) -> Result<u64, TrackerError> {
        if let Some(id) = find_user(&self.catalog(), user) {
            return Ok(id);
        }
        find_user(self.refresh_catalog()?.as_ref(), user).ok_or_else(|| {
            TrackerError::Rejected(format!(
                "no Redmine user matches `{}` (id `{}`, e-mail {}): map users in the incoming processor, or leave the field out",
                user.display_name,
                user.id,
                user.email.as_deref().unwrap_or("unknown")
            ))
        })
    }

    /// Every value of `plan` as Redmine holds it now, or a rejection naming what did not take.
    fn check(&self, plan: &Plan, stored: &RedmineIssue) -> Result<(), TrackerError> {
        let wrong: Vec<String> = plan
            .expected
            .iter()
            .filter_map(|expected| mismatch(expected, stored))
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        Err(TrackerError::Rejected(format!(
            "Redmine did not take all of the change to {} (a workflow or a field setting may forbid it): {}",
            key_of(stored.id),
            wrong.join("; ")
        )))
    }
}

/// How `stored` differs from a value twinsync wrote, if it does.
fn mismatch(expected: &Expected, stored: &RedmineIssue) -> Option<String> {
    let differs = |what: &str, asked: &str, has: &str| {
        (asked != has).then(|| format!("{what} is `{has}`, not `{asked}`"))
    };
    match expected {
        Expected::Subject(s) => differs("the subject", s, &stored.subject),
        Expected::Description(d) => differs(
            "the description",
            d,
            &normalise(stored.description.as_deref().unwrap_or_default()),
        ),
        Expected::Status(s) => differs("the status", s, &stored.status.name),
        Expected::Priority(p) => differs("the priority", p, &stored.priority.name),
        Expected::Tracker(t) => differs("the tracker", t, &stored.tracker.name),
        Expected::Assignee(asked) => {
            let has = stored.assigned_to.as_ref().map(|u| u.id);
            let show = |id: Option<u64>| id.map_or("nobody".into(), |id| format!("user {id}"));
            (*asked != has).then(|| format!("the assignee is {}, not {}", show(has), show(*asked)))
        }
        Expected::Field { id, name, value } => {
            let has = stored
                .custom_fields
                .iter()
                .find(|f| f.id == *id)
                .map_or(&Value::Null, |f| &f.value);
            (!same_raw(has, value)).then(|| {
                format!(
                    "custom field `{name}` is {has}, not {value} (is the field enabled for this project and tracker?)"
                )
            })
        }
    }
}

fn event_of(origin: Origin<'_>) -> Option<&str> {
    match origin {
        Origin::Sync { event_id } => Some(event_id),
        Origin::User => None,
    }
}

/// `issue`, being created, as an update of the Redmine issue `id` made for it. Its comments
/// are all new here: ids they bring from elsewhere mean nothing in this Redmine.
fn with_key(issue: &Issue, id: u64) -> Issue {
    let mut issue = Issue {
        key: Some(key_of(id)),
        ..issue.clone()
    };
    for comment in &mut issue.comments {
        comment.id.clear();
    }
    issue
}

/// The footer of a comment twinsync writes: who wrote it and when, if it comes from
/// elsewhere, and the sync event writing it.
fn footer_for(comment: &Comment, event: Option<&str>) -> Footer {
    Footer {
        author: comment
            .author
            .as_ref()
            .map(|a| a.display_name.clone())
            .filter(|a| !a.is_empty()),
        created: Some(comment.created.clone()).filter(|c| !c.is_empty()),
        event: event.map(str::to_string),
    }
}
