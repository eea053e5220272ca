//! Redmine's REST API documents, as far as twinsync reads them (Redmine 5).

use serde::Deserialize;
use serde_json::Value;

/// A reference to a record: `{"id": 1, "name": "New"}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(super) struct Named {
    pub id: u64,
    #[serde(default)]
    pub name: String,
}

/// `GET /issues/N.json` (with `include=journals,allowed_statuses`), or one issue of a list.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RedmineIssue {
    pub id: u64,
    pub project: Named,
    pub tracker: Named,
    pub status: Named,
    pub priority: Named,
    pub author: Option<Named>,
    pub assigned_to: Option<Named>,
    pub subject: String,
    pub description: Option<String>,
    #[serde(default)]
    pub custom_fields: Vec<FieldValue>,
    /// RFC 3339, UTC, whole seconds.
    pub created_on: String,
    pub updated_on: String,
    #[serde(default)]
    pub journals: Vec<Journal>,
    /// Only with `include=allowed_statuses`: where the API user may move the status.
    pub allowed_statuses: Option<Vec<Named>>,
}

/// A custom field's value on an issue: a string, `null`, or a list of strings when the
/// field takes several values.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct FieldValue {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub value: Value,
}

/// One change of an issue: a comment (`notes`), field changes (`details`), or both.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Journal {
    pub id: u64,
    pub user: Option<Named>,
    #[serde(default)]
    pub notes: Option<String>,
    pub created_on: String,
    #[serde(default)]
    pub private_notes: bool,
    #[serde(default)]
    pub details: Vec<Detail>,
}

/// A field change in a journal: `property` is `attr` (then `name` is the attribute, like
/// `status_id`) or `cf` (then `name` is the custom field's id).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Detail {
    pub property: String,
    pub name: String,
    pub old_value: Option<String>,
}

/// `GET /custom_fields.json` (administrators only).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct FieldDefinition {
    pub id: u64,
    pub name: String,
    pub customized_type: String,
    /// `string`, `text`, `link`, `list`, `int`, `float`, `bool`, `date`, `user`, ...
    pub field_format: String,
    #[serde(default)]
    pub multiple: bool,
    #[serde(default)]
    pub is_filter: bool,
}

/// `GET /users.json` (administrators only) and `GET /users/current.json`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Account {
    pub id: u64,
    pub login: String,
    #[serde(default)]
    pub firstname: String,
    #[serde(default)]
    pub lastname: String,
    pub mail: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

/// `GET /projects/IDENTIFIER.json?include=trackers`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Project {
    pub id: u64,
    pub identifier: String,
    #[serde(default)]
    pub trackers: Vec<Named>,
}

/// A page of `GET /issues.json` or `GET /users.json`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Page<T> {
    #[serde(alias = "issues", alias = "users")]
    pub items: Vec<T>,
    #[serde(default)]
    pub total_count: usize,
}
