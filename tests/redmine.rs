//! twinsync on a real Redmine (5, Debian's packages, started by `scripts/redmine`): two
//! Redmine projects kept in sync, Redmine with the reference tracker, Redmine going down in
//! the middle of a run, repeated sync events, the change feed, and bad configuration.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use twinsync::clock::SystemClock;
use twinsync::model::{Comment, FieldValue, Issue, User};
use twinsync::tracker::{Change, Origin, RedmineTracker, ReferenceTracker, Tracker, TrackerError};
use twinsync_tests::redmine::{Redmine, unique};
use twinsync_tests::trackers::TrackerPair;
use twinsync_tests::{CONNECTION, failed, redmine_or_skip};

const WAIT: Duration = Duration::from_secs(60);

/// What must be equal on both sides of a twin.
#[derive(Debug, PartialEq)]
struct Content {
    summary: String,
    description: Option<String>,
    status: String,
    priority: Option<String>,
    issue_type: String,
    tier: Option<FieldValue>,
    comments: Vec<String>,
}

fn content(issue: &Issue) -> Content {
    let mut comments: Vec<String> = issue.comments.iter().map(|c| c.body.clone()).collect();
    comments.sort();
    Content {
        summary: issue.summary.clone(),
        description: issue.description.clone(),
        status: issue.status.clone(),
        priority: issue.priority.clone(),
        issue_type: issue.issue_type.clone(),
        tier: issue.custom_field("Customer tier").cloned(),
        comments,
    }
}

fn get(tracker: &dyn Tracker, key: &str) -> Issue {
    tracker.get(key).expect("get").expect("the issue exists")
}

fn remote_key(issue: &Issue) -> Option<&str> {
    issue.custom_text("remote issue key")
}

fn id(key: &str) -> u64 {
    key.trim_start_matches('#').parse().expect("a Redmine key")
}

#[test]
fn two_redmine_projects_stay_in_sync() {
    let redmine = redmine_or_skip!();
    let (internal, external) = (redmine.tracker("internal"), redmine.tracker("external"));
    let pair = TrackerPair::new(internal.clone(), external.clone(), "remote-key");
    let subject = unique("Customer cannot log in");
    let internal_id = redmine.create_issue("internal", &subject);
    let key = format!("#{internal_id}");
    pair.drain(WAIT);

    // The seed scenario: exalate; External creates the issue and syncs back its key.
    pair.internal.exalate(CONNECTION, &key).expect("exalate");
    pair.drain(WAIT);
    let external_key = pair.external_key(&key).expect("External created the twin");
    let external_id = id(&external_key);
    assert_eq!(
        redmine.issues_with_subject("external", &subject),
        vec![external_id]
    );
    assert_eq!(
        remote_key(&get(&*external, &external_key)),
        Some(key.as_str())
    );
    assert_eq!(
        remote_key(&get(&*internal, &key)),
        Some(external_key.as_str())
    );

    // A status change on each side.
    let status = |name: &str| json!({"status_id": redmine.id_of("issue_statuses", name)});
    redmine.update_issue(internal_id, status("In Progress"));
    pair.drain(WAIT);
    assert_eq!(get(&*external, &external_key).status, "In Progress");
    redmine.update_issue(external_id, status("Feedback"));
    pair.drain(WAIT);
    assert_eq!(get(&*internal, &key).status, "Feedback");

    // A comment on each side.
    redmine.update_issue(internal_id, json!({"notes": "Which browser?"}));
    pair.drain(WAIT);
    redmine.update_issue(external_id, json!({"notes": "Firefox 140, on Linux"}));
    pair.drain(WAIT);

    // A custom field change.
    let tier = redmine.id_of("custom_fields", "Customer tier");
    redmine.update_issue(
        internal_id,
        json!({"custom_fields": [{"id": tier, "value": "Gold"}]}),
    );
    pair.drain(WAIT);

    let (int, ext) = (get(&*internal, &key), get(&*external, &external_key));
    assert_eq!(content(&int), content(&ext));
    assert_eq!(content(&int).status, "Feedback");
    assert_eq!(content(&int).tier, Some(FieldValue::Option("Gold".into())));
    assert_eq!(
        content(&int).comments,
        vec!["Firefox 140, on Linux", "Which browser?"],
        "each comment once on each side"
    );
    // A copied comment keeps its author's name and time: that is how an echo is recognised.
    let original = &int.comments[0];
    let copy = &ext.comments[0];
    assert_eq!(original.body, copy.body);
    assert_eq!(original.created, copy.created);
    assert_eq!(
        copy.author.as_ref().map(|a| a.display_name.as_str()),
        Some("Redmine Admin")
    );
    // twinsync's writes came back as nothing: both queues are empty, and a last look at
    // both projects finds nothing to send.
    pair.drain(WAIT);
    assert!(pair.unfinished().is_empty());
}

#[test]
fn a_redmine_issue_and_a_reference_issue_sync_both_ways() {
    let redmine = redmine_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let reference = Arc::new(
        ReferenceTracker::open(&dir.path().join("tracker.db"), "EXT", Arc::new(SystemClock))
            .unwrap(),
    );
    let internal = redmine.tracker("internal");
    let pair = TrackerPair::new(internal.clone(), reference.clone(), "remote-key");

    // Redmine to the reference tracker.
    let subject = unique("Invoice totals are wrong");
    let redmine_id = redmine.create_issue("internal", &subject);
    let key = format!("#{redmine_id}");
    redmine.update_issue(
        redmine_id,
        json!({"description": "Off by one cent\nin every row"}),
    );
    pair.drain(WAIT);
    pair.internal.exalate(CONNECTION, &key).unwrap();
    pair.drain(WAIT);
    let reference_key = pair
        .external_key(&key)
        .expect("twin on the reference tracker");
    let copy = get(&*reference, &reference_key);
    assert_eq!(copy.summary, subject);
    assert_eq!(
        copy.description.as_deref(),
        Some("Off by one cent\nin every row")
    );
    assert_eq!(
        (copy.status.as_str(), copy.issue_type.as_str()),
        ("New", "Bug")
    );
    assert_eq!(remote_key(&copy), Some(key.as_str()));
    assert_eq!(
        remote_key(&get(&*internal, &key)),
        Some(reference_key.as_str())
    );

    // A change on the reference side comes back to Redmine.
    let mut edited = copy.clone();
    edited.status = "Resolved".into();
    edited.comments.push(Comment {
        id: String::new(),
        author: Some(User {
            id: "u7".into(),
            display_name: "Grace Hopper".into(),
            email: None,
        }),
        body: "Fixed in the rounding code".into(),
        created: String::new(),
        updated: None,
        internal: false,
    });
    reference.update(&edited, Origin::User).unwrap();
    pair.drain(WAIT);
    let back = get(&*internal, &key);
    assert_eq!(back.status, "Resolved");
    assert_eq!(back.comments.len(), 1, "{:?}", back.comments);
    let note = &redmine.issue(redmine_id)["journals"];
    assert!(
        note.as_array()
            .unwrap()
            .iter()
            .any(|j| j["notes"].as_str().is_some_and(|n| n.starts_with(
                "Fixed in the rounding code\n\n[twinsync] comment by Grace Hopper at "
            ))),
        "the copy says who wrote it: {note}"
    );
    assert_eq!(
        content(&back).comments,
        content(&get(&*reference, &reference_key)).comments
    );

    // The reference tracker to Redmine.
    let other = unique("Export button missing");
    let created = reference
        .create(
            &Issue {
                summary: other.clone(),
                status: "New".into(),
                issue_type: "Feature".into(),
                priority: Some("High".into()),
                ..Issue::default()
            },
            Origin::User,
        )
        .unwrap();
    let other_key = created.key.unwrap();
    pair.drain(WAIT);
    pair.external.exalate(CONNECTION, &other_key).unwrap();
    pair.drain(WAIT);
    let redmine_key = pair.internal_key(&other_key).expect("twin on Redmine");
    let in_redmine = get(&*internal, &redmine_key);
    assert_eq!(in_redmine.summary, other);
    assert_eq!(in_redmine.priority.as_deref(), Some("High"));
    assert_eq!(remote_key(&in_redmine), Some(other_key.as_str()));
    assert_eq!(
        redmine.issues_with_subject("internal", &other),
        vec![id(&redmine_key)]
    );
    assert_eq!(
        remote_key(&get(&*reference, &other_key)),
        Some(redmine_key.as_str())
    );
    assert!(pair.unfinished().is_empty());
}

#[test]
fn events_wait_while_redmine_is_down_and_drain_when_it_is_back() {
    let Some(_) = twinsync_tests::redmine::redmine() else {
        return;
    };
    // A server of its own, to stop it without disturbing the other tests.
    let server = Redmine::start(twinsync_tests::process::free_port()).expect("a second Redmine");
    let dir = tempfile::tempdir().unwrap();
    let reference = Arc::new(
        ReferenceTracker::open(&dir.path().join("tracker.db"), "INT", Arc::new(SystemClock))
            .unwrap(),
    );
    let external = server.tracker("external");
    let pair = TrackerPair::new(reference.clone(), external.clone(), "mirror");
    let exalate = |summary: &str| {
        let created = reference
            .create(
                &Issue {
                    summary: summary.into(),
                    status: "New".into(),
                    // The reference tracker's default, Task, is no tracker of Redmine's.
                    issue_type: "Bug".into(),
                    ..Issue::default()
                },
                Origin::User,
            )
            .unwrap();
        let key = created.key.unwrap();
        pair.internal.exalate(CONNECTION, &key).unwrap();
        key
    };
    let first = unique("Synced before the outage");
    let first_key = exalate(&first);
    pair.drain(WAIT);
    assert!(pair.external_key(&first_key).is_some());

    server.stop();
    let edited = unique("Edited during the outage");
    let mut issue = get(&*reference, &first_key);
    issue.summary = edited.clone();
    issue.comments.push(Comment {
        id: String::new(),
        author: None,
        body: "Written while Redmine was down".into(),
        created: String::new(),
        updated: None,
        internal: false,
    });
    reference.update(&issue, Origin::User).unwrap();
    let second = unique("Created during the outage");
    let second_key = exalate(&second);
    pair.run_for(Duration::from_secs(3));
    let waiting = pair.unfinished();
    assert!(
        failed(&pair.external).is_empty(),
        "no sync errors: {waiting:#?}"
    );
    assert!(
        waiting
            .iter()
            .any(|e| e.error_kind.as_deref() == Some("tracker-unavailable") && e.attempts >= 1),
        "events wait with a transient error: {waiting:#?}"
    );

    server.restart();
    pair.drain(WAIT);
    let first_copy = pair.external_key(&first_key).unwrap();
    let synced = get(&*external, &first_copy);
    assert_eq!(synced.summary, edited);
    assert_eq!(synced.comments.len(), 1, "{:?}", synced.comments);
    let second_copy = pair
        .external_key(&second_key)
        .expect("created once Redmine was back");
    assert_eq!(
        server.issues_with_subject("external", &second),
        vec![id(&second_copy)],
        "created exactly once"
    );
    assert_eq!(
        server.issues_with_subject("external", &first),
        Vec::<u64>::new()
    );
    assert_eq!(
        server.issues_with_subject("external", &edited),
        vec![id(&first_copy)]
    );
    server.stop();
}

/// A crash between the tracker write and the node's commit repeats the event.
#[test]
fn a_repeated_sync_event_writes_once() {
    let redmine = redmine_or_skip!();
    let tracker = redmine.tracker("internal");
    let subject = unique("Written once");
    let event = unique("Test").replace([' ', '[', ']'], "");
    let comment = |body: &str| Comment {
        id: String::new(),
        author: Some(User {
            id: "9".into(),
            display_name: "Ada Lovelace".into(),
            email: None,
        }),
        body: body.into(),
        created: "2026-01-02T03:04:05Z".into(),
        updated: None,
        internal: false,
    };
    let issue = Issue {
        summary: subject.clone(),
        status: "New".into(),
        comments: vec![comment("First words")],
        ..Issue::default()
    };
    let create = Origin::Sync {
        event_id: &format!("{event}-create"),
    };
    let created = tracker.create(&issue, create).unwrap();
    let again = tracker.create(&issue, create).unwrap();
    assert_eq!(created.key, again.key);
    assert_eq!(redmine.issues_with_subject("internal", &subject).len(), 1);
    assert_eq!(again.comments.len(), 1);
    assert_eq!(again.comments[0].created, "2026-01-02T03:04:05Z");

    let mut changed = again.clone();
    changed.status = "In Progress".into();
    changed.comments.push(comment("Second words"));
    let update = Origin::Sync {
        event_id: &format!("{event}-update"),
    };
    tracker.update(&changed, update).unwrap();
    // Someone moves the status on before the event is repeated: the repeat must not undo it.
    let key = created.key.clone().unwrap();
    redmine.update_issue(
        id(&key),
        json!({"status_id": redmine.id_of("issue_statuses", "Feedback")}),
    );
    let journals = || {
        redmine.issue(id(&key))["journals"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = journals();
    let repeated = tracker.update(&changed, update).unwrap();
    assert_eq!(journals(), before);
    assert_eq!(repeated.status, "Feedback");
    assert_eq!(repeated.comments.len(), 2);

    // A crash part-way: the first of two comments was written, the event not finished.
    let partial = format!("{event}-partial");
    let mut two_more = tracker.get(&key).unwrap().unwrap();
    two_more.comments.push(comment("Third words"));
    tracker
        .update(&two_more, Origin::Sync { event_id: &partial })
        .unwrap();
    let field = redmine.id_of("custom_fields", "twinsync event");
    redmine.update_issue(
        id(&key),
        json!({"custom_fields": [{"id": field, "value": format!("{partial} (in progress)")}]}),
    );
    two_more.comments.push(comment("Fourth words"));
    let resumed = tracker
        .update(&two_more, Origin::Sync { event_id: &partial })
        .unwrap();
    let bodies: Vec<&str> = resumed.comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["First words", "Second words", "Third words", "Fourth words"]
    );
    let marker = redmine.issue(id(&key))["custom_fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == field)
        .map(|f| f["value"].clone());
    assert_eq!(marker, Some(json!(partial)), "the event is marked done");
}

#[test]
fn users_fields_and_private_comments_map_both_ways() {
    let redmine = redmine_or_skip!();
    let tracker = redmine.tracker("internal");
    let subject = unique("Mapped");
    let mut issue = tracker
        .create(
            &Issue {
                summary: subject,
                issue_type: "Feature".into(),
                priority: Some("Urgent".into()),
                description: Some("Two\nlines".into()),
                ..Issue::default()
            },
            Origin::User,
        )
        .unwrap();
    assert_eq!(issue.status, "New", "Redmine's default status");
    assert_eq!(
        (issue.issue_type.as_str(), issue.priority.as_deref()),
        ("Feature", Some("Urgent"))
    );
    let key = issue.key.clone().unwrap();

    // A user of another tracker is found by name; a custom field by name, typed.
    issue.assignee = Some(User {
        id: "elsewhere-42".into(),
        display_name: "Redmine Admin".into(),
        email: None,
    });
    issue.set_custom_field("Customer tier", FieldValue::Option("Silver".into()));
    issue.comments.push(Comment {
        id: String::new(),
        author: None,
        body: "Only for the team".into(),
        created: String::new(),
        updated: None,
        internal: true,
    });
    let stored = tracker.update(&issue, Origin::User).unwrap();
    let assignee = stored.assignee.clone().expect("assigned");
    assert_eq!(assignee.display_name, "Redmine Admin");
    assert_eq!(assignee.email.as_deref(), Some("admin@example.net"));
    assert_eq!(
        stored.custom_field("Customer tier"),
        Some(&FieldValue::Option("Silver".into()))
    );
    assert!(
        stored.custom_field("twinsync event").is_none(),
        "twinsync's own field stays hidden"
    );
    assert_eq!(stored.description.as_deref(), Some("Two\nlines"));
    let comment = &stored.comments[0];
    assert_eq!(
        (comment.body.as_str(), comment.internal),
        ("Only for the team", true)
    );
    assert_eq!(
        comment.author.as_ref().map(|a| a.display_name.as_str()),
        Some("twin sync"),
        "written through twinsync's key for nobody in particular"
    );

    // What Redmine refuses comes back as a rejection that says why.
    let mut unknown = stored.clone();
    unknown.assignee = Some(User {
        id: "x".into(),
        display_name: "Nobody Known".into(),
        email: None,
    });
    let error = tracker.update(&unknown, Origin::User).unwrap_err();
    assert!(
        matches!(&error, TrackerError::Rejected(m) if m.starts_with("no Redmine user matches `Nobody Known`")),
        "{error}"
    );
    let mut bad_option = stored.clone();
    bad_option.set_custom_field("Customer tier", FieldValue::Option("Platinum".into()));
    let error = tracker.update(&bad_option, Origin::User).unwrap_err();
    assert!(
        matches!(&error, TrackerError::Rejected(m) if m.ends_with("Customer tier is not included in the list")),
        "{error}"
    );
    assert!(matches!(
        tracker.get("123"),
        Err(TrackerError::Rejected(m)) if m.contains("look like #123")
    ));
    assert_eq!(tracker.get("#999999999").unwrap(), None);
    let found = tracker
        .search(
            &twinsync::tracker::Query::parse("summary~mapped type=feature priority=urgent")
                .unwrap(),
        )
        .unwrap();
    assert!(found.contains(&key), "{found:?}");
}

/// Read the feed as the node does: keep the cursor of every batch that has changes.
fn poll(tracker: &RedmineTracker, cursor: &mut Option<String>) -> Vec<Change> {
    let batch = tracker.changes(cursor.as_deref(), 1_000).unwrap();
    if !batch.changes.is_empty() {
        *cursor = batch.cursor;
    }
    batch.changes
}

fn changes_of(changes: &[Change], key: &str) -> Vec<bool> {
    changes
        .iter()
        .filter(|c| c.key == key)
        .map(|c| c.by_sync)
        .collect()
}

#[test]
fn the_change_feed_misses_nothing_and_repeats_nothing() {
    let redmine = redmine_or_skip!();
    let tracker = redmine.tracker("internal");
    let mut cursor = None;
    poll(&tracker, &mut cursor);
    let issue_id = redmine.create_issue("internal", &unique("Watched"));
    let key = format!("#{issue_id}");
    assert_eq!(changes_of(&poll(&tracker, &mut cursor), &key), [false]);
    assert_eq!(
        changes_of(&poll(&tracker, &mut cursor), &key),
        Vec::<bool>::new()
    );

    // Two changes in quick succession (usually within one second: same `updated_on`).
    redmine.update_issue(issue_id, json!({"notes": "one"}));
    assert_eq!(changes_of(&poll(&tracker, &mut cursor), &key), [false]);
    redmine.update_issue(issue_id, json!({"notes": "two"}));
    assert_eq!(changes_of(&poll(&tracker, &mut cursor), &key), [false]);

    // twinsync's own write is reported as such; one through it for a person is not.
    let mut issue = tracker.get(&key).unwrap().unwrap();
    issue.description = Some("written by a sync event".into());
    let event = unique("Feed").replace([' ', '[', ']'], "");
    tracker
        .update(&issue, Origin::Sync { event_id: &event })
        .unwrap();
    assert_eq!(changes_of(&poll(&tracker, &mut cursor), &key), [true]);
    issue.description = Some("written by an operator".into());
    tracker.update(&issue, Origin::User).unwrap();
    assert_eq!(changes_of(&poll(&tracker, &mut cursor), &key), [false]);

    // After a restart (a new tracker, the stored cursor) nothing comes again, and what
    // happened meanwhile does.
    let restarted = redmine.tracker("internal");
    assert_eq!(
        changes_of(&poll(&restarted, &mut cursor), &key),
        Vec::<bool>::new()
    );
    redmine.update_issue(issue_id, json!({"notes": "three"}));
    assert_eq!(changes_of(&poll(&restarted, &mut cursor), &key), [false]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        changes_of(&poll(&restarted, &mut cursor), &key),
        Vec::<bool>::new()
    );
}

#[test]
fn bad_configuration_gives_one_clear_error_each() {
    let redmine = redmine_or_skip!();
    let error = |settings| match RedmineTracker::connect(&settings) {
        Ok(_) => panic!("connected with a bad configuration"),
        Err(e) => format!("{e:#}"),
    };
    let port = twinsync_tests::process::free_port();
    let mut wrong_url = redmine.settings("internal");
    wrong_url.url = format!("http://127.0.0.1:{port}");
    let message = error(wrong_url);
    assert!(
        message.starts_with(&format!(
            "cannot reach Redmine at http://127.0.0.1:{port} (connection refused)"
        )),
        "{message}"
    );

    let mut wrong_key = redmine.settings("internal");
    wrong_key.api_key = twinsync::config::Secret::new("0123456789abcdef0123456789abcdef01234567");
    let message = error(wrong_key);
    assert!(message.contains("refused the API key (401)"), "{message}");

    let message = error(redmine.settings("no-such-project"));
    assert!(
        message.contains("has no project `no-such-project`"),
        "{message}"
    );

    let mut no_field = redmine.settings("internal");
    no_field.event_field = "no such field".into();
    let message = error(no_field);
    assert!(
        message.contains("has no issue custom field `no such field`"),
        "{message}"
    );

    let tracker = redmine.tracker("internal");
    let issue = Issue {
        summary: unique("Bad status"),
        status: "Bogus".into(),
        ..Issue::default()
    };
    let rejected = tracker.create(&issue, Origin::User).unwrap_err();
    assert_eq!(
        rejected,
        TrackerError::Rejected(
            "unknown status `Bogus`; Redmine has: New, In Progress, Resolved, Feedback, Closed, Rejected".into()
        )
    );
}

/// `twinsync serve` checks its Redmine before anything else, and says what is wrong.
#[test]
fn serve_stops_at_once_on_a_wrong_api_key() {
    let redmine = redmine_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        dir.path().join("redmine.key"),
        "0123456789abcdef0123456789abcdef01234567\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "instance = \"Internal\"\n\n[tracker]\nkind = \"redmine\"\nurl = \"{}\"\napi-key-file = \"redmine.key\"\nproject = \"internal\"\n",
            redmine.url
        ),
    )
    .unwrap();
    let output = std::process::Command::new(twinsync_tests::twinsync_binary!())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("refused the API key (401)"), "{stderr}");
}

/// A `twinsync serve` process, killed when dropped.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two `twinsync serve` processes: Internal on Redmine, External on the reference tracker,
/// over the signed HTTP protocol, driven through the admin API.
#[test]
fn serve_syncs_a_redmine_project_with_a_reference_node() {
    use twinsync_tests::process::{NodeProcess, NodeSpec, SECRET, TOKEN, eventually, free_port};
    let redmine = redmine_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let (internal_port, internal_admin, external_port) = (free_port(), free_port(), free_port());
    let internal_dir = dir.path().join("internal");
    std::fs::create_dir_all(&internal_dir).unwrap();
    std::fs::write(internal_dir.join("redmine.key"), &redmine.twinsync_key).unwrap();
    let config = internal_dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"instance = "Internal"
data-dir = "data"
workers = 2
listen = "127.0.0.1:{internal_port}"

[admin]
listen = "127.0.0.1:{internal_admin}"
token = "{TOKEN}"

[tracker]
kind = "redmine"
url = "{url}"
api-key-file = "redmine.key"
project = "internal"
poll-interval-ms = 200

[[connection]]
name = "{CONNECTION}"
remote-instance = "External"
remote-url = "http://127.0.0.1:{external_port}"
incoming = "remote-key"
outgoing = "remote-key"
secret = "{SECRET}"
"#,
            url = redmine.url
        ),
    )
    .unwrap();
    let log = std::fs::File::create(internal_dir.join("serve.log")).unwrap();
    let _internal = Serving(
        std::process::Command::new(twinsync_tests::twinsync_binary!())
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let external = NodeProcess::start(
        twinsync_tests::twinsync_binary!(),
        dir.path(),
        NodeSpec {
            instance: "External",
            project: "EXT",
            remote: "Internal",
            port: external_port,
            admin_port: free_port(),
            remote_port: internal_port,
            processor: "remote-key",
            extra: "",
        },
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let admin = |method: &str, path: &str, body: serde_json::Value| {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{internal_admin}{path}"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .unwrap();
        let mut answer = agent.run(request).ok()?;
        let status = answer.status().as_u16();
        Some((
            status,
            answer.body_mut().read_json::<serde_json::Value>().ok()?,
        ))
    };
    let serve_log = || std::fs::read_to_string(internal_dir.join("serve.log")).unwrap_or_default();
    eventually(Duration::from_secs(30), "Internal serves", || {
        admin("GET", "/v1/queue", json!(null)).is_some()
    });

    let subject = unique("Reported by phone");
    let issue_id = redmine.create_issue("internal", &subject);
    let key = format!("#{issue_id}");
    let (status, shown) = admin("GET", &format!("/v1/issues/%23{issue_id}"), json!(null)).unwrap();
    assert_eq!(
        (status, &shown["summary"]),
        (200, &json!(subject)),
        "{}",
        serve_log()
    );
    let (status, exalated) = admin(
        "POST",
        "/v1/exalate",
        json!({"connection": CONNECTION, "keys": [key]}),
    )
    .unwrap();
    assert_eq!(
        (status, &exalated["errors"]),
        (200, &json!([])),
        "{exalated}"
    );

    let internal = redmine.tracker("internal");
    eventually(
        WAIT,
        "Internal's Redmine issue learns External's key",
        || remote_key(&get(&*internal, &key)).is_some(),
    );
    let external_key = remote_key(&get(&*internal, &key)).unwrap().to_string();
    let copy = external
        .issue(&external_key)
        .expect("External has the issue");
    assert_eq!(copy["summary"], json!(subject));

    // A change in Redmine travels too; the writes twinsync made do not come back.
    redmine.update_issue(issue_id, json!({"notes": "Called back, fixed"}));
    eventually(WAIT, "the comment reaches External", || {
        external
            .issue(&external_key)
            .is_some_and(|i| i["comments"].as_array().is_some_and(|c| c.len() == 1))
    });
    std::thread::sleep(Duration::from_secs(2));
    let queue = admin("GET", "/v1/queue", json!(null)).unwrap().1;
    assert_eq!(queue[0]["pending"], 0, "{queue}");
    assert_eq!(get(&*internal, &key).comments.len(), 1, "{}", serve_log());
}

/// A sync write onto the issue as read: if someone changed it since, nothing is written
/// and the engine is told (`Changed`), so it decides again on the fresh issue.
#[test]
fn a_write_onto_an_issue_changed_since_it_was_read_is_refused() {
    let redmine = redmine_or_skip!();
    let tracker = redmine.tracker("internal");
    let subject = unique("Changed under the processor");
    let key = format!("#{}", redmine.create_issue("internal", &subject));
    let seen = get(&*tracker, &key);
    // A person edits the issue while the processor runs. (`updated_on` has one-second
    // resolution: the comparison is on the content too.)
    redmine.update_issue(id(&key), json!({"description": "typed by a person"}));
    let mut decided = seen.clone();
    decided.summary = format!("{subject} (synced)");
    let event = unique("Changed").replace([' ', '[', ']'], "");
    let refused = tracker.update_if(&decided, Origin::Sync { event_id: &event }, Some(&seen));
    assert_eq!(refused, Err(TrackerError::Changed(key.clone())));
    let now = get(&*tracker, &key);
    assert_eq!(now.summary, subject, "nothing was written");
    assert_eq!(now.description.as_deref(), Some("typed by a person"));
    // Decided again on the fresh issue, the write goes through and keeps the edit.
    let mut again = now.clone();
    again.summary = format!("{subject} (synced)");
    let stored = tracker
        .update_if(&again, Origin::Sync { event_id: &event }, Some(&now))
        .unwrap();
    assert_eq!(stored.summary, format!("{subject} (synced)"));
    assert_eq!(stored.description.as_deref(), Some("typed by a person"));
}

/// A sync write whose request reached Redmine but whose answer did not (a timeout): the
/// change is there, the event is still marked in progress. The repeat reads back, checks,
/// and only then marks the event done; a write is never marked done before its check.
#[test]
fn an_event_is_marked_done_only_after_its_read_back() {
    let redmine = redmine_or_skip!();
    let tracker = redmine.tracker("internal");
    let subject = unique("Timed out but taken");
    let key = format!("#{}", redmine.create_issue("internal", &subject));
    let event = unique("Taken").replace([' ', '[', ']'], "");
    let field = redmine.id_of("custom_fields", "twinsync event");
    let marker = || {
        redmine.issue(id(&key))["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == field)
            .map(|f| f["value"].clone())
    };
    // What the first attempt's PUT did before its answer was lost.
    redmine.update_issue(
        id(&key),
        json!({
            "subject": format!("{subject} (synced)"),
            "custom_fields": [{"id": field, "value": format!("{event} (in progress)")}],
        }),
    );
    let mut issue = get(&*tracker, &key);
    issue.summary = format!("{subject} (synced)");
    let repeated = tracker
        .update(&issue, Origin::Sync { event_id: &event })
        .unwrap();
    assert_eq!(repeated.summary, format!("{subject} (synced)"));
    assert_eq!(marker(), Some(json!(event)), "checked, then marked done");

    // A normal write: the event is marked done at the end, with the change in place.
    let next = format!("{event}-next");
    let mut changed = get(&*tracker, &key);
    changed.description = Some("written and checked".into());
    let stored = tracker
        .update(&changed, Origin::Sync { event_id: &next })
        .unwrap();
    assert_eq!(stored.description.as_deref(), Some("written and checked"));
    assert_eq!(marker(), Some(json!(next)));
}

/// A write Redmine takes only in part (a field it ignores without an error) is a sync
/// error, and so is every retry of it: the event is marked done only after the read-back
/// check passed, so a retry never finds it done and reports success without the change.
#[test]
fn a_write_that_fails_its_read_back_is_never_marked_done() {
    let redmine = redmine_or_skip!();
    let tracker = redmine.tracker("internal");
    let key = format!(
        "#{}",
        redmine.create_issue("internal", &unique("Partly taken"))
    );
    let event = unique("Partly").replace([' ', '[', ']'], "");
    let mut issue = get(&*tracker, &key);
    issue.summary.push_str(" (synced)");
    issue.set_custom_field("not in any project", FieldValue::Text("ignored".into()));
    for attempt in 1..=2 {
        let outcome = tracker.update(&issue, Origin::Sync { event_id: &event });
        assert!(
            matches!(&outcome, Err(TrackerError::Rejected(m)) if m.contains("not in any project")),
            "attempt {attempt}: {outcome:?}"
        );
    }
    let field = redmine.id_of("custom_fields", "twinsync event");
    let marker = redmine.issue(id(&key))["custom_fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == field)
        .map(|f| f["value"].clone());
    assert_eq!(marker, Some(json!(format!("{event} (in progress)"))));
}
