//! A real tracker: Redmine (5.x), through its REST API with an API key.
//!
//! One tracker is one Redmine project. Issue keys are `#123`, as Redmine shows them (ids are
//! unique across a Redmine's projects). `mapping` says which fields map to what; `write`
//! how a sync event writes exactly once; `feed` how changes are found by polling.
//!
//! The API key should belong to a Redmine user that only twinsync uses, and that user must
//! be an administrator: Redmine shows custom field definitions and users (needed to map
//! names to ids) to administrators only. twinsync also needs an issue custom field of its
//! own (`event-field`, default `twinsync event`), where it records the sync event that
//! wrote an issue last; see `write`.

mod api;
mod catalog;
mod feed;
mod footer;
mod json;
mod mapping;
mod write;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

use self::api::{ApiError, Client, Failure};
use self::catalog::Catalog;
use self::json::{Account, Page, Project, RedmineIssue};
use self::mapping::{Reader, key_of, parse_key};
use super::{ChangeBatch, Origin, Query, Tracker, TrackerError};
use crate::config::Secret;
use crate::model::Issue;

/// How to reach a Redmine project.
#[derive(Debug, Clone)]
pub struct RedmineSettings {
    /// Redmine's root, like `https://redmine.example.com`.
    pub url: String,
    pub api_key: Secret,
    /// The project's identifier (as in `/projects/IDENTIFIER`).
    pub project: String,
    /// The issue custom field (text) where twinsync records the last sync event.
    pub event_field: String,
    /// Redmine is asked for changes at most this often.
    pub poll_interval: Duration,
}

/// The default name of twinsync's own custom field.
pub const DEFAULT_EVENT_FIELD: &str = "twinsync event";

/// One Redmine project as a [`Tracker`].
pub struct RedmineTracker {
    client: Client,
    project: Project,
    /// The API key's user: what it writes carries twinsync's footer and event field.
    me: Account,
    /// The id of twinsync's event field.
    event_field: u64,
    event_field_name: String,
    catalog: Mutex<Arc<Catalog>>,
    poll_interval: Duration,
    last_poll: Mutex<Option<Instant>>,
    feed: Mutex<feed::Memory>,
}

impl RedmineTracker {
    /// Connect and check everything a sync will need, so that a wrong URL, key, project or
    /// missing event field stops the node when it starts, each with its own message.
    pub fn connect(settings: &RedmineSettings) -> Result<RedmineTracker> {
        let url = settings.url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("Redmine's `url` must start with http:// or https://, not `{url}`");
        }
        let project = &settings.project;
        if project.is_empty()
            || !project
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            bail!(
                "`{project}` is not a Redmine project identifier: use the lower-case identifier from the project's address, {url}/projects/IDENTIFIER"
            );
        }
        let client = Client::new(url, settings.api_key.clone());
        #[derive(serde::Deserialize)]
        struct Current {
            user: Account,
        }
        let me = client
            .get::<Current>("/users/current.json", &[])
            .map_err(|e| connect_error(url, &e))?
            .user;
        if !me.admin {
            bail!(
                "the API key belongs to Redmine user `{}`, who is not an administrator: twinsync maps custom fields and users by name, and Redmine's REST API shows those to administrators only",
                me.login
            );
        }
        #[derive(serde::Deserialize)]
        struct Found {
            project: Project,
        }
        let found = client
            .get::<Found>(&format!("/projects/{project}.json"), &[])
            .map_err(|e| match e.failure {
                Failure::NotFound => anyhow!(
                    "Redmine at {url} has no project `{project}`: `project` is the identifier from the project's address, {url}/projects/IDENTIFIER"
                ),
                _ => connect_error(url, &e),
            })?;
        let catalog = Catalog::load(&client, project).map_err(|e| connect_error(url, &e))?;
        let name = &settings.event_field;
        let field = catalog.field(name).ok_or_else(|| {
            anyhow!(
                "Redmine at {url} has no issue custom field `{name}`. twinsync records there the sync event that wrote an issue last, so that an event repeated after a crash changes nothing. Create it under Administration > Custom fields > Issues: format Text, for all projects and trackers, used as a filter, visible to the role of user `{}`",
                me.login
            )
        })?;
        if field.field_format != "string" || !field.is_filter {
            bail!(
                "Redmine's custom field `{name}` must have the format Text and be used as a filter (it is {}{})",
                field.field_format,
                if field.is_filter {
                    ""
                } else {
                    ", not a filter"
                }
            );
        }
        Ok(RedmineTracker {
            event_field: field.id,
            event_field_name: name.clone(),
            client,
            project: found.project,
            me,
            catalog: Mutex::new(Arc::new(catalog)),
            poll_interval: settings.poll_interval,
            last_poll: Mutex::new(None),
            feed: Mutex::new(feed::Memory::default()),
        })
    }

    /// The project's identifier.
    pub fn project(&self) -> &str {
        &self.project.identifier
    }

    fn catalog(&self) -> Arc<Catalog> {
        lock(&self.catalog).clone()
    }

    /// Load the reference data again: a write named something Redmine may have gained.
    fn refresh_catalog(&self) -> Result<Arc<Catalog>, TrackerError> {
        let fresh = Arc::new(Catalog::load(&self.client, &self.project.identifier)?);
        *lock(&self.catalog) = fresh.clone();
        Ok(fresh)
    }

    fn reader<'a>(&'a self, catalog: &'a Catalog) -> Reader<'a> {
        Reader {
            project: &self.project.identifier,
            me: self.me.id,
            event_field: self.event_field,
            catalog,
        }
    }

    fn read(&self, raw: &RedmineIssue) -> Issue {
        self.reader(&self.catalog()).issue(raw)
    }

    /// Issue `id` with `include` (`journals`, `allowed_statuses`), if it exists. An issue
    /// of another project is refused: this tracker's change feed would never see it.
    fn fetch(&self, id: u64, include: &str) -> Result<Option<RedmineIssue>, TrackerError> {
        #[derive(serde::Deserialize)]
        struct One {
            issue: RedmineIssue,
        }
        let found = match self.client.get::<One>(
            &format!("/issues/{id}.json"),
            &[("include", include.into())],
        ) {
            Ok(one) => one.issue,
            Err(ApiError {
                failure: Failure::NotFound,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if found.project.id != self.project.id {
            return Err(TrackerError::Rejected(format!(
                "{} is in Redmine project `{}`; this node syncs project `{}`",
                key_of(id),
                found.project.name,
                self.project.identifier
            )));
        }
        Ok(Some(found))
    }

    /// Every issue of the project (without journals), in pages.
    fn list(&self, filters: &[(&str, String)]) -> Result<Vec<RedmineIssue>, TrackerError> {
        let mut issues = Vec::new();
        loop {
            let mut query = vec![
                ("project_id", self.project.id.to_string()),
                ("status_id", "*".to_string()),
                ("sort", "id".to_string()),
                ("limit", "100".to_string()),
                ("offset", issues.len().to_string()),
            ];
            query.extend(filters.iter().cloned());
            let page: Page<RedmineIssue> = self.client.get("/issues.json", &query)?;
            let done = page.items.is_empty() || issues.len() + page.items.len() >= page.total_count;
            issues.extend(page.items);
            if done {
                return Ok(issues);
            }
        }
    }
}

impl Tracker for RedmineTracker {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        let id = parse_key(key)?;
        Ok(self.fetch(id, "journals")?.map(|raw| self.read(&raw)))
    }

    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.create_issue(issue, origin)
    }

    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.update_issue(issue, origin, None)
    }

    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        self.update_issue(issue, origin, seen)
    }

    fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<ChangeBatch, TrackerError> {
        {
            let mut last = lock(&self.last_poll);
            if last.is_some_and(|at| at.elapsed() < self.poll_interval) {
                return Ok(ChangeBatch {
                    changes: Vec::new(),
                    cursor: cursor.map(str::to_string),
                });
            }
            *last = Some(Instant::now());
        }
        self.poll(cursor, limit)
    }

    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError> {
        let catalog = self.catalog();
        let reader = self.reader(&catalog);
        Ok(self
            .list(&[])?
            .iter()
            .map(|raw| reader.issue(raw))
            .filter(|issue| query.matches(issue))
            .filter_map(|issue| issue.key)
            .collect())
    }
}

/// What a failed check at start-up means, in the words of the configuration.
fn connect_error(url: &str, error: &ApiError) -> anyhow::Error {
    match &error.failure {
        Failure::Unreachable(reason) => anyhow!(
            "cannot reach Redmine at {url} ({reason}): is `url` right, and is Redmine running?"
        ),
        Failure::WrongKey => anyhow!(
            "Redmine at {url} refused the API key (401): check `api-key` or `api-key-file` (the key is under My account > API access key)"
        ),
        Failure::Forbidden => anyhow!(
            "Redmine at {url} refused {} (403): is the REST API enabled (Administration > Settings > API)?",
            error.request
        ),
        Failure::NotFound | Failure::Unexpected(..) => anyhow!(
            "{url} does not answer like Redmine's REST API ({error}): `url` must be Redmine's root address"
        ),
        Failure::Invalid(_) => anyhow!("Redmine at {url}: {error}"),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
