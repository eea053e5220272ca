//! The node's store on PostgreSQL: connecting (clear errors for a wrong URL, password or
//! database, TLS), migrations (applied once, a newer schema refused), and what lets several
//! processes share one store (claims and roles). The scenario suites run on it as well
//! (`TWINSYNC_TEST_STORE=postgres`, see tests/support/store.rs).

use std::path::PathBuf;
use std::time::Duration;

use twinsync::config::Secret;
use twinsync::store::NodeStore;
use twinsync::store::shared::LEASE;
use twinsync_tests::postgres_or_skip;

fn error_of(url: &str, password: Option<&str>) -> String {
    let password = password.map(Secret::new);
    match NodeStore::connect(url, password.as_ref(), None) {
        Ok(_) => panic!("connected to {url}"),
        Err(error) => format!("{error:#}"),
    }
}

/// The URL with another password, or another database.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, host) = rest.rsplit_once('@').unwrap();
    let user = credentials.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

fn with_database(url: &str, database: &str) -> String {
    format!("{}/{database}", url.rsplit_once('/').unwrap().0)
}

#[test]
fn wrong_settings_get_errors_in_words_without_the_password() {
    let url = postgres_or_skip!();
    let wrong = error_of(&with_password(&url, "not-the-password"), None);
    assert!(wrong.contains("the password is wrong"), "{wrong}");
    assert!(!wrong.contains("not-the-password"), "{wrong}");

    let missing = error_of(&with_database(&url, "no_such_db"), None);
    assert!(
        missing.contains("there is no database `no_such_db`"),
        "{missing}"
    );

    let not_a_url = error_of("postgres://a:b@127.0.0.1:notaport/x", None);
    assert!(not_a_url.contains("is not a PostgreSQL URL"), "{not_a_url}");
    assert!(!not_a_url.contains(":b@"), "{not_a_url}");

    // Nobody listens there: said, not hung on.
    let port = twinsync_tests::process::free_port();
    let down = error_of(&format!("postgres://u:secret@127.0.0.1:{port}/x"), None);
    assert!(down.contains("cannot connect to"), "{down}");
    assert!(!down.contains("secret"), "{down}");
}

#[test]
fn migrations_run_once_even_for_processes_starting_together() {
    let url = postgres_or_skip!();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    NodeStore::connect(&url, None, None)
                        .unwrap()
                        .id()
                        .to_string()
                })
            })
            .collect();
        starts.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert!(
        ids.iter().all(|id| id == &ids[0] && !id.is_empty()),
        "{ids:?}"
    );
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let versions: Vec<i64> = db
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let url = postgres_or_skip!();
    NodeStore::connect(&url, None, None).unwrap();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    db.execute("INSERT INTO schema_version (version) VALUES (99)", &[])
        .unwrap();
    let refused = error_of(&url, None);
    assert!(
        refused.contains("schema is version 99, newer than this twinsync knows (5)"),
        "{refused}"
    );
}

#[test]
fn a_claim_is_one_process_s_until_it_gives_it_up_or_its_lease_runs_out() {
    let url = postgres_or_skip!();
    let (a, b) = (
        NodeStore::connect(&url, None, None).unwrap(),
        NodeStore::connect(&url, None, None).unwrap(),
    );
    let issues = vec!["issue:INT-1".to_string(), "issue:INT-2".to_string()];
    assert_eq!(a.claim(&issues[..1]).unwrap(), vec![true]);
    assert_eq!(b.claim(&issues).unwrap(), vec![false, true]);
    // Renewing keeps it; the holder sees it held inside its transaction.
    a.renew_claims(&issues[..1]).unwrap();
    assert!(a.write(|tx| a.holds_claim(tx, "issue:INT-1")).unwrap());
    assert!(!b.write(|tx| b.holds_claim(tx, "issue:INT-1")).unwrap());
    // Given up with a commit: the other process takes it at once.
    a.write(|tx| a.release_claim(tx, "issue:INT-1")).unwrap();
    assert_eq!(b.claim(&issues[..1]).unwrap(), vec![true]);
    // A process that stops renewing (killed) loses it when the lease runs out.
    assert_eq!(a.claim(&issues[..1]).unwrap(), vec![false]);
    std::thread::sleep(LEASE + Duration::from_millis(300));
    assert_eq!(a.claim(&issues[..1]).unwrap(), vec![true]);
    assert!(!b.write(|tx| b.holds_claim(tx, "issue:INT-1")).unwrap());
}

#[test]
fn one_process_holds_a_role_and_another_takes_it_when_it_resigns() {
    let url = postgres_or_skip!();
    let (a, b) = (
        NodeStore::connect(&url, None, None).unwrap(),
        NodeStore::connect(&url, None, None).unwrap(),
    );
    assert!(a.lead("send:c").unwrap());
    assert!(!b.lead("send:c").unwrap());
    assert!(b.lead("poll").unwrap(), "roles are held one by one");
    assert!(a.lead("send:c").unwrap(), "renewed by its holder");
    a.resign("send:c").unwrap();
    assert!(b.lead("send:c").unwrap());
    assert!(!a.lead("send:c").unwrap());
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/tls")
        .join(name)
}

/// `sslmode=require`: the server's certificate must be trusted (here through `ca-file`);
/// without the CA it is refused, never used unchecked.
#[test]
fn tls_checks_the_server_certificate() {
    let url = postgres_or_skip!();
    let state = twinsync_tests::postgres::state_dir().expect("the cluster's directory");
    // The key must belong to the server's user and be private to it, or the server
    // refuses it.
    for file in ["node-cert.pem", "node-key.pem"] {
        std::fs::copy(fixture(file), state.join(file)).unwrap();
    }
    twinsync_tests::postgres::own_by_server(&[
        state.join("node-cert.pem"),
        state.join("node-key.pem"),
    ]);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for (setting, value) in [
        ("ssl_cert_file", state.join("node-cert.pem")),
        ("ssl_key_file", state.join("node-key.pem")),
    ] {
        admin
            .batch_execute(&format!(
                "ALTER SYSTEM SET {setting} = '{}'",
                value.display()
            ))
            .unwrap();
    }
    admin.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let tls_url = format!("{url}?sslmode=require");
    let refused = match NodeStore::connect(&tls_url, None, None) {
        Ok(_) => panic!("connected over TLS to a server nobody said to trust"),
        Err(error) => format!("{error:#}"),
    };
    assert!(refused.contains("cannot connect to"), "{refused}");
    let store = NodeStore::connect(&tls_url, None, Some(&fixture("ca.pem"))).unwrap();
    let over_tls: bool = store
        .read(|db| {
            db.one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
        })
        .unwrap();
    assert!(over_tls, "the connection is encrypted");
}

/// Hosted tenants on PostgreSQL: each tenant's state in a schema of its own, beside the
/// node's (default schema) and the registry's. One tenant sees none of another's twins,
/// nor of the node's; their writers do not wait for each other; a released connection
/// opens again on the same schema.
#[test]
fn tenants_states_are_in_schemas_of_their_own() {
    use twinsync::store::{PgTarget, tenant_schema, twins};
    let url = postgres_or_skip!();
    let target = PgTarget {
        url: url.clone(),
        password: None,
        ca_file: None,
    };
    let node = NodeStore::connect(&url, None, None).unwrap();
    let open =
        |name: &str| NodeStore::connect_in_schema(&target, Some(&tenant_schema(name))).unwrap();
    let (acme, beta) = (open("acme"), open("beta"));
    acme.write(|tx| twins::insert(tx, "t-acme", "c", "ACME-1", 1))
        .unwrap();
    beta.write(|tx| twins::insert(tx, "t-beta", "c", "BETA-1", 1))
        .unwrap();
    let ids = |store: &NodeStore| -> Vec<String> {
        store
            .read(|db| twins::list(db))
            .unwrap()
            .into_iter()
            .map(|t| t.twin_id)
            .collect()
    };
    assert_eq!(ids(&acme), ["t-acme"]);
    assert_eq!(ids(&beta), ["t-beta"]);
    assert!(ids(&node).is_empty(), "the node's own tables are apart");
    assert_ne!(acme.id(), beta.id(), "each its own database id");

    // Where the tables are: in each tenant's schema.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let schema_of_twins: Vec<String> = admin
        .query(
            "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'twins' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(schema_of_twins, ["public", "tenant_acme", "tenant_beta"]);

    // Deleting an event runs the schema's own trigger function on the schema's tables.
    acme.write(|tx| {
        tx.execute(
            "INSERT INTO events (id, direction, connection, twin_id, reason, created_at) VALUES ('e1', 'outgoing', 'c', 't-acme', 'local-change', 1)",
            &[],
        )?;
        tx.execute(
            "INSERT INTO event_bodies (seq, message) SELECT seq, '{}' FROM events WHERE id = 'e1'",
            &[],
        )?;
        tx.execute("DELETE FROM events WHERE id = 'e1'", &[])
    })
    .unwrap();
    let bodies: i64 = acme
        .read(|db| db.one("SELECT count(*) FROM event_bodies", &[]))
        .unwrap();
    assert_eq!(bodies, 0);

    // A write held open in one tenant does not hold up another's.
    let (held, done) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            acme.write(|_| {
                held.wait();
                done.wait();
                Ok(())
            })
            .unwrap()
        });
        held.wait();
        let (sent, wrote) = std::sync::mpsc::channel();
        let beta = &beta;
        scope.spawn(move || {
            beta.write(|tx| twins::insert(tx, "t-beta-2", "c", "BETA-2", 2))
                .unwrap();
            sent.send(()).unwrap();
        });
        let without_waiting = wrote.recv_timeout(Duration::from_secs(5)).is_ok();
        // Let acme's write end first, so that the test ends either way.
        done.wait();
        assert!(without_waiting, "beta's write waited for acme's");
    });

    // Released (an idle tenant): no connection left, and the next use opens it again there.
    acme.release();
    assert!(!acme.is_open());
    assert_eq!(ids(&acme), ["t-acme"]);
    // Opened again by another process: the same state.
    assert_eq!(ids(&open("beta")), ["t-beta", "t-beta-2"]);

    // Long names are cut to PostgreSQL's 63 bytes, still apart.
    let (long_a, long_b) = ("a".repeat(63) + "x", "a".repeat(63) + "y");
    assert!(tenant_schema(&long_a).len() <= 63);
    assert_ne!(tenant_schema(&long_a), tenant_schema(&long_b));
    let long = open(&long_a);
    long.write(|tx| twins::insert(tx, "t-long", "c", "L-1", 1))
        .unwrap();
    assert_eq!(ids(&long), ["t-long"]);
}

/// The tenant registry on PostgreSQL: in a schema of its own (its `plugin_changes` is not
/// the node's), shared by every process on the database.
#[test]
fn the_tenant_registry_is_in_a_schema_of_its_own() {
    use twinsync::store::PgTarget;
    use twinsync::tenants::{Registry, TenantSpec};
    let url = postgres_or_skip!();
    let target = PgTarget {
        url: url.clone(),
        password: None,
        ca_file: None,
    };
    let node = NodeStore::connect(&url, None, None).unwrap();
    let (one, two) = (
        Registry::connect(&target).unwrap(),
        Registry::connect(&target).unwrap(),
    );
    let spec = TenantSpec::from_json(br#"{"name": "acme", "instance": "Acme"}"#).unwrap();
    one.add(&spec, "hash").unwrap();
    assert_eq!(two.get("acme").unwrap().unwrap().token_sha256, "hash");
    let again = TenantSpec::from_json(br#"{"name": "acme", "instance": "Other"}"#).unwrap();
    let taken = two.add(&again, "other").unwrap_err();
    assert!(format!("{taken:#}").contains("exists already"), "{taken:#}");
    let change = twinsync::tenants::registry::PluginChange {
        id: 0,
        at: 5,
        by: "ops".into(),
        action: "use".into(),
        connection: "c".into(),
        side: "local".into(),
        processor: Some("plugin:p@1".into()),
        previous: None,
    };
    one.record_plugin_changes("acme", &[change.clone(), change])
        .unwrap();
    assert_eq!(two.plugin_changes("acme").unwrap().len(), 2);
    let nodes: i64 = node
        .read(|db| db.one("SELECT count(*) FROM plugin_changes", &[]))
        .unwrap();
    assert_eq!(nodes, 0, "the node's plugin_changes is another table");
    two.poke("acme").unwrap();
    assert_eq!(one.pokes().unwrap(), [("acme".to_string(), 1)]);
    assert!(one.remove("acme").unwrap());
    assert!(two.list().unwrap().is_empty());
}

/// Two hosts (two `serve` processes, say) running the same two tenants on one PostgreSQL
/// database: each issue reaches the other tenant once, with its last version, whichever
/// host polls, claims and delivers.
#[test]
fn two_hosts_run_the_same_tenants_on_one_database() {
    use std::sync::Arc;
    use twinsync::model::Issue;
    use twinsync::store::PgTarget;
    use twinsync::tracker::{Origin, ReferenceTracker, Tracker};
    use twinsync::{ConnectionConfig, Host, HostConfig, Processor, TenantConfig};
    let url = postgres_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let postgres = Some(PgTarget {
        url,
        password: None,
        ca_file: None,
    });
    let trackers = [("a", "AA"), ("b", "BB")].map(|(name, project)| {
        Arc::new(ReferenceTracker::new(&dir.path().join(format!("{name}.db")), project).unwrap())
    });
    let hosts: Vec<Host> = (0..2)
        .map(|i| {
            let host = Host::start(HostConfig {
                postgres: postgres.clone(),
                ..HostConfig::new(dir.path().join(format!("host{i}")))
            })
            .unwrap();
            for ((name, instance, other), tracker) in [("a", "A", "B"), ("b", "B", "A")]
                .into_iter()
                .zip(&trackers)
            {
                host.add_tenant(
                    TenantConfig::new(name, instance, tracker.clone()).connection(
                        ConnectionConfig::new("a-b", other).processor(Processor::builtin("mirror")),
                    ),
                )
                .unwrap();
            }
            host
        })
        .collect();
    const ISSUES: usize = 20;
    let mut keys = Vec::new();
    for n in 0..ISSUES {
        let issue = Issue {
            summary: format!("issue {n} rev 0"),
            status: "Open".into(),
            ..Issue::default()
        };
        let key = trackers[0]
            .create(&issue, Origin::User)
            .unwrap()
            .key
            .unwrap();
        // Through either host: the twin is in the tenant's schema, seen by both.
        hosts[n % 2]
            .tenant("a")
            .unwrap()
            .exalate("a-b", &key)
            .unwrap();
        keys.push(key);
    }
    // Changed while they sync: picked up by whichever host polls a's tracker.
    for key in &keys {
        let mut issue = trackers[0].get(key).unwrap().unwrap();
        issue.summary = issue.summary.replace("rev 0", "rev 1");
        trackers[0].update(&issue, Origin::User).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let b_issues = trackers[1].list().unwrap();
        let synced = b_issues.len() == ISSUES
            && b_issues.iter().all(|i| i.summary.ends_with("rev 1"))
            && hosts.iter().all(|h| {
                ["a", "b"]
                    .iter()
                    .all(|t| h.tenant(t).unwrap().queue().unwrap().pending == 0)
            });
        if synced {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not synced within a minute: {} issues on B, {:?}; queues: {:?}",
            b_issues.len(),
            b_issues.iter().map(|i| &i.summary).collect::<Vec<_>>(),
            hosts
                .iter()
                .flat_map(|h| ["a", "b"].map(|t| h.tenant(t).unwrap().queue().unwrap()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each issue once on B (nobody created it twice), and nothing failed.
    let mut summaries: Vec<String> = trackers[1]
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.summary)
        .collect();
    summaries.sort();
    let mut expected: Vec<String> = (0..ISSUES).map(|n| format!("issue {n} rev 1")).collect();
    expected.sort();
    assert_eq!(summaries, expected);
    for host in &hosts {
        for tenant in ["a", "b"] {
            assert!(
                host.tenant(tenant)
                    .unwrap()
                    .sync_errors()
                    .unwrap()
                    .is_empty()
            );
        }
    }
}

/// Processes sharing a store draw their processors' random bytes from one key: the first
/// makes it, the others read it.
#[test]
fn processes_sharing_a_store_share_the_random_key() {
    let url = postgres_or_skip!();
    let (a, b) = (
        NodeStore::connect(&url, None, None).unwrap(),
        NodeStore::connect(&url, None, None).unwrap(),
    );
    let first = twinsync::setup::shared_random_key(&a).unwrap();
    assert_eq!(twinsync::setup::shared_random_key(&b).unwrap(), first);
    assert_ne!(first, [0; 32]);
    let other = NodeStore::connect(&postgres_or_skip!(), None, None).unwrap();
    assert_ne!(twinsync::setup::shared_random_key(&other).unwrap(), first);
}
