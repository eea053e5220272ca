//! `GET /v1/twins` and `twinsync twins` on a node with many twins: the API answers a page at
//! a time (`limit`, `after`, the next page's cursor in `X-Twinsync-Next`), refuses limits
//! out of range, and the CLI prints every twin while its memory does not grow with their
//! number.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use twinsync_tests::process::{NodeProcess, NodeSpec, TOKEN, free_port};

/// Add `count` twins to the node's database (serve stopped), numbered from `from`, plus
/// one whose id needs encoding in a URL (a twin id is chosen by the node that exalated).
fn add_twins(node: &NodeProcess, from: i64, count: i64) {
    let db = rusqlite::Connection::open(node.dir.join("data/twinsync.db")).unwrap();
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1 + ?2)
         INSERT INTO twins (twin_id, connection, local_key, remote_key, sent_seq, created_at)
         SELECT printf('tw-%07d', i), 'internal-external', printf('INT-%d', i),
                printf('EXT-%d', i), i % 7, 0 FROM n",
        rusqlite::params![from, count],
    )
    .unwrap();
    db.execute(
        "INSERT OR IGNORE INTO twins (twin_id, connection, local_key, created_at)
         VALUES ('tw-odd id/&=%', 'internal-external', 'INT-ODD', 0)",
        [],
    )
    .unwrap();
}

fn node(dir: &Path) -> NodeProcess {
    NodeProcess::start(
        twinsync_tests::twinsync_binary!(),
        dir,
        NodeSpec {
            instance: "Internal",
            project: "INT",
            remote: "External",
            port: free_port(),
            admin_port: free_port(),
            remote_port: free_port(),
            processor: "mirror",
            extra: "",
        },
    )
}

/// `GET /v1/twins?QUERY`: status, body, and the next page's cursor.
fn get(node: &NodeProcess, query: &str) -> (u16, Value, Option<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&format!(
            "http://127.0.0.1:{}/v1/twins{query}",
            node.spec.admin_port
        ))
        .header("authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    let next = response
        .headers()
        .get("x-twinsync-next")
        .map(|v| v.to_str().unwrap().to_string());
    let status = response.status().as_u16();
    let body = response.body_mut().read_json().unwrap_or(Value::Null);
    (status, body, next)
}

fn ids(page: &Value) -> Vec<String> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|t| t["twin"].as_str().unwrap().to_string())
        .collect()
}

fn cli(node: &NodeProcess, args: &[&str]) -> String {
    let output = Command::new(twinsync_tests::twinsync_binary!())
        .args(args)
        .arg("--config")
        .arg(&node.config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn twins_are_listed_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = node(dir.path());
    node.stop();
    add_twins(&node, 0, 1_202);
    node.restart();

    // Default pages of 500, each starting after the last id of the one before.
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    let mut query = String::new();
    loop {
        let (status, page, next) = get(&node, &query);
        assert_eq!(status, 200, "{page}");
        let page = ids(&page);
        sizes.push(page.len());
        if let Some(next) = &next {
            assert_eq!(Some(next), page.last().map(|id| query_encoded(id)).as_ref());
        }
        all.extend(page);
        match next {
            Some(next) => query = format!("?after={next}"),
            None => break,
        }
    }
    assert_eq!(sizes, [500, 500, 203]);
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "in twin id order, none twice");
    assert_eq!(all.len(), 1_203);
    assert!(all.contains(&"tw-odd id/&=%".to_string()));

    // A limit, and a cursor in the middle.
    let (_, page, next) = get(&node, "?limit=3&after=tw-0000100");
    assert_eq!(ids(&page), ["tw-0000101", "tw-0000102", "tw-0000103"]);
    assert_eq!(next.as_deref(), Some("tw-0000103"));
    let (_, page, next) = get(&node, "?limit=5000");
    assert_eq!((ids(&page), next), (all.clone(), None));
    let (_, page, next) = get(&node, "?after=tw-zzz");
    assert_eq!((page, next), (Value::Array(vec![]), None));

    // Out of range, or not a number, or unknown: 400 with the reason.
    for query in [
        "?limit=0",
        "?limit=5001",
        "?limit=-1",
        "?limit=many",
        "?after=",
        "?page=2",
    ] {
        let (status, answer, _) = get(&node, query);
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(answer["error"].is_string(), "{query}: {answer}");
    }

    // The CLI prints every twin, in the same order, table and JSON alike.
    node.stop();
    let table = cli(&node, &["twins"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 1_203);
    assert!(lines[0].starts_with("TWIN"));
    assert!(lines[1].starts_with("tw-0000000 "), "{}", lines[1]);
    let json: Value = serde_json::from_str(&cli(&node, &["twins", "--json"])).unwrap();
    assert_eq!(ids(&json), all);
    assert_eq!(json[5]["remote_key"], "EXT-5");
    assert_eq!(json[5]["messages_sent"], 5);
}

/// The CLI's output as `serde_json` would print the whole list, for an empty one too.
#[test]
fn the_cli_json_is_the_same_for_no_twins_and_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = node(dir.path());
    node.stop();
    assert_eq!(cli(&node, &["twins", "--json"]), "[]\n");
    add_twins(&node, 0, 1);
    let printed = cli(&node, &["twins", "--json"]);
    let store = twinsync::store::NodeStore::open(&node.dir.join("data/twinsync.db")).unwrap();
    let whole = twinsync::ops::twins(&store).unwrap();
    assert_eq!(whole.len(), 2);
    assert_eq!(
        printed,
        format!("{}\n", serde_json::to_string_pretty(&whole).unwrap())
    );
}

/// Peak memory of `twinsync twins` (KiB), from `/usr/bin/time`.
fn peak_kib(node: &NodeProcess) -> u64 {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(twinsync_tests::twinsync_binary!())
        .args(["twins", "--config"])
        .arg(&node.config)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    stderr.lines().last().unwrap().trim().parse().unwrap()
}

#[test]
fn the_cli_memory_does_not_grow_with_the_number_of_twins() {
    if !Path::new("/usr/bin/time").exists() {
        use std::io::Write;
        // Straight to stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED: no /usr/bin/time (Debian package `time`) to measure peak memory with !!!!!!!!\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut node = node(dir.path());
    node.stop();
    add_twins(&node, 0, 1_000);
    let small = peak_kib(&node);
    add_twins(&node, 1_000, 199_000);
    let large = peak_kib(&node);
    // 200,000 twins held at once take 40 MB and more; a page of 500, well under 1 MB.
    eprintln!("peak memory of `twinsync twins`: {small} KiB (1,000 twins), {large} KiB (200,000)");
    assert!(
        large < small + 16 * 1024,
        "peak memory grew from {small} KiB (1,000 twins) to {large} KiB (200,000)"
    );
}

fn query_encoded(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
