//! The issue record: `types.issue` of the WIT, as the host stores it (JSON in SQLite), sends
//! it (JSON between nodes) and hands it to processors (the component model's canonical ABI,
//! through the derives below, with no conversion step). When the WIT grows a new version,
//! older processors get a conversion to these types, not the other way round.

use serde::{Deserialize, Serialize};
use wasmtime::component::{ComponentType, Lift, Lower};

/// A person known to a tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[component(record)]
pub struct User {
    pub id: String,
    #[component(name = "display-name")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A comment on an issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[component(record)]
pub struct Comment {
    /// Empty for a comment the tracker has not stored yet.
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<User>,
    pub body: String,
    /// RFC 3339, UTC. Empty asks the tracker to use the time it stores the comment.
    #[serde(default)]
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default)]
    pub internal: bool,
}

/// Metadata of an attached file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[component(record)]
pub struct Attachment {
    #[serde(default)]
    pub id: String,
    #[component(name = "file-name")]
    pub file_name: String,
    #[component(name = "mime-type")]
    pub mime_type: String,
    pub size: u64,
    pub sha256: String,
}

/// A typed custom field value. In JSON: `{"type": "text", "value": "EXT-1"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
#[component(variant)]
pub enum FieldValue {
    #[component(name = "text")]
    Text(String),
    #[component(name = "number")]
    Number(f64),
    #[component(name = "boolean")]
    Boolean(bool),
    #[component(name = "date")]
    Date(String),
    #[component(name = "date-time")]
    DateTime(String),
    #[component(name = "user")]
    User(User),
    #[component(name = "option")]
    Option(String),
    #[component(name = "multi-option")]
    MultiOption(Vec<String>),
    #[component(name = "null")]
    Null,
}

impl FieldValue {
    fn text_size(&self) -> usize {
        match self {
            FieldValue::Text(s)
            | FieldValue::Date(s)
            | FieldValue::DateTime(s)
            | FieldValue::Option(s) => s.len(),
            FieldValue::User(u) => {
                u.id.len() + u.display_name.len() + u.email.as_ref().map_or(0, String::len)
            }
            FieldValue::MultiOption(items) => items.iter().map(|s| 8 + s.len()).sum(),
            FieldValue::Number(_) | FieldValue::Boolean(_) | FieldValue::Null => 8,
        }
    }
}

/// A named custom field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[component(record)]
pub struct CustomField {
    pub name: String,
    pub value: FieldValue,
}

/// An issue, or a replica of one. Every field but `summary` may be left out of JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[serde(default)]
#[component(record)]
pub struct Issue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub project: String,
    #[component(name = "issue-type")]
    pub issue_type: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<User>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[component(name = "due-date")]
    pub due_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[component(name = "parent-key")]
    pub parent_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[component(name = "custom-fields")]
    pub custom_fields: Vec<CustomField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
}

/// What one side sends to the other: an issue as the sender shows it.
pub type Replica = Issue;

impl Issue {
    /// The value of the custom field `name`, if the issue has it.
    pub fn custom_field(&self, name: &str) -> Option<&FieldValue> {
        self.custom_fields
            .iter()
            .find(|field| field.name == name)
            .map(|field| &field.value)
    }

    /// The text of custom field `name` when it holds text or an option.
    pub fn custom_text(&self, name: &str) -> Option<&str> {
        match self.custom_field(name)? {
            FieldValue::Text(text) | FieldValue::Option(text) => Some(text),
            _ => None,
        }
    }

    /// Set custom field `name`, adding it when missing.
    pub fn set_custom_field(&mut self, name: &str, value: FieldValue) {
        match self.custom_fields.iter_mut().find(|f| f.name == name) {
            Some(field) => field.value = value,
            None => self.custom_fields.push(CustomField {
                name: name.to_string(),
                value,
            }),
        }
    }

    /// Bytes of text the issue carries, plus a little per list entry: what the size limits on
    /// a processor's input and output measure. Cheap, unlike encoding to JSON.
    pub fn text_size(&self) -> usize {
        fn opt(text: &Option<String>) -> usize {
            text.as_ref().map_or(0, String::len)
        }
        fn user(user: &Option<User>) -> usize {
            user.as_ref()
                .map_or(0, |u| u.id.len() + u.display_name.len() + opt(&u.email))
        }
        const ENTRY: usize = 8;
        let comments: usize = self
            .comments
            .iter()
            .map(|c| {
                ENTRY
                    + c.id.len()
                    + user(&c.author)
                    + c.body.len()
                    + c.created.len()
                    + opt(&c.updated)
            })
            .sum();
        let attachments: usize = self
            .attachments
            .iter()
            .map(|a| {
                ENTRY + 8 + a.id.len() + a.file_name.len() + a.mime_type.len() + a.sha256.len()
            })
            .sum();
        let fields: usize = self
            .custom_fields
            .iter()
            .map(|f| ENTRY + f.name.len() + f.value.text_size())
            .sum();
        let lists: usize = self
            .labels
            .iter()
            .chain(&self.components)
            .map(|s| ENTRY + s.len())
            .sum();
        opt(&self.key)
            + opt(&self.id)
            + self.project.len()
            + self.issue_type.len()
            + self.summary.len()
            + opt(&self.description)
            + self.status.len()
            + opt(&self.priority)
            + opt(&self.resolution)
            + user(&self.assignee)
            + user(&self.reporter)
            + opt(&self.due_date)
            + opt(&self.parent_key)
            + opt(&self.created)
            + opt(&self.updated)
            + comments
            + attachments
            + fields
            + lists
    }

    /// Whether two replicas say the same thing about an issue. `updated` is left out: every
    /// write moves it, so comparing it would make every echo look like news.
    pub fn same_content(&self, other: &Issue) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let Issue {
            key,
            id,
            project,
            issue_type,
            summary,
            description,
            status,
            priority,
            resolution,
            assignee,
            reporter,
            labels,
            components,
            due_date,
            parent_key,
            comments,
            attachments,
            custom_fields,
            created,
            updated: _,
        } = self;
        *key == other.key
            && *id == other.id
            && *project == other.project
            && *issue_type == other.issue_type
            && *summary == other.summary
            && *description == other.description
            && *status == other.status
            && *priority == other.priority
            && *resolution == other.resolution
            && *assignee == other.assignee
            && *reporter == other.reporter
            && *labels == other.labels
            && *components == other.components
            && *due_date == other.due_date
            && *parent_key == other.parent_key
            && *comments == other.comments
            && *attachments == other.attachments
            && *custom_fields == other.custom_fields
            && *created == other.created
    }
}
