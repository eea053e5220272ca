//! Redmine's reference data, by name: statuses, priorities, the project's trackers (issue
//! types), issue custom fields and users. Issues carry names; Redmine's writes take ids.
//! Loaded when the tracker connects, and again when a write names something unknown (an
//! administrator may have added it since).

use super::api::{ApiError, Client};
use super::json::{Account, FieldDefinition, Named, Page};

#[derive(Debug, Clone, Default)]
pub(super) struct Catalog {
    pub statuses: Vec<Named>,
    pub priorities: Vec<Named>,
    /// The trackers enabled in the project.
    pub trackers: Vec<Named>,
    /// Issue custom fields.
    pub fields: Vec<FieldDefinition>,
    /// Active users.
    pub users: Vec<Account>,
}

#[derive(serde::Deserialize)]
struct Statuses {
    issue_statuses: Vec<Named>,
}

#[derive(serde::Deserialize)]
struct Priorities {
    issue_priorities: Vec<Named>,
}

#[derive(serde::Deserialize)]
struct Fields {
    custom_fields: Vec<FieldDefinition>,
}

#[derive(serde::Deserialize)]
struct ProjectTrackers {
    project: super::json::Project,
}

impl Catalog {
    /// Everything, for `project` (its identifier). The custom fields and users need an
    /// administrator's key.
    pub fn load(client: &Client, project: &str) -> Result<Catalog, ApiError> {
        let statuses: Statuses = client.get("/issue_statuses.json", &[])?;
        let priorities: Priorities = client.get("/enumerations/issue_priorities.json", &[])?;
        let project: ProjectTrackers = client.get(
            &format!("/projects/{project}.json"),
            &[("include", "trackers".into())],
        )?;
        let fields: Fields = client.get("/custom_fields.json", &[])?;
        let mut users = Vec::new();
        loop {
            let page: Page<Account> = client.get(
                "/users.json",
                &[
                    ("status", "1".into()),
                    ("limit", "100".into()),
                    ("offset", users.len().to_string()),
                ],
            )?;
            let done = page.items.is_empty() || users.len() + page.items.len() >= page.total_count;
            users.extend(page.items);
            if done {
                break;
            }
        }
        Ok(Catalog {
            statuses: statuses.issue_statuses,
            priorities: priorities.issue_priorities,
            trackers: project.project.trackers,
            fields: fields
                .custom_fields
                .into_iter()
                .filter(|f| f.customized_type == "issue")
                .collect(),
            users,
        })
    }

    pub fn field(&self, name: &str) -> Option<&FieldDefinition> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn field_by_id(&self, id: u64) -> Option<&FieldDefinition> {
        self.fields.iter().find(|f| f.id == id)
    }

    pub fn user(&self, id: u64) -> Option<&Account> {
        self.users.iter().find(|u| u.id == id)
    }
}

/// The record called `name`: exactly, else the only one that matches ignoring case.
pub(super) fn by_name<'a>(records: &'a [Named], name: &str) -> Option<&'a Named> {
    records.iter().find(|r| r.name == name).or_else(|| {
        let mut matches = records.iter().filter(|r| r.name.eq_ignore_ascii_case(name));
        match (matches.next(), matches.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

/// `New, In Progress, ...`: what Redmine has, for messages.
pub(super) fn names(records: &[Named]) -> String {
    records
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How Redmine shows a user by default: first name and last name.
pub(super) fn display_name(account: &Account) -> String {
    format!("{} {}", account.firstname, account.lastname)
        .trim()
        .to_string()
}
