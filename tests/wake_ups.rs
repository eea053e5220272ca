//! Who wakes whom: a node's loops sleep until their bell rings, and each bell is rung by
//! the work that loop does. A missing ring would not lose anything (every loop also looks
//! again after an idle time), only make a change wait for the next look; so these tests
//! make that look far away (or count the rings) and check that the ring came. The first
//! two guard the bells of a node's own loops (one bell per loop); the third, the bell of a
//! hosted tenant's senders, which its commits did not ring before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use twinsync::service::Wake;
use twinsync::service::workers::event_loop;
use twinsync::transport::local::deliver_loop;
use twinsync_tests::process::{NodeProcess, eventually, pair, remote_key};
use twinsync_tests::tenants::{Api, acme_and_a_node_of_another_process, serve};
use twinsync_tests::*;

const WAIT: Duration = Duration::from_secs(30);

/// Restart `node` with senders that, unless rung, sleep longer than any test here waits.
fn with_sleepy_senders(node: &mut NodeProcess) {
    node.stop();
    node.env
        .push(("TWINSYNC_TEST_SENDER_IDLE_MS".into(), "600000".into()));
    node.restart();
}

/// In one process: Internal's event loop rings the outbox bell when it commits an outgoing
/// event, the delivery rings External's bell (it delivered there) and not Internal's.
#[test]
fn a_commit_rings_the_delivery_and_the_delivery_rings_only_the_receiver() {
    let pair = Pair::new(Side::both("mirror"), Side::both("mirror"));
    let (internal_bell, external_bell, outbox) = (
        Arc::new(Wake::default()),
        Arc::new(Wake::default()),
        Arc::new(Wake::default()),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let bells = [internal_bell.clone(), external_bell.clone()];
    std::thread::scope(|scope| {
        // External's event loop does not run: what reaches it stays in its queue, and
        // nothing comes back to Internal.
        let (node, bell, out, halt) = (
            pair.internal.node.clone(),
            internal_bell.clone(),
            outbox.clone(),
            stop.clone(),
        );
        let internal_loop = scope.spawn(move || event_loop(node, 1, bell, out, halt));
        let delivery = scope.spawn(|| deliver_loop(&pair.network, &outbox, &bells, &stop));

        pair.create_and_exalate(issue("rings"));
        internal_bell.ring();
        eventually(WAIT, "External receives the issue", || {
            !unfinished(&pair.external.node).is_empty()
        });
        stop.store(true, Ordering::Relaxed);
        for bell in [&internal_bell, &external_bell, &outbox] {
            bell.ring();
        }
        internal_loop.join().unwrap();
        delivery.join().unwrap();
    });
    // Counted after the loops stopped; the rings of the stop itself excluded.
    assert!(
        outbox.rings() >= 2,
        "Internal's commit rang the outbox bell: {} rings",
        outbox.rings() - 1
    );
    assert!(
        external_bell.rings() >= 2,
        "the delivery rang External's bell: {} rings",
        external_bell.rings() - 1
    );
    assert_eq!(
        internal_bell.rings(),
        2,
        "only the test rang Internal's bell (nothing was delivered to it)"
    );
}

/// Two `serve` processes whose senders, unless rung, sleep longer than the test: the issue
/// and the key that comes back each leave as soon as their event is committed.
#[test]
fn a_serve_sender_wakes_when_its_node_commits_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let (mut internal, mut external) =
        pair(twinsync_tests::twinsync_binary!(), dir.path(), "remote-key");
    with_sleepy_senders(&mut internal);
    with_sleepy_senders(&mut external);
    let (status, created) = internal.send(
        "POST",
        "/v1/issues",
        json!({"summary": "rung", "status": "Open"}),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let (status, exalated) = internal.send(
        "POST",
        "/v1/exalate",
        json!({"connection": "internal-external", "keys": [key]}),
    );
    assert_eq!(status, 200, "{exalated}");
    eventually(WAIT, "External's key comes back to Internal", || {
        internal
            .issue(&key)
            .and_then(|issue| remote_key(&issue))
            .is_some()
    });
}

/// A tenant hosted by `serve`, whose senders sleep longer than the test unless rung: its
/// issue reaches a node of another process as soon as its event is committed.
#[test]
fn a_hosted_tenants_sender_wakes_when_the_tenant_commits_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = serve(twinsync_tests::twinsync_binary!(), dir.path(), "");
    with_sleepy_senders(&mut host);
    let api = Api::new(host.spec.admin_port);
    let (external, token) =
        acme_and_a_node_of_another_process(twinsync_tests::twinsync_binary!(), dir.path(), &host);
    assert_eq!(
        api.create_and_exalate(&token, "acme-external", "rung"),
        "ACME-1"
    );
    eventually(WAIT, "the tenant's issue reaches External", || {
        external
            .get("/v1/twins")
            .as_array()
            .is_some_and(|twins| !twins.is_empty())
    });
}
