//! A real PostgreSQL for tests, run by `scripts/postgres`: one throwaway cluster per test
//! binary, started on first use and stopped when the test binary exits; each test gets a
//! database of its own. Where PostgreSQL cannot be had (not Debian, not root), the tests
//! that need it print a loud SKIPPED and pass; CI installs it and sets
//! `TWINSYNC_REQUIRE_POSTGRES`, so there they always run.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Set (by CI) to fail instead of skipping where PostgreSQL cannot be had.
const REQUIRED: &str = "TWINSYNC_REQUIRE_POSTGRES";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres")
}

/// The cluster of this test binary: the URL of its `twinsync` database.
fn cluster() -> Option<&'static str> {
    static CLUSTER: OnceLock<Option<String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| std::env::var(EXISTING).ok().or_else(start))
        .as_deref()
}

/// The URL of a running cluster to use instead of a throwaway one (to look at it while a
/// test or bench runs, with `pg_stat_statements` say); tests make their databases on it.
const EXISTING: &str = "TWINSYNC_TEST_POSTGRES_URL";

/// Where this test binary's cluster keeps its files.
fn state() -> PathBuf {
    std::env::temp_dir().join(format!("twinsync-postgres-test-{}", std::process::id()))
}

/// The directory of this test binary's cluster (its data, logs), once it runs.
pub fn state_dir() -> Option<PathBuf> {
    cluster().map(|_| state())
}

/// Make files the server's own and private to it (as a key file must be): as root the
/// cluster runs as `postgres`.
pub fn own_by_server(files: &[PathBuf]) {
    for file in files {
        let mut permissions = std::fs::metadata(file).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
        std::fs::set_permissions(file, permissions).unwrap();
        if Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n")
        {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(file)
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", file.display());
        }
    }
}

fn start() -> Option<String> {
    let state = state();
    let output = Command::new(script())
        .arg("start")
        .arg(&state)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/postgres");
    if output.status.code() == Some(3) && std::env::var_os(REQUIRED).is_none() {
        // Straight to stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED: the PostgreSQL tests did not run: {}!!!!!!!!\n",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    assert!(
        output.status.success(),
        "scripts/postgres start failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    crate::process::when_this_process_ends(&script(), &["stop".as_ref(), state.as_os_str()]);
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A new, empty database on the cluster, for one test: its URL. `None` where PostgreSQL
/// cannot be had (said loudly once).
pub fn database() -> Option<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let url = cluster()?;
    let name = format!("t{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut admin =
        postgres::Client::connect(url, postgres::NoTls).expect("connect to the cluster");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    Some(format!(
        "{}/{name}",
        url.rsplit_once('/').expect("a URL with a database").0
    ))
}

/// Drop a database [`database`] made (a test is done with it), whoever is still connected:
/// a run that makes hundreds (the simulation) must not fill the disk.
pub fn drop_database(url: &str) {
    let (Some(cluster), Some((_, name))) = (cluster(), url.rsplit_once('/')) else {
        return;
    };
    if let Ok(mut admin) = postgres::Client::connect(cluster, postgres::NoTls) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// For a test that needs PostgreSQL: a new database's URL, or return from the test.
#[macro_export]
macro_rules! postgres_or_skip {
    () => {
        match $crate::postgres::database() {
            Some(url) => url,
            None => return,
        }
    };
}
