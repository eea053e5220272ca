//! Contract versions side by side: a processor built for the frozen 0.1.0 contract (a
//! binary fixture, never rebuilt) runs next to 0.2.0 ones on the same nodes; 0.2.0 tells a
//! processor which side created the twin and gives it its settings; a component built for
//! a version the host does not run is refused with the versions it does.

use std::collections::BTreeMap;

use twinsync::model::{Issue, Origin};
use twinsync::plugins::manifest::{self, Manifest};
use twinsync::runtime::{Call, Limits, NoTwins, PluginError};
use twinsync_tests::*;

#[test]
fn a_0_1_0_fixture_and_0_2_0_processors_sync_between_the_same_nodes() {
    assert_eq!(processor(MIRROR_V0_1_0).info.contract, "0.1.0");
    assert_eq!(processor(CONTRACT_PROBE).info.contract, "0.2.0");
    assert_eq!(processor("remote-key").info.contract, "0.2.0");
    // Each node runs both versions: 0.2.0 out and 0.1.0 in on Internal, the other way round
    // on External.
    let pair = Pair::new(
        Side::both(CONTRACT_PROBE).incoming(MIRROR_V0_1_0),
        Side::both(MIRROR_V0_1_0).incoming(CONTRACT_PROBE),
    );
    let (key, twin) = pair.create_and_exalate(issue("Printer on fire"));
    pair.run();
    let external = pair.external_issue(&twin).expect("External created it");
    assert_eq!(external.summary, "Printer on fire");
    // Internal's outgoing probe saw its own twin; External's incoming probe the other's.
    assert!(
        external.labels.contains(&"origin-remote".to_string()),
        "{:?}",
        external.labels
    );
    assert!(external.labels.contains(&"greeting-unset".to_string()));

    // Back the other way, through the 0.1.0 processors.
    let external_key = external.key.clone().unwrap();
    edit(&pair.external, &external_key, |issue| {
        issue.summary = "Printer fixed".into()
    });
    pair.external.node.poll_changes().unwrap();
    pair.run();
    assert_eq!(pair.internal_issue(&key).summary, "Printer fixed");
    assert!(failed(&pair.internal.node).is_empty());
    assert!(failed(&pair.external.node).is_empty());
}

fn probe_outgoing(plugin: &twinsync::runtime::Plugin, origin: Origin) -> Vec<String> {
    let limits = Limits::default();
    let mut ctx = first_sync_context();
    ctx.first_sync = false;
    ctx.origin = origin;
    let call = Call {
        ctx,
        limits: &limits,
        can_send: true,
        directory: std::sync::Arc::new(NoTwins),
        merge_base: Default::default(),
    };
    let mut issue = Issue {
        key: Some("INT-1".into()),
        ..issue("Probe")
    };
    issue.labels.clear();
    let replica = plugin
        .run_outgoing(&runtime(), call, &issue)
        .result
        .expect("probe runs")
        .expect("a replica");
    replica.labels
}

#[test]
fn a_0_2_0_processor_reads_the_origin_and_its_settings() {
    let probe = processor(CONTRACT_PROBE);
    assert_eq!(
        probe_outgoing(&probe, Origin::Local),
        ["origin-local", "greeting-unset"]
    );
    assert_eq!(probe_outgoing(&probe, Origin::Remote)[0], "origin-remote");

    // The manifest's default, and the operator's value over it.
    let manifest = Manifest {
        name: "probe".into(),
        vendor: "Tests".into(),
        version: "1.0.0".into(),
        description: String::new(),
        contract: "0.2.0".into(),
        worlds: vec!["outgoing-processor".into()],
        limits: Default::default(),
        homepage: None,
        settings: BTreeMap::from([("greeting".into(), "hello".into())]),
    };
    let wasm = std::fs::read(CONTRACT_PROBE).unwrap();
    let packed = runtime()
        .load("probe.wasm", &manifest::pack(&wasm, &manifest).unwrap())
        .unwrap();
    assert_eq!(probe_outgoing(&packed, Origin::Local)[1], "greeting-hello");
    let tenant = packed.with_settings(&BTreeMap::from([("greeting".into(), "hej".into())]));
    assert_eq!(probe_outgoing(&tenant, Origin::Local)[1], "greeting-hej");

    // A manifest claiming the other contract is refused.
    let wrong = Manifest {
        contract: "0.1.0".into(),
        ..manifest
    };
    let error = runtime()
        .load("probe.wasm", &manifest::pack(&wasm, &wrong).unwrap())
        .unwrap_err();
    assert!(
        error.to_string().contains("built for contract 0.1.0"),
        "{error}"
    );
}

#[test]
fn a_component_for_an_unknown_contract_version_is_refused_with_the_supported_ones() {
    // The probe, renamed to contract 0.9.0: every import and export of our package.
    let mut wasm = std::fs::read(CONTRACT_PROBE).unwrap();
    let mut renamed = 0;
    for name in ["incoming", "outgoing", "sync-helper", "types"] {
        let from = format!("twinsync:processor/{name}@0.2.0");
        let to = format!("twinsync:processor/{name}@0.9.0");
        let mut at = 0;
        while let Some(i) = find(&wasm[at..], from.as_bytes()) {
            wasm[at + i..at + i + to.len()].copy_from_slice(to.as_bytes());
            at += i + to.len();
            renamed += 1;
        }
    }
    assert!(renamed >= 3, "{renamed}");
    let error = runtime().load("future.wasm", &wasm).unwrap_err();
    assert!(matches!(error, PluginError::Incompatible { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("built for contract twinsync:processor@0.9.0"),
        "{message}"
    );
    assert!(
        message.contains("it runs versions 0.1.0, 0.2.0"),
        "{message}"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
