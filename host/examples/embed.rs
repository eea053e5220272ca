//! A tracker that embeds twinsync: a tiny in-memory issue store, serving two tenants
//! (customers) in one process. Each tenant exalates one issue to the other; each side's
//! `remote-key` processor stores the other side's key. The tracker pushes its changes
//! (no polling) and prints what the host reports.
//!
//! ```sh
//! cargo run -p twinsync --example embed
//! ```
//!
//! `tests/embed.rs` runs this code and checks what it prints.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use twinsync::model::Issue;
use twinsync::tracker::{Change, ChangeBatch, Origin, Query, Tracker, TrackerError};
use twinsync::{ConnectionConfig, Host, HostConfig, HostEvent, Processor, TenantConfig};

/// The embedding tracker's issue store: everything in memory.
pub struct MemoryTracker {
    project: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    issues: BTreeMap<String, Issue>,
    last_number: u64,
    last_comment: u64,
    /// Writes made by twinsync, by event id: a repeated write changes nothing.
    sync_writes: HashMap<String, String>,
}

impl MemoryTracker {
    pub fn new(project: &str) -> Self {
        MemoryTracker {
            project: project.to_string(),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Give new comments an id, as a tracker does when it stores them.
    fn assign_ids(&mut self, issue: &mut Issue, stored: Option<&Issue>) {
        for comment in &mut issue.comments {
            let known = stored.is_some_and(|s| s.comments.iter().any(|c| c.id == comment.id));
            if comment.id.is_empty() || !known {
                self.last_comment += 1;
                comment.id = format!("c{}", self.last_comment);
            }
        }
    }

    /// A write by twinsync already made for this event: its issue.
    fn already(&self, origin: Origin<'_>) -> Option<Issue> {
        match origin {
            Origin::Sync { event_id } => self
                .sync_writes
                .get(event_id)
                .and_then(|key| self.issues.get(key).cloned()),
            Origin::User => None,
        }
    }

    fn remember(&mut self, origin: Origin<'_>, key: &str) {
        if let Origin::Sync { event_id } = origin {
            self.sync_writes
                .insert(event_id.to_string(), key.to_string());
        }
    }
}

impl Tracker for MemoryTracker {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        Ok(self.state().issues.get(key).cloned())
    }

    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        let mut state = self.state();
        if let Some(done) = state.already(origin) {
            return Ok(done);
        }
        let mut issue = issue.clone();
        state.last_number += 1;
        let key = format!("{}-{}", self.project, state.last_number);
        issue.key = Some(key.clone());
        issue.id = Some(state.last_number.to_string());
        issue.project = self.project.clone();
        state.assign_ids(&mut issue, None);
        state.issues.insert(key.clone(), issue.clone());
        state.remember(origin, &key);
        Ok(issue)
    }

    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.update_if(issue, origin, None)
    }

    /// Compares and writes under one lock: nobody writes in between.
    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        let mut state = self.state();
        if let Some(done) = state.already(origin) {
            return Ok(done);
        }
        let key = issue
            .key
            .clone()
            .ok_or_else(|| TrackerError::Rejected("an issue to update needs a key".into()))?;
        let stored = state
            .issues
            .get(&key)
            .cloned()
            .ok_or_else(|| TrackerError::NotFound(key.clone()))?;
        if seen.is_some_and(|seen| *seen != stored) {
            return Err(TrackerError::Changed(key));
        }
        let mut issue = issue.clone();
        issue.id = stored.id.clone();
        state.assign_ids(&mut issue, Some(&stored));
        state.issues.insert(key.clone(), issue.clone());
        state.remember(origin, &key);
        Ok(issue)
    }

    /// No change feed: this tracker pushes its changes (`Tenant::issues_changed`).
    fn changes(&self, _cursor: Option<&str>, _limit: usize) -> Result<ChangeBatch, TrackerError> {
        Ok(ChangeBatch {
            changes: Vec::<Change>::new(),
            cursor: None,
        })
    }

    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError> {
        let state = self.state();
        Ok(state
            .issues
            .iter()
            .filter(|(_, issue)| query.matches(issue))
            .map(|(key, _)| key.clone())
            .collect())
    }
}

const CONNECTION: &str = "acme-globex";
const REMOTE_KEY: &str = "remote issue key";

/// Run the example with its data under `dir`, printing to `out`.
pub fn run(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let host = Host::start(HostConfig::new(dir))?;
    let events = host.subscribe();
    let remote_key = Processor::builtin("remote-key");
    let trackers = [
        (
            "acme",
            "Acme",
            "Globex",
            Arc::new(MemoryTracker::new("ACME")),
        ),
        (
            "globex",
            "Globex",
            "Acme",
            Arc::new(MemoryTracker::new("GLX")),
        ),
    ];
    let mut tenants = Vec::new();
    for (name, instance, other, tracker) in &trackers {
        let tenant = host.add_tenant(
            TenantConfig::new(name, instance, tracker.clone())
                .connection(ConnectionConfig::new(CONNECTION, other).processor(remote_key.clone()))
                .push_changes(),
        )?;
        writeln!(
            out,
            "tenant {name}: instance {instance}, connected to {other}"
        )?;
        tenants.push(tenant);
    }
    writeln!(
        out,
        "processors compiled for both tenants: {}",
        host.compiled_processors()
    )?;

    // One issue from each tenant.
    let mut exalated = Vec::new();
    for ((name, _, _, tracker), tenant) in trackers.iter().zip(&tenants) {
        let issue = Issue {
            summary: format!("{name}'s customer cannot log in"),
            status: "Open".into(),
            ..Issue::default()
        };
        let key = tracker
            .create(&issue, Origin::User)?
            .key
            .context("the tracker gave no key")?;
        let twin = tenant.exalate(CONNECTION, &key)?;
        writeln!(out, "{name}: created {key} and exalated it (twin {twin})")?;
        exalated.push((*name, tracker.clone(), key));
    }

    // Until each side has stored the other's key: the sync back of `remote-key`.
    let synced = |tracker: &MemoryTracker, key: &str| {
        tracker
            .get(key)
            .ok()
            .flatten()
            .and_then(|issue| issue.custom_text(REMOTE_KEY).map(str::to_string))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while exalated.iter().any(|(_, t, key)| synced(t, key).is_none()) {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(HostEvent::Synced {
                tenant, kind, note, ..
            }) => writeln!(out, "  {tenant}: {kind:?} {note}")?,
            Ok(HostEvent::SyncError {
                tenant, message, ..
            }) => bail!("{tenant}: sync error: {message}"),
            Ok(_) => {}
            Err(_) => bail!("the issues were not synced within a minute"),
        }
    }
    for (name, tracker, key) in &exalated {
        let other = synced(tracker, key).unwrap_or_default();
        writeln!(out, "{name}: {key} is synced with {other}")?;
    }

    // The tracker pushes a change: Acme closes its issue, Globex's copy follows.
    let (_, acme, acme_key) = &exalated[0];
    let globex = &trackers[1].3;
    let globex_key = synced(acme, acme_key).unwrap_or_default();
    let mut issue = acme.get(acme_key)?.context("Acme's issue is gone")?;
    issue.status = "Closed".into();
    acme.update(&issue, Origin::User)?;
    let pushed = tenants[0].issues_changed(&[acme_key.as_str()])?;
    writeln!(
        out,
        "acme: closed {acme_key}, pushed the change: {pushed:?}"
    )?;
    while globex
        .get(&globex_key)?
        .is_none_or(|i| i.status != "Closed")
    {
        if Instant::now() > deadline {
            bail!("Globex's {globex_key} was not closed within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writeln!(out, "globex: {globex_key} is Closed too")?;
    for tenant in &tenants {
        let errors = tenant.sync_errors()?;
        writeln!(out, "{}: {} sync errors", tenant.name(), errors.len())?;
    }
    Ok(())
}

#[allow(dead_code)] // `tests/embed.rs` includes this file and calls `run`.
fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    run(dir.path(), &mut std::io::stdout())
}
