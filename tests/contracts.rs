//! Contract versions side by side: processors built for older contracts (binary fixtures,
//! never rebuilt: 0.1.0 and 0.2.0) run next to current ones on the same nodes; 0.2.0 tells
//! a processor which side created the twin and gives it its settings; 0.2.1's field bases
//! settle fields as the whole merge base does; a component built for a version the host
//! does not run is refused with the versions it does.

use std::collections::BTreeMap;

use twinsync::model::fields::{FieldStamps, stamp_local_writes, stamp_write};
use twinsync::model::{FieldValue, Issue, Origin, sample_issue};
use twinsync::plugins::manifest::{self, Manifest};
use twinsync::runtime::{
    CONTRACT_VERSION, Call, ConflictPolicy, FieldPolicy, FieldStamp, Limits, MergeBase, NoTwins,
    PluginError,
};
use twinsync_tests::*;

#[test]
fn a_0_1_0_fixture_and_current_processors_sync_between_the_same_nodes() {
    assert_eq!(processor(MIRROR_V0_1_0).info.contract, "0.1.0");
    assert_eq!(processor(CONTRACT_PROBE).info.contract, CONTRACT_VERSION);
    assert_eq!(processor("remote-key").info.contract, CONTRACT_VERSION);
    // Each node runs both versions: the current one out and 0.1.0 in on Internal, the
    // other way round on External.
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

/// The 0.2.0 `mirror` between two nodes: it still links (its imports are 0.2.0's, which
/// the host serves with 0.2.1's) and merges three ways.
#[test]
fn a_0_2_0_fixture_syncs_and_merges_beside_current_processors() {
    assert_eq!(processor(MIRROR_V0_2_0).info.contract, "0.2.0");
    let pair = Pair::new(
        Side::both("mirror").incoming(MIRROR_V0_2_0),
        Side::both(MIRROR_V0_2_0).incoming("mirror"),
    );
    let (key, twin) = pair.create_and_exalate(issue("Printer on fire"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();
    // A change on each side, to different fields: each side keeps its own and takes the
    // other's, whichever version merges.
    edit(&pair.internal, &key, |issue| {
        issue.summary = "Printer fixed".into()
    });
    edit(&pair.external, &external_key, |issue| {
        issue.priority = Some("High".into())
    });
    pair.internal.node.poll_changes().unwrap();
    pair.external.node.poll_changes().unwrap();
    pair.run();
    for issue in [
        pair.internal_issue(&key),
        pair.external_issue(&twin).unwrap(),
    ] {
        assert_eq!(issue.summary, "Printer fixed");
        assert_eq!(issue.priority.as_deref(), Some("High"));
    }
    assert!(failed(&pair.internal.node).is_empty());
    assert!(failed(&pair.external.node).is_empty());
}

/// `read-field-base` (0.2.1) against `read-merge-base`: the current `mirror` and the 0.2.0
/// one, on the same event, under every policy, keep the same values, record the same
/// conflicts and log the same decisions. The event has a field changed on the other side
/// only, one changed on both (a conflict), one changed here only, and a custom field
/// with its own policy.
#[test]
fn field_bases_settle_fields_as_the_whole_merge_base_does() {
    let (current, whole) = (processor("mirror"), processor(MIRROR_V0_2_0));
    let previous = sample_issue(4, 2);
    let mut local = previous.clone();
    local.key = Some("EXT-7".into());
    local.status = "Blocked".into();
    local.priority = Some("Low".into());
    local.set_custom_field("field 1", FieldValue::Number(7.0));
    let mut replica = previous.clone();
    replica.summary = "Checkout fixed".into();
    replica.status = "Done".into();
    replica.set_custom_field("field 1", FieldValue::Number(9.0));

    let stamped = |issue: &Issue, at, by: &str| {
        let mut stamps = FieldStamps::new();
        stamp_local_writes(&mut stamps, None, issue, at, by);
        stamps
    };
    let previous_remote = stamped(&previous, 1_000, "Internal");
    let mut local_stamps = previous_remote.clone();
    for field in ["status", "priority", "custom-field:field 1"] {
        stamp_write(&mut local_stamps, field, 3_000, "External");
    }
    let mut remote = previous_remote.clone();
    for field in ["summary", "status", "custom-field:field 1"] {
        stamp_write(&mut remote, field, 2_000, "Internal");
    }
    let mut ctx = first_sync_context();
    ctx.first_sync = false;
    ctx.reason = twinsync::model::SyncReason::LocalChange;
    let limits = Limits::default();
    for policy in [
        ConflictPolicy::Overwrite,
        ConflictPolicy::RemoteWins,
        ConflictPolicy::LocalWins,
        ConflictPolicy::LastWriterWins,
        ConflictPolicy::HoldForReview,
    ] {
        let base = MergeBase {
            local: Some(local.clone()),
            local_stamps: FieldStamp::list(&local_stamps),
            remote_stamps: FieldStamp::list(&remote),
            previous_remote_stamps: FieldStamp::list(&previous_remote),
            default_policy: policy,
            policies: vec![FieldPolicy {
                field: "custom-field:field 1".into(),
                policy: ConflictPolicy::RemoteWins,
            }],
        };
        let run = |plugin: &twinsync::runtime::Plugin| {
            let call = Call {
                ctx: ctx.clone(),
                limits: &limits,
                can_send: true,
                directory: std::sync::Arc::new(NoTwins),
                merge_base: base.clone(),
            };
            plugin.run_incoming(&runtime(), call, &replica, Some(&previous), &local)
        };
        let (new, old) = (run(&current), run(&whole));
        let merged = new.result.expect("the current mirror merges");
        assert_eq!(Ok(&merged), old.result.as_ref(), "{policy:?}");
        assert_eq!(new.conflicts, old.conflicts, "{policy:?}");
        assert_eq!(new.log, old.log, "{policy:?}");
        // Not a merge that takes or keeps everything: each side won a field.
        assert_eq!(merged.summary, "Checkout fixed", "{policy:?}");
        assert_eq!(
            merged.custom_field("field 1"),
            Some(&FieldValue::Number(9.0)),
            "{policy:?}"
        );
        if policy != ConflictPolicy::Overwrite {
            assert_eq!(merged.priority.as_deref(), Some("Low"), "{policy:?}");
        }
        if policy == ConflictPolicy::HoldForReview {
            assert_eq!(new.conflicts.len(), 1, "{:?}", new.conflicts);
        }
    }
}

#[test]
fn a_processor_reads_the_origin_and_its_settings() {
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
        contract: CONTRACT_VERSION.into(),
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
    // And says what to write when a project was rebuilt against a newer SDK.
    assert!(
        error
            .to_string()
            .contains(&format!("set `contract = \"{CONTRACT_VERSION}\"`")),
        "{error}"
    );
}

#[test]
fn a_component_for_an_unknown_contract_version_is_refused_with_the_supported_ones() {
    // The probe, renamed to contract 0.9.0: every import and export of our package.
    let mut wasm = std::fs::read(CONTRACT_PROBE).unwrap();
    let mut renamed = 0;
    for name in ["incoming", "outgoing", "sync-helper", "types"] {
        let from = format!("twinsync:processor/{name}@{CONTRACT_VERSION}");
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
        message.contains("it runs versions 0.1.0, 0.2.0, 0.2.1"),
        "{message}"
    );
}

/// 0.2.1 only adds to 0.2.0, which is what lets a 0.2.0 component link against it: every
/// line of the frozen 0.2.0 WIT, comments aside, is in the current one, in the same order
/// (a `use` line may name more types).
#[test]
fn contract_0_2_1_only_adds_to_0_2_0() {
    let code = |path: &str| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("package "))
            .map(str::to_string)
            .collect()
    };
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");
    let old = code(&format!("{wit}/since_v0_2_0/processor.wit"));
    let new = code(&format!("{wit}/processor.wit"));
    assert!(old.len() > 100, "{} lines", old.len());
    let names = |line: &str| -> Vec<String> {
        line.split(['{', '}', ','])
            .skip(1)
            .map(|n| n.trim().trim_end_matches(';').to_string())
            .filter(|n| !n.is_empty())
            .collect()
    };
    let covers = |new: &str, old: &str| match old.strip_suffix("};") {
        Some(_) if old.starts_with("use ") => {
            let prefix = &old[..old.find('{').unwrap()];
            new.starts_with(prefix) && names(old).iter().all(|n| names(new).contains(n))
        }
        _ => new == old,
    };
    let mut rest = new.iter();
    for line in &old {
        assert!(
            rest.any(|l| covers(l, line)),
            "0.2.0's `{line}` is not in the current contract (in this order)"
        );
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
