//! Redmine issues as twinsync's `Issue`, and twinsync's values as Redmine's.
//!
//! | Issue | Redmine |
//! |---|---|
//! | `key` | `#123`, as Redmine shows it (issue ids are unique in a Redmine) |
//! | `id` | `123` |
//! | `project` | the project's identifier |
//! | `issue-type`, `status`, `priority` | tracker, status, priority, by name |
//! | `summary`, `description` | subject, description (line ends `\n`; empty is none) |
//! | `assignee`, `reporter` | assignee, author: id, name, e-mail |
//! | `custom-fields` | issue custom fields by name, but twinsync's own event field |
//! | `comments` | journals with notes: id, user (or the footer's author), time, private |
//! | `created`, `updated` | `created_on`, `updated_on` |
//!
//! Labels, components, resolution, due date, parent and attachments are not mapped: they
//! read as empty and writing them changes nothing in Redmine.

use serde_json::Value;

use super::catalog::{Catalog, display_name};
use super::footer;
use super::json::{FieldDefinition, Named, RedmineIssue};
use crate::model::{Comment, CustomField, FieldValue, Issue, User};
use crate::tracker::TrackerError;

/// `#123`: how Redmine shows issue 123, and twinsync's key for it.
pub(super) fn key_of(id: u64) -> String {
    format!("#{id}")
}

/// The issue id in a key like `#123`.
pub(super) fn parse_key(key: &str) -> Result<u64, TrackerError> {
    key.strip_prefix('#')
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            TrackerError::Rejected(format!(
                "`{key}` is not a Redmine issue key: they look like #123"
            ))
        })
}

/// Text as stored, with Redmine's `\r\n` line ends (from its web forms) made `\n`.
pub(super) fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The value of custom field `field` on an issue, if it has one.
pub(super) fn field_text(issue: &RedmineIssue, field: u64) -> Option<&str> {
    issue
        .custom_fields
        .iter()
        .find(|f| f.id == field)
        .and_then(|f| f.value.as_str())
        .filter(|v| !v.is_empty())
}

/// Whether two custom field values as Redmine holds them are the same: `null`, `""` and
/// `[]` all mean unset.
pub(super) fn same_raw(a: &Value, b: &Value) -> bool {
    fn unset(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(items) => items.is_empty(),
            _ => false,
        }
    }
    (unset(a) && unset(b)) || a == b
}

/// Reads Redmine issues of one project as `Issue`s.
pub(super) struct Reader<'a> {
    /// The project's identifier.
    pub project: &'a str,
    /// The API user: only its notes can carry twinsync's footer.
    pub me: u64,
    /// twinsync's event field, kept out of the issue.
    pub event_field: u64,
    pub catalog: &'a Catalog,
}

impl Reader<'_> {
    pub fn issue(&self, raw: &RedmineIssue) -> Issue {
        let description = raw
            .description
            .as_deref()
            .map(normalise)
            .filter(|d| !d.is_empty());
        Issue {
            key: Some(key_of(raw.id)),
            id: Some(raw.id.to_string()),
            project: self.project.to_string(),
            issue_type: raw.tracker.name.clone(),
            summary: raw.subject.clone(),
            description,
            status: raw.status.name.clone(),
            priority: Some(raw.priority.name.clone()),
            assignee: raw.assigned_to.as_ref().map(|u| self.user(u)),
            reporter: raw.author.as_ref().map(|u| self.user(u)),
            custom_fields: raw
                .custom_fields
                .iter()
                .filter(|f| f.id != self.event_field)
                .map(|f| CustomField {
                    name: f.name.clone(),
                    value: self.field_value(self.catalog.field_by_id(f.id), &f.value),
                })
                .collect(),
            comments: self.comments(raw),
            created: Some(raw.created_on.clone()),
            updated: Some(raw.updated_on.clone()),
            ..Issue::default()
        }
    }

    fn user(&self, named: &Named) -> User {
        User {
            id: named.id.to_string(),
            display_name: named.name.clone(),
            email: self.catalog.user(named.id).and_then(|a| a.mail.clone()),
        }
    }

    fn comments(&self, raw: &RedmineIssue) -> Vec<Comment> {
        raw.journals
            .iter()
            .filter(|j| j.notes.as_deref().is_some_and(|n| !n.is_empty()))
            .map(|journal| {
                let notes = journal.notes.as_deref().unwrap_or_default();
                let mine = journal.user.as_ref().is_some_and(|u| u.id == self.me);
                let (body, footer) = match footer::split(notes) {
                    (body, Some(footer)) if mine => (body, footer),
                    _ => (normalise(notes), footer::Footer::default()),
                };
                let author = match footer.author {
                    // Written for someone of the other tracker: their name is what we have.
                    Some(name) => Some(User {
                        id: String::new(),
                        display_name: name,
                        email: None,
                    }),
                    None => journal.user.as_ref().map(|u| self.user(u)),
                };
                Comment {
                    id: journal.id.to_string(),
                    author,
                    body,
                    created: footer.created.unwrap_or_else(|| journal.created_on.clone()),
                    updated: None,
                    internal: journal.private_notes,
                }
            })
            .collect()
    }

    /// A custom field value by the field's format; text when the format is unknown.
    fn field_value(&self, definition: Option<&FieldDefinition>, value: &Value) -> FieldValue {
        let text = match value {
            Value::Null => return FieldValue::Null,
            Value::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect();
                return if items.is_empty() {
                    FieldValue::Null
                } else {
                    FieldValue::MultiOption(items)
                };
            }
            Value::String(text) if text.is_empty() => return FieldValue::Null,
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let format = definition.map_or("string", |d| d.field_format.as_str());
        match format {
            "list" => FieldValue::Option(text),
            "int" | "float" => text
                .parse()
                .map(FieldValue::Number)
                .unwrap_or(FieldValue::Text(text)),
            "bool" => FieldValue::Boolean(text == "1"),
            "date" => FieldValue::Date(text),
            "user" => match text.parse().ok().and_then(|id| self.catalog.user(id)) {
                Some(account) => FieldValue::User(User {
                    id: account.id.to_string(),
                    display_name: display_name(account),
                    email: account.mail.clone(),
                }),
                None => FieldValue::Text(text),
            },
            _ => FieldValue::Text(normalise(&text)),
        }
    }
}

/// A custom field value as Redmine takes it. `user` is the Redmine id of a `User` value.
pub(super) fn raw_value(
    value: &FieldValue,
    definition: &FieldDefinition,
    user: Option<u64>,
) -> Value {
    match value {
        FieldValue::Text(s)
        | FieldValue::Option(s)
        | FieldValue::Date(s)
        | FieldValue::DateTime(s) => Value::String(s.clone()),
        // Whole numbers without a fraction: Redmine's integer fields refuse `3.0`.
        FieldValue::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
            Value::String(format!("{}", *n as i64))
        }
        FieldValue::Number(n) => Value::String(n.to_string()),
        FieldValue::Boolean(b) => Value::String(if *b { "1" } else { "0" }.into()),
        FieldValue::MultiOption(items) => {
            Value::Array(items.iter().cloned().map(Value::String).collect())
        }
        FieldValue::User(_) => Value::String(user.map(|id| id.to_string()).unwrap_or_default()),
        FieldValue::Null if definition.multiple => Value::Array(Vec::new()),
        FieldValue::Null => Value::String(String::new()),
    }
}

/// The Redmine user that `user` (from this or another tracker) stands for: the same id and
/// name (this Redmine), else the same e-mail, else the same login, else the only user with
/// that name.
pub(super) fn find_user(catalog: &Catalog, user: &User) -> Option<u64> {
    let same_redmine = user
        .id
        .parse()
        .ok()
        .and_then(|id| catalog.user(id))
        .filter(|a| {
            display_name(a) == user.display_name || a.mail.is_some() && a.mail == user.email
        });
    if let Some(account) = same_redmine {
        return Some(account.id);
    }
    let by = |matches: &dyn Fn(&super::json::Account) -> bool| {
        let mut found = catalog.users.iter().filter(|a| matches(a));
        match (found.next(), found.next()) {
            (Some(only), None) => Some(only.id),
            _ => None,
        }
    };
    user.email
        .as_deref()
        .and_then(|email| {
            by(&|a| {
                a.mail
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(email))
            })
        })
        .or_else(|| by(&|a| !user.id.is_empty() && a.login == user.id))
        .or_else(|| by(&|a| display_name(a) == user.display_name))
}
