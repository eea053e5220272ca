//! The reference tracker behaves the same on SQLite and on PostgreSQL, and keeps its
//! promises when several processes share it: every test runs against both storages (the
//! PostgreSQL ones skip loudly where PostgreSQL cannot be had; CI requires them).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use twinsync::model::{Comment, Issue};
use twinsync::tracker::{
    Origin, PostgresTracker, Query, ReferenceTracker, Tracker, TrackerError, UpdateIf,
};
use twinsync_tests::postgres;

/// What the tests use of a reference tracker beyond the `Tracker` trait.
trait Reference: Tracker {
    fn all(&self) -> Result<Vec<Issue>, TrackerError>;
    fn edit_many(&self, issues: &[Issue]) -> Result<Vec<Issue>, TrackerError>;
}

impl Reference for ReferenceTracker {
    fn all(&self) -> Result<Vec<Issue>, TrackerError> {
        self.list()
    }
    fn edit_many(&self, issues: &[Issue]) -> Result<Vec<Issue>, TrackerError> {
        self.update_many(issues)
    }
}

impl Reference for PostgresTracker {
    fn all(&self) -> Result<Vec<Issue>, TrackerError> {
        self.list()
    }
    fn edit_many(&self, issues: &[Issue]) -> Result<Vec<Issue>, TrackerError> {
        self.update_many(issues)
    }
}

/// Where a tracker is stored; each `open` is a connection of its own, as a process has.
enum Storage {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Storage {
    /// Both storages, each empty (PostgreSQL left out, loudly, where it cannot be had).
    fn both() -> Vec<Storage> {
        let mut all = vec![Storage::Sqlite(tempfile::tempdir().unwrap())];
        all.extend(postgres::database().map(Storage::Postgres));
        all
    }

    fn name(&self) -> &'static str {
        match self {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres(_) => "postgres",
        }
    }

    fn open(&self) -> Arc<dyn Reference> {
        match self {
            Storage::Sqlite(dir) => {
                let path: PathBuf = dir.path().join("tracker.db");
                Arc::new(ReferenceTracker::new(&path, "T").unwrap())
            }
            Storage::Postgres(url) => Arc::new(PostgresTracker::connect(url, "T").unwrap()),
        }
    }
}

fn issue(summary: &str) -> Issue {
    Issue {
        summary: summary.into(),
        ..Issue::default()
    }
}

/// Every behaviour of the contract, once; the outcome in words, with the tracker's times
/// left out (they differ between runs), so that the two storages can be compared.
fn script(tracker: &dyn Reference) -> Vec<String> {
    let mut said = Vec::new();
    let mut say = |what: String| said.push(what);
    let plain = |issue: &Issue| {
        format!(
            "{} id={} {} [{}] comments={:?}",
            issue.key.as_deref().unwrap_or("-"),
            issue.id.as_deref().unwrap_or("-"),
            issue.summary,
            issue.status,
            issue
                .comments
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
        )
    };

    let mut a = tracker.create(&issue("first"), Origin::User).unwrap();
    say(format!("created {}", plain(&a)));
    let other = Issue {
        project: "OPS".into(),
        ..issue("other project")
    };
    say(format!(
        "created {}",
        plain(&tracker.create(&other, Origin::User).unwrap())
    ));

    // Comments get ids; a comment the tracker knows keeps its id.
    a.comments.push(Comment {
        id: String::new(),
        author: None,
        body: "hello".into(),
        created: String::new(),
        updated: None,
        internal: false,
    });
    let a2 = tracker.update(&a, Origin::User).unwrap();
    say(format!("commented {}", plain(&a2)));

    // A conditional update on what was seen works; on an older view, nothing is written.
    let mut edit = a2.clone();
    edit.summary = "first, edited".into();
    let a3 = tracker.update_if(&edit, Origin::User, Some(&a2)).unwrap();
    say(format!("edited {}", plain(&a3)));
    let mut stale = a2.clone();
    stale.summary = "from a stale view".into();
    say(format!(
        "stale edit: {:?}",
        tracker
            .update_if(&stale, Origin::User, Some(&a2))
            .unwrap_err()
    ));

    // A sync write changes the tracker once, however often it is repeated.
    let mut synced = a3.clone();
    synced.status = "Done".into();
    let once = tracker
        .update(&synced, Origin::Sync { event_id: "e-1" })
        .unwrap();
    synced.status = "Reopened".into();
    let again = tracker
        .update(&synced, Origin::Sync { event_id: "e-1" })
        .unwrap();
    say(format!("synced {} / again {}", plain(&once), plain(&again)));
    let created = tracker
        .create(&issue("made by sync"), Origin::Sync { event_id: "e-2" })
        .unwrap();
    let created_again = tracker
        .create(&issue("made by sync"), Origin::Sync { event_id: "e-2" })
        .unwrap();
    say(format!(
        "sync create {} / again {}",
        plain(&created),
        plain(&created_again)
    ));

    // Writing what is stored already changes nothing.
    tracker.update(&once, Origin::User).unwrap();

    // Bulk edits: all or none.
    let mut b = once.clone();
    b.summary = "bulk".into();
    let mut bad = created.clone();
    bad.summary = " ".into();
    say(format!(
        "bulk with a bad one: {:?}",
        tracker.edit_many(&[b.clone(), bad]).unwrap_err()
    ));
    say(format!(
        "bulk: {:?}",
        tracker
            .edit_many(&[b])
            .unwrap()
            .iter()
            .map(plain)
            .collect::<Vec<_>>()
    ));

    // Refusals.
    say(format!(
        "empty summary: {:?}",
        tracker.create(&issue("  "), Origin::User).unwrap_err()
    ));
    let mut ghost = issue("ghost");
    ghost.key = Some("T-99".into());
    say(format!(
        "unknown key: {:?}",
        tracker.update(&ghost, Origin::User).unwrap_err()
    ));
    say(format!(
        "bad cursor: {:?}",
        tracker.changes(Some("x"), 10).unwrap_err()
    ));

    // The feed, in pages, with what sync wrote told apart.
    let mut cursor = None;
    loop {
        let page = tracker.changes(cursor.as_deref(), 3).unwrap();
        if page.changes.is_empty() {
            break;
        }
        for change in &page.changes {
            say(format!("change {} by_sync={}", change.key, change.by_sync));
        }
        cursor = page.cursor;
    }
    say(format!(
        "search OPS: {:?}",
        tracker
            .search(&Query::parse("project=OPS").unwrap())
            .unwrap()
    ));
    say(format!(
        "all: {:?}",
        tracker.all().unwrap().iter().map(plain).collect::<Vec<_>>()
    ));
    said
}

#[test]
fn both_storages_behave_the_same() {
    let storages = Storage::both();
    let outcomes: Vec<(&str, Vec<String>)> = storages
        .iter()
        .map(|storage| (storage.name(), script(&*storage.open())))
        .collect();
    let (_, sqlite) = &outcomes[0];
    // The promises themselves, checked on SQLite; PostgreSQL must then say the same.
    let text = sqlite.join("\n");
    for expected in [
        "created T-1 id=1 first [Open] comments=[]",
        "created OPS-1 id=2 other project [Open] comments=[]",
        "commented T-1 id=1 first [Open] comments=[\"c1\"]",
        "stale edit: Changed(\"T-1\")",
        "synced T-1 id=1 first, edited [Done] comments=[\"c1\"] / again T-1 id=1 first, edited [Done] comments=[\"c1\"]",
        "sync create T-2 id=3 made by sync [Open] comments=[] / again T-2 id=3 made by sync [Open] comments=[]",
        "unknown key: NotFound(\"T-99\")",
        "search OPS: [\"OPS-1\"]",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let feed: Vec<&String> = sqlite.iter().filter(|l| l.starts_with("change ")).collect();
    assert_eq!(
        feed,
        [
            "change T-1 by_sync=false",
            "change OPS-1 by_sync=false",
            "change T-1 by_sync=false",
            "change T-1 by_sync=false",
            "change T-1 by_sync=true",
            "change T-2 by_sync=true",
            "change T-1 by_sync=false",
        ]
    );
    for (name, outcome) in &outcomes[1..] {
        assert_eq!(outcome, sqlite, "{name} differs from sqlite");
    }
}

/// Writers in several "processes" (connections of their own) and a reader of the change
/// feed at the same time: the reader sees every write exactly once. With numbers taken
/// from a sequence and no turn-taking, a write that commits after a later-numbered one
/// would be skipped by a reader that already moved past it.
#[test]
fn concurrent_writers_never_make_the_feed_skip_a_change() {
    const WRITERS: usize = 4;
    const WRITES: usize = 150;
    for storage in Storage::both() {
        let setup = storage.open();
        let keys: Vec<String> = (0..WRITERS)
            .map(|w| {
                setup
                    .create(&issue(&format!("writer {w}")), Origin::User)
                    .unwrap()
                    .key
                    .unwrap()
            })
            .collect();
        let start = setup.changes(None, 1_000).unwrap().cursor;
        let done = Arc::new(AtomicBool::new(false));
        let seen = std::thread::scope(|scope| {
            let mut writers = Vec::new();
            for key in &keys {
                let tracker = storage.open();
                writers.push(scope.spawn(move || {
                    let mut issue = tracker.get(key).unwrap().unwrap();
                    for n in 0..WRITES {
                        issue.summary = format!("{key} write {n}");
                        issue = tracker.update(&issue, Origin::User).unwrap();
                    }
                }));
            }
            let (reader, finished_writing) = (storage.open(), done.clone());
            let reading = scope.spawn(move || {
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut cursor = start;
                loop {
                    let finished = finished_writing.load(Ordering::SeqCst);
                    let page = reader.changes(cursor.as_deref(), 7).unwrap();
                    for change in &page.changes {
                        *seen.entry(change.key.clone()).or_default() += 1;
                    }
                    cursor = page.cursor;
                    if finished && page.changes.is_empty() {
                        return seen;
                    }
                }
            });
            for writer in writers {
                writer.join().unwrap();
            }
            // Every write is committed: the reader reads to the end once more, and stops.
            done.store(true, Ordering::SeqCst);
            reading.join().unwrap()
        });
        for key in &keys {
            assert_eq!(
                seen.get(key).copied().unwrap_or(0),
                WRITES,
                "{}: the reader saw {key}'s writes {:?} times",
                storage.name(),
                seen.get(key)
            );
        }
    }
}

/// Two processes repeating one sync event at the same moment (a worker taken over after its
/// lease ran out, while it was still writing) change the tracker once.
#[test]
fn one_sync_event_written_twice_at_once_changes_the_tracker_once() {
    for storage in Storage::both() {
        let setup = storage.open();
        let key = setup.create(&issue("shared"), Origin::User).unwrap().key;
        let start = setup.changes(None, 1_000).unwrap().cursor;
        let events = 40;
        std::thread::scope(|scope| {
            for writer in 0..2 {
                let tracker = storage.open();
                let key = key.clone();
                scope.spawn(move || {
                    for n in 0..events {
                        let mut issue = issue(&format!("event {n} by writer {writer}"));
                        issue.key = key.clone();
                        let event_id = format!("event-{n}");
                        tracker
                            .update(
                                &issue,
                                Origin::Sync {
                                    event_id: &event_id,
                                },
                            )
                            .unwrap();
                    }
                });
            }
        });
        let changes = setup.changes(start.as_deref(), 1_000).unwrap().changes;
        assert_eq!(changes.len(), events, "{}: {changes:?}", storage.name());
        assert!(changes.iter().all(|c| c.by_sync));
    }
}

/// Writes made together stand alone: one whose issue changed, one refused and one whose
/// issue is gone fail and write nothing, the others are written (in one transaction), and a
/// sync event's write made again changes nothing.
#[test]
fn writes_made_together_fail_or_succeed_one_by_one() {
    for storage in Storage::both() {
        let tracker = storage.open();
        let name = storage.name();
        let created: Vec<Issue> = ["a", "b", "c"]
            .iter()
            .map(|s| tracker.create(&issue(s), Origin::User).unwrap())
            .collect();
        let start = tracker.changes(None, 1_000).unwrap().cursor;
        // Someone edits "b" after the writer read it.
        let mut edited = created[1].clone();
        edited.summary = "b, edited by a person".into();
        tracker.update(&edited, Origin::User).unwrap();

        let retitled = |i: usize, summary: &str| Issue {
            summary: summary.into(),
            ..created[i].clone()
        };
        let (a, b, c) = (retitled(0, "a2"), retitled(1, "b2"), retitled(2, "   "));
        let gone = Issue {
            key: Some("T-999".into()),
            ..issue("gone")
        };
        let origin = |event_id| Origin::Sync { event_id };
        let writes = [
            UpdateIf {
                issue: &a,
                origin: origin("e1"),
                seen: Some(&created[0]),
            },
            UpdateIf {
                issue: &b,
                origin: origin("e2"),
                seen: Some(&created[1]),
            },
            UpdateIf {
                issue: &c,
                origin: origin("e3"),
                seen: Some(&created[2]),
            },
            UpdateIf {
                issue: &gone,
                origin: origin("e4"),
                seen: None,
            },
        ];
        let written = tracker.update_many_if(&writes);
        assert_eq!(written.len(), 4, "{name}");
        assert_eq!(written[0].as_ref().unwrap().summary, "a2", "{name}");
        assert!(
            matches!(written[1], Err(TrackerError::Changed(_))),
            "{name}: {:?}",
            written[1]
        );
        assert!(
            matches!(written[2], Err(TrackerError::Rejected(_))),
            "{name}: {:?}",
            written[2]
        );
        assert!(
            matches!(written[3], Err(TrackerError::NotFound(_))),
            "{name}: {:?}",
            written[3]
        );
        let now: Vec<String> = tracker
            .all()
            .unwrap()
            .into_iter()
            .map(|i| i.summary)
            .collect();
        assert_eq!(now, ["a2", "b, edited by a person", "c"], "{name}");

        // The first write again, as a repeat after a crash: recognised, nothing changes.
        let again = tracker.update_many_if(&writes[..1]);
        assert_eq!(again[0].as_ref().unwrap().summary, "a2", "{name}");
        let changes = tracker.changes(start.as_deref(), 1_000).unwrap().changes;
        let keys: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.key.as_str(), c.by_sync))
            .collect();
        assert_eq!(keys, [("T-2", false), ("T-1", true)], "{name}");
    }
}

/// A wrong URL, password or database gets an error that says which, without the password.
#[test]
fn postgres_connection_errors_say_what_is_wrong() {
    let Some(url) = postgres::database() else {
        return;
    };
    let (base, _) = url.rsplit_once('/').unwrap();
    let password = base
        .rsplit_once('@')
        .and_then(|(credentials, _)| credentials.rsplit_once(':'))
        .map(|(_, password)| password.to_string())
        .unwrap();
    let error = |url: &str| match PostgresTracker::connect(url, "T") {
        Ok(_) => panic!("connected to {url}"),
        Err(error) => format!("{error:#}"),
    };

    let wrong_password = error(&url.replace(&password, "not-the-password"));
    assert!(
        wrong_password.contains("the password is wrong"),
        "{wrong_password}"
    );
    let missing = error(&format!("{base}/no_such_database"));
    assert!(
        missing.contains("there is no database `no_such_database`"),
        "{missing}"
    );
    let not_a_url = error("postgres://user:pw@host:notaport/db");
    assert!(not_a_url.contains("is not a PostgreSQL URL"), "{not_a_url}");
    let port = twinsync_tests::process::free_port();
    let unreachable = error(&format!(
        "postgres://postgres:{password}@127.0.0.1:{port}/x"
    ));
    assert!(unreachable.contains("cannot connect to"), "{unreachable}");
    for message in [&wrong_password, &missing, &unreachable] {
        assert!(
            !message.contains(&password),
            "the password leaked: {message}"
        );
    }
}

/// A node's configuration can keep its reference tracker in PostgreSQL, with the password
/// in a file of its own; a wrong one stops the node with an error that does not show it.
#[test]
fn a_node_keeps_its_reference_tracker_in_postgres() {
    let Some(url) = postgres::database() else {
        return;
    };
    // The URL without its password, which goes to a file.
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, place) = rest.rsplit_once('@').unwrap();
    let (user, password) = credentials.split_once(':').unwrap();
    let bare = format!("{scheme}://{user}@{place}");
    let dir = tempfile::tempdir().unwrap();
    let config = |password_file: &str| {
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            format!(
                "instance = \"Internal\"\ndata-dir = \"data\"\n\n[tracker]\nkind = \"reference\"\n\
                 project = \"PG\"\npostgres-url = \"{bare}\"\npostgres-password-file = \"{password_file}\"\n"
            ),
        )
        .unwrap();
        twinsync::config::NodeConfig::load(&path).unwrap()
    };
    std::fs::write(dir.path().join("right.password"), format!("{password}\n")).unwrap();
    std::fs::write(dir.path().join("wrong.password"), "guess\n").unwrap();

    let node = twinsync::setup::open_node(&config("right.password")).unwrap();
    let made = node
        .node
        .tracker()
        .create(&issue("kept in PostgreSQL"), Origin::User)
        .unwrap();
    assert_eq!(made.key.as_deref(), Some("PG-1"));
    // Another process sees it: the tracker is the database, not the node.
    let other = PostgresTracker::connect(&url, "PG").unwrap();
    assert_eq!(
        other.get("PG-1").unwrap().unwrap().summary,
        "kept in PostgreSQL"
    );
    drop(node);

    let refused = match twinsync::setup::open_node(&config("wrong.password")) {
        Ok(_) => panic!("a wrong password was taken"),
        Err(error) => format!("{error:#}"),
    };
    assert!(refused.contains("the password is wrong"), "{refused}");
    assert!(!refused.contains(password), "{refused}");
}
