//! The embedding example (`host/examples/embed.rs`) runs here, and what it prints is checked;
//! and what the embedding API promises beyond it: one compile per processor, tenants
//! refused when they would collide, removal and re-adding, pushed changes.

#[allow(dead_code)]
#[path = "../host/examples/embed.rs"]
mod example;

use std::sync::Arc;
use std::time::{Duration, Instant};

use twinsync::model::Issue;
use twinsync::tracker::{Origin, ReferenceTracker, Tracker};
use twinsync::{ConnectionConfig, Host, HostConfig, HostEvent, Processor, Pushed, TenantConfig};

#[test]
fn the_example_syncs_one_issue_of_each_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let result = example::run(dir.path(), &mut out);
    let out = String::from_utf8(out).unwrap();
    result.unwrap_or_else(|e| panic!("{e:#}\n{out}"));
    for line in [
        "tenant acme: instance Acme, connected to Globex",
        "tenant globex: instance Globex, connected to Acme",
        "processors compiled for both tenants: 1",
        "acme: ACME-1 is synced with GLX-",
        "globex: GLX-1 is synced with ACME-",
        "globex: GLX-",
        "acme: 0 sync errors",
        "globex: 0 sync errors",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    assert!(out.contains("is Closed too"), "{out}");
    assert!(out.contains("Incoming created"), "{out}");
}

/// Two tenants on reference trackers under `dir`, connected, running `processor`.
fn pair(
    host: &Host,
    dir: &std::path::Path,
    processor: Processor,
) -> [(twinsync::Tenant, Arc<ReferenceTracker>); 2] {
    let mut tenants = Vec::new();
    for (name, instance, other, project) in [("a", "A", "B", "AA"), ("b", "B", "A", "BB")] {
        let tracker =
            Arc::new(ReferenceTracker::new(&dir.join(format!("{name}.db")), project).unwrap());
        let tenant = host
            .add_tenant(
                TenantConfig::new(name, instance, tracker.clone())
                    .connection(ConnectionConfig::new("a-b", other).processor(processor.clone()))
                    .push_changes(),
            )
            .unwrap();
        tenants.push((tenant, tracker));
    }
    tenants.try_into().ok().unwrap()
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "not within a minute: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tenants_share_compiled_processors_and_cannot_collide() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(HostConfig::new(dir.path())).unwrap();
    let [(_, _), (_, tracker)] = pair(&host, dir.path(), Processor::builtin("mirror"));
    assert_eq!(host.compiled_processors(), 1);
    assert_eq!(host.tenants(), ["a", "b"]);

    let again = |name: &str, instance: &str| {
        host.add_tenant(TenantConfig::new(name, instance, tracker.clone()))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    };
    assert!(
        again("a", "C").contains("already in the host"),
        "{}",
        again("a", "C")
    );
    assert!(
        again("c", "B").contains("instance `B` is tenant `b`'s"),
        "{}",
        again("c", "B")
    );
    assert!(
        again("../c", "C").contains("tenant name"),
        "{}",
        again("../c", "C")
    );
    let unknown = host
        .add_tenant(
            TenantConfig::new("c", "C", tracker.clone()).connection(
                ConnectionConfig::new("c-a", "A").processor(Processor::builtin("nope")),
            ),
        )
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(
        unknown.contains("no built-in processor `nope`"),
        "{unknown}"
    );
    assert_eq!(host.tenants(), ["a", "b"]);

    // Tenants share the host's workers: they take none of its parallel calls of their own,
    // so a host sized for two workers takes a third tenant (and a thousandth).
    let small = tempfile::tempdir().unwrap();
    let config = HostConfig {
        workers: 2,
        max_parallel_calls: 3,
        ..HostConfig::new(small.path())
    };
    let small_host = Host::start(config).unwrap();
    let [_, _] = pair(&small_host, small.path(), Processor::builtin("mirror"));
    small_host
        .add_tenant(TenantConfig::new("c", "C", tracker.clone()))
        .unwrap();
    assert_eq!(small_host.tenants(), ["a", "b", "c"]);

    // Another host on the same directory cannot run a tenant that runs here.
    let other = Host::start(HostConfig::new(dir.path())).unwrap();
    let taken = other
        .add_tenant(TenantConfig::new("a", "A", tracker.clone()))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(
        taken.contains("tenant `a`") && taken.contains("is running on the data directory"),
        "{taken}"
    );
}

#[test]
fn a_pushed_change_syncs_and_a_removed_tenant_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(HostConfig::new(dir.path())).unwrap();
    let events = host.subscribe();
    let [(a, a_issues), (b, b_issues)] = pair(&host, dir.path(), Processor::builtin("mirror"));
    let key = a_issues
        .create(
            &Issue {
                summary: "rev 0".into(),
                status: "Open".into(),
                ..Issue::default()
            },
            Origin::User,
        )
        .unwrap()
        .key
        .unwrap();
    assert_eq!(
        a.issues_changed(&[key.as_str()]).unwrap(),
        [Pushed::NotSynced]
    );
    a.exalate("a-b", &key).unwrap();
    let b_key = || {
        host.tenant("b")
            .and_then(|b| b.twins().ok())
            .and_then(|t| t.first().map(|t| t.local_key.clone()))
    };
    eventually("B creates its issue", || b_key().is_some());
    let b_key = b_key().unwrap();
    // The embedder is told: an outgoing event on A, an incoming one on B.
    let mut seen = Vec::new();
    while let Ok(event) = events.recv_timeout(Duration::from_secs(5)) {
        if let HostEvent::Synced { tenant, kind, .. } = event {
            seen.push((tenant, kind));
        }
        if seen.len() >= 2 {
            break;
        }
    }
    assert!(
        seen.contains(&("a".into(), twinsync::EventKind::Outgoing)),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("b".into(), twinsync::EventKind::Incoming)),
        "{seen:?}"
    );

    // Not polled: a change nobody pushes stays here (until reconciliation, every 10 minutes).
    let edit = |summary: &str| {
        let mut issue = a_issues.get(&key).unwrap().unwrap();
        issue.summary = summary.into();
        a_issues.update(&issue, Origin::User).unwrap();
    };
    edit("rev 1");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b_issues.get(&b_key).unwrap().unwrap().summary, "rev 0");
    assert!(matches!(
        a.issues_changed(&[key.as_str()]).unwrap()[..],
        [Pushed::Queued(1)]
    ));
    eventually("the pushed change reaches B", || {
        b_issues.get(&b_key).unwrap().unwrap().summary == "rev 1"
    });

    // B goes; A's change waits in A's outbox, and B takes it once it is back.
    host.remove_tenant("b").unwrap();
    assert!(host.tenant("b").is_none());
    let gone = b.twins().unwrap_err().to_string();
    assert!(gone.contains("tenant `b` is not running"), "{gone}");
    edit("rev 2");
    a.issues_changed(&[key.as_str()]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b_issues.get(&b_key).unwrap().unwrap().summary, "rev 1");
    host.add_tenant(
        TenantConfig::new("b", "B", b_issues.clone())
            .connection(ConnectionConfig::new("a-b", "A").processor(Processor::builtin("mirror")))
            .push_changes(),
    )
    .unwrap();
    eventually("B takes the change made while it was away", || {
        b_issues.get(&b_key).unwrap().unwrap().summary == "rev 2"
    });
    assert!(a.sync_errors().unwrap().is_empty());
}

#[test]
fn a_sync_error_is_reported_to_the_embedder_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(HostConfig::new(dir.path())).unwrap();
    let events = host.subscribe();
    let scripted = std::fs::read(twinsync_tests::SCRIPTED).unwrap();
    let [(a, a_issues), (b, _)] = pair(&host, dir.path(), Processor::wasm("scripted", scripted));
    // `scripted` refuses this issue on B's side.
    let issue = twinsync_tests::scripted_issue("refuse me", "error");
    let key = a_issues.create(&issue, Origin::User).unwrap().key.unwrap();
    a.exalate("a-b", &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let reported = loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(HostEvent::SyncError {
                tenant,
                kind,
                error_kind,
                message,
                event,
                ..
            }) => {
                break (tenant, kind, error_kind, message, event);
            }
            Ok(_) => {}
            Err(_) => panic!("no sync error reported within a minute"),
        }
    };
    let (tenant, kind, error_kind, message, event) = reported;
    assert_eq!(
        (tenant.as_str(), kind),
        ("b", twinsync::EventKind::Incoming)
    );
    assert_eq!(error_kind, "processor-error");
    assert!(message.contains("refusing issue on purpose"), "{message}");
    let errors = b.sync_errors().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].event, event);
    assert_eq!(errors[0].kind, "processor-error");
    b.skip(&event).unwrap();
    assert!(b.sync_errors().unwrap().is_empty());
}

#[test]
fn reconciliation_finds_a_change_nobody_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(HostConfig::new(dir.path())).unwrap();
    // A tracker without a change feed: only the comparison can find the change.
    let trackers = [
        Arc::new(example::MemoryTracker::new("AA")),
        Arc::new(example::MemoryTracker::new("BB")),
    ];
    let mut tenants = Vec::new();
    for ((name, instance, other), tracker) in [("a", "A", "B"), ("b", "B", "A")]
        .into_iter()
        .zip(&trackers)
    {
        tenants.push(
            host.add_tenant(
                TenantConfig::new(name, instance, tracker.clone())
                    .connection(ConnectionConfig::new("a-b", other))
                    .push_changes()
                    .verify_every(Some(Duration::from_millis(400))),
            )
            .unwrap(),
        );
    }
    let issue = Issue {
        summary: "rev 0".into(),
        status: "Open".into(),
        ..Issue::default()
    };
    let key = trackers[0]
        .create(&issue, Origin::User)
        .unwrap()
        .key
        .unwrap();
    tenants[0].exalate("a-b", &key).unwrap();
    let b_key = || {
        tenants[1]
            .twins()
            .ok()
            .and_then(|t| t.first().map(|t| t.local_key.clone()))
    };
    eventually("B creates its issue", || b_key().is_some());
    let b_key = b_key().unwrap();

    let mut changed = trackers[0].get(&key).unwrap().unwrap();
    changed.summary = "changed, never pushed".into();
    trackers[0].update(&changed, Origin::User).unwrap();
    eventually("reconciliation sends the change", || {
        trackers[1].get(&b_key).unwrap().unwrap().summary == "changed, never pushed"
    });
}

/// A tracker whose change feed panics (a bug in the embedder's code).
struct PanickingFeed(ReferenceTracker);

impl Tracker for PanickingFeed {
    fn get(&self, key: &str) -> Result<Option<Issue>, twinsync::tracker::TrackerError> {
        self.0.get(key)
    }
    fn create(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
    ) -> Result<Issue, twinsync::tracker::TrackerError> {
        self.0.create(issue, origin)
    }
    fn update(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
    ) -> Result<Issue, twinsync::tracker::TrackerError> {
        self.0.update(issue, origin)
    }
    fn changes(
        &self,
        _cursor: Option<&str>,
        _limit: usize,
    ) -> Result<twinsync::tracker::ChangeBatch, twinsync::tracker::TrackerError> {
        panic!("the change feed is broken");
    }
    fn search(
        &self,
        query: &twinsync::tracker::Query,
    ) -> Result<Vec<String>, twinsync::tracker::TrackerError> {
        self.0.search(query)
    }
}

#[test]
fn a_tenant_whose_loop_fails_is_reported_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(HostConfig::new(dir.path())).unwrap();
    let events = host.subscribe();
    let broken = ReferenceTracker::new(&dir.path().join("broken.db"), "X").unwrap();
    host.add_tenant(TenantConfig::new(
        "broken",
        "X",
        Arc::new(PanickingFeed(broken)),
    ))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let reason = loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(HostEvent::TenantStopped { tenant, reason }) => {
                assert_eq!(tenant, "broken");
                break reason;
            }
            Ok(_) => {}
            Err(_) => panic!("no TenantStopped within a minute"),
        }
    };
    assert!(reason.contains("the change feed is broken"), "{reason}");
    // The host and its other tenants are unaffected.
    let [(a, a_issues), _] = pair(&host, dir.path(), Processor::builtin("mirror"));
    let key = a_issues
        .create(
            &Issue {
                summary: "still syncing".into(),
                status: "Open".into(),
                ..Issue::default()
            },
            Origin::User,
        )
        .unwrap()
        .key
        .unwrap();
    a.exalate("a-b", &key).unwrap();
    eventually("B creates its issue", || {
        host.tenant("b")
            .unwrap()
            .twins()
            .is_ok_and(|t| t.len() == 1)
    });
    let stopped = host
        .tenant("broken")
        .unwrap()
        .twins()
        .unwrap_err()
        .to_string();
    assert!(stopped.contains("is not running"), "{stopped}");
    host.remove_tenant("broken").unwrap();
}
