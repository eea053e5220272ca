//! Nothing lost, nothing applied twice, nothing silently different: two `twinsync serve`
//! processes under load, killed with SIGKILL at random moments and restarted, many times
//! over; and killed on purpose between a tracker write and the node's commit.
//!
//! `cargo test` kills 6 times at random and 20 times in the window;
//! `TWINSYNC_CRASH_KILLS=100 cargo test -p twinsync --test crash` kills more at random,
//! `TWINSYNC_WINDOW_KILLS=100` more in the window.

use std::time::{Duration, Instant};

use serde_json::json;
use twinsync::sync::{CRASH_AT_VAR, CRASH_SKIP_VAR};
use twinsync_tests::process::{NodeProcess, eventually, pair, pair_with};

const ISSUES: usize = 120;
const CHANGES: usize = 1_500;

/// A request that keeps trying while the node is down (it may be being killed).
fn patiently(
    node: &mut NodeProcess,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((status, answer)) = node.try_send(method, path, body.clone())
            && status < 300
        {
            return answer;
        }
        assert!(Instant::now() < deadline, "{method} {path} kept failing");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// xorshift: the kill schedule is reproducible from its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn killed_nodes_lose_nothing_and_apply_nothing_twice() {
    let kills: usize = std::env::var("TWINSYNC_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("TWINSYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9);
    eprintln!("crash test: {kills} kills, seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let (mut internal, mut external) =
        pair(twinsync_tests::twinsync_binary!(), dir.path(), "mirror");

    let mut keys = Vec::new();
    for n in 0..ISSUES {
        let issue = patiently(
            &mut internal,
            "POST",
            "/v1/issues",
            json!({"summary": format!("issue {n} rev 0"), "status": "Open"}),
        );
        keys.push(issue["key"].as_str().unwrap().to_string());
    }
    patiently(
        &mut internal,
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": keys}),
    );

    // Changes from the load, kills in between: after every CHANGES / kills changes, one of
    // the nodes (chosen by the seed) is killed at a random moment and started again.
    let mut rng = seed;
    let mut last_rev = vec![0usize; ISSUES];
    let per_kill = CHANGES / kills.max(1);
    for change in 0..CHANGES {
        let n = (next(&mut rng) % ISSUES as u64) as usize;
        last_rev[n] = change + 1;
        let path = format!("/v1/issues/{}", keys[n]);
        patiently(
            &mut internal,
            "PATCH",
            &path,
            json!({"summary": format!("issue {n} rev {}", change + 1)}),
        );
        if kills > 0 && change % per_kill == per_kill / 2 {
            // Let the nodes get busy, then kill one mid-flight.
            std::thread::sleep(Duration::from_millis(next(&mut rng) % 150));
            let victim = if next(&mut rng).is_multiple_of(2) {
                &mut internal
            } else {
                &mut external
            };
            victim.kill();
            victim.restart();
        }
    }

    eventually(Duration::from_secs(120), "both queues drain", || {
        let int = internal.get("/v1/queue");
        let ext = external.get("/v1/queue");
        int[0]["in_flight"] == 0 && int[0]["pending"] == 0 && ext[0]["pending"] == 0
    });

    // Every change is reflected: each issue on External has Internal's last summary.
    let twins = external.get("/v1/twins");
    assert_eq!(
        twins.as_array().unwrap().len(),
        ISSUES,
        "every issue arrived once"
    );
    for twin in twins.as_array().unwrap() {
        let remote = twin["remote_key"].as_str().unwrap();
        let n = keys.iter().position(|k| k == remote).unwrap();
        let local = twin["local_key"].as_str().unwrap();
        let summary = external.issue(local).unwrap()["summary"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            summary,
            format!("issue {n} rev {}", last_rev[n]),
            "{remote} -> {local}"
        );
    }
    // No event lost: no sync error, nothing pending, and External received each twin's
    // messages 1, 2, 3... with no gap.
    for node in [&internal, &external] {
        assert_eq!(node.get("/v1/errors"), json!([]), "{}", node.spec.instance);
    }
    let queue = rusqlite::Connection::open(external.dir.join("data/twinsync.db")).unwrap();
    let gaps: i64 = queue
        .query_row(
            "SELECT count(*) FROM (SELECT twin_id, max(message_seq) AS top, count(*) AS n
             FROM events WHERE direction = 'incoming' GROUP BY twin_id) WHERE top != n",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gaps, 0, "a twin's messages have a gap or a duplicate");
    // No effect twice: External's tracker wrote each incoming event at most once.
    let tracker = rusqlite::Connection::open(external.dir.join("data/tracker.db")).unwrap();
    let twice: Vec<(String, i64)> = tracker
        .prepare("SELECT sync_event, count(*) FROM changes WHERE sync_event IS NOT NULL GROUP BY sync_event HAVING count(*) > 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(twice.is_empty(), "events applied more than once: {twice:?}");
    let issues: i64 = tracker
        .query_row("SELECT count(*) FROM issues", [], |r| r.get(0))
        .unwrap();
    assert_eq!(issues, ISSUES as i64, "no issue created twice");
}

/// The receiving node killed (SIGKILL, through the crash hook `TWINSYNC_CRASH_AT`) right
/// after it wrote an incoming change to its tracker and before it committed, in the middle
/// of a burst of summary changes under last-writer-wins, and started again after the burst:
/// both sides end equal, with empty queues, no sync error and no conflict. Before the fix the
/// repeated event took the tracker's value for a local edit stamped at the restart, which
/// last-writer-wins then preferred over the rest of the burst.
#[test]
fn receiver_killed_between_tracker_write_and_commit_ends_equal() {
    let kills: usize = std::env::var("TWINSYNC_WINDOW_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20);
    const ISSUES: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let (mut internal, mut external) = pair_with(
        twinsync_tests::twinsync_binary!(),
        dir.path(),
        "mirror",
        "[connection.conflicts]\ndefault = \"last-writer-wins\"\n",
    );
    let mut int_keys = Vec::new();
    for n in 0..ISSUES {
        let issue = patiently(
            &mut internal,
            "POST",
            "/v1/issues",
            json!({"summary": format!("issue {n}"), "status": "Open"}),
        );
        int_keys.push(issue["key"].as_str().unwrap().to_string());
    }
    patiently(
        &mut internal,
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": int_keys}),
    );
    eventually(Duration::from_secs(30), "External has every twin", || {
        external.get("/v1/twins").as_array().unwrap().len() == ISSUES
    });
    // The keys of each twin on External, in Internal's order.
    let twins = external.get("/v1/twins");
    let ext_keys: Vec<String> = int_keys
        .iter()
        .map(|int| {
            let twin = twins
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["remote_key"] == json!(int))
                .unwrap();
            twin["local_key"].as_str().unwrap().to_string()
        })
        .collect();

    let mut rng: u64 = 0x5eed_1234;
    let mut killed = 0;
    let mut rev = 0;
    for round in 0..kills {
        // The receiver alternates: Internal's edits kill External, and the other way round.
        let (sender, receiver, keys) = if round % 2 == 0 {
            (&mut internal, &mut external, &int_keys)
        } else {
            (&mut external, &mut internal, &ext_keys)
        };
        receiver.kill();
        receiver.env = vec![
            (CRASH_AT_VAR.into(), "after-tracker-write".into()),
            (CRASH_SKIP_VAR.into(), (next(&mut rng) % 3).to_string()),
        ];
        receiver.restart();
        // A burst of summary changes; the receiver dies in the middle of applying them.
        let mut died = false;
        for _ in 0..60 {
            rev += 1;
            let n = (next(&mut rng) % ISSUES as u64) as usize;
            patiently(
                sender,
                "PATCH",
                &format!("/v1/issues/{}", keys[n]),
                json!({"summary": format!("issue {n} rev {rev}")}),
            );
            if receiver.wait_for_exit(Duration::from_millis(5)) {
                died = true;
                break;
            }
        }
        if !died {
            died = receiver.wait_for_exit(Duration::from_secs(20));
        }
        assert!(
            died,
            "round {round}: the receiver never reached the crash point"
        );
        killed += 1;
        // The burst goes on while the receiver is down.
        for _ in 0..5 {
            rev += 1;
            let n = (next(&mut rng) % ISSUES as u64) as usize;
            patiently(
                sender,
                "PATCH",
                &format!("/v1/issues/{}", keys[n]),
                json!({"summary": format!("issue {n} rev {rev}")}),
            );
        }
        receiver.env.clear();
        receiver.restart();
    }
    assert_eq!(killed, kills);
    for node in [&internal, &external] {
        let log = node.log();
        let window = log.matches("killed at after-tracker-write").count();
        assert!(
            window >= kills / 2,
            "{}: {window} kills in the window",
            node.spec.instance
        );
    }

    eventually(Duration::from_secs(60), "both queues drain", || {
        settled(&[&internal, &external])
    });
    for (int, ext) in int_keys.iter().zip(&ext_keys) {
        let a = internal.issue(int).unwrap();
        let b = external.issue(ext).unwrap();
        assert!(
            a["summary"] == b["summary"],
            "{int} and {ext} differ: {} against {}\n{}\n{}",
            a["summary"],
            b["summary"],
            twin_story(&internal, int),
            twin_story(&external, ext)
        );
    }
    for node in [&internal, &external] {
        assert_eq!(node.get("/v1/errors"), json!([]), "{}", node.spec.instance);
        assert_eq!(
            node.get("/v1/conflicts"),
            json!([]),
            "{}",
            node.spec.instance
        );
    }
}

/// Both nodes idle: nothing pending or unacknowledged, and nothing processed between two
/// readings 200 ms apart. One reading is not enough: the queues are read one after the
/// other, and a message may be accepted by the node read first after its reading, and
/// acknowledged before the other node's: both look empty while an event waits. (This test
/// failed that way under load, the sides compared while the last message was applied.)
fn settled(nodes: &[&NodeProcess]) -> bool {
    let read = || nodes.iter().map(|n| n.get("/v1/queue")).collect::<Vec<_>>();
    let first = read();
    let idle = first
        .iter()
        .all(|queue| queue[0]["in_flight"] == 0 && queue[0]["pending"] == 0);
    idle && {
        std::thread::sleep(Duration::from_millis(200));
        read() == first
    }
}

/// What a node did with an issue, for a failure's message: its history (newest first) and
/// the end of its log. Kept because a difference this test found once did not show again.
fn twin_story(node: &NodeProcess, key: &str) -> String {
    let history = node.get(&format!("/v1/history?key={key}&limit=40"));
    // The twin's id, from its newest history entry; without one there are no events to show
    // (and `GET /v1/events?twin=` would fail, hiding the difference behind another panic).
    let twin = history[0]["twin"].as_str().unwrap_or_default().to_string();
    let events = match twin.as_str() {
        "" => serde_json::Value::Null,
        twin => node.get(&format!("/v1/events?twin={twin}")),
    };
    let queue = node.get("/v1/queue");
    let log = node.log();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    format!(
        "--- {} queue: {queue}\n--- {} events of {twin}:\n{}\n--- {} history of {key}:\n{}\n--- {} log, last lines, newest first:\n{}",
        node.spec.instance,
        node.spec.instance,
        serde_json::to_string_pretty(&events).unwrap_or_default(),
        node.spec.instance,
        serde_json::to_string_pretty(&history).unwrap_or_default(),
        node.spec.instance,
        tail.join("\n")
    )
}
