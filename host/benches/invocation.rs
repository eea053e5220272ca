//! The per-event hot path: one invocation of the `mirror` incoming processor on a realistic
//! issue (10 custom fields, 20 comments): new store, instantiate, call, drop. Beside it, the
//! same mapping compiled natively into the host, and the on-demand allocator. The first
//! figures give the processor an empty merge base; "with its merge base" gives it what a
//! real incoming event gets (the local issue at the last sync, a stamp for every field).
//!
//! `cargo bench -p twinsync --bench invocation`

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use twinsync::model::fields::{FieldStamps, stamp_local_writes, stamp_write};
use twinsync::model::{Comment, Direction, Issue, SyncContext, SyncReason, sample_issue};
use twinsync::runtime::{
    Call, ConflictPolicy, FieldStamp, Limits, MergeBase, NoTwins, Plugin, Runtime, RuntimeConfig,
};

/// `mirror` built for contract 0.2.0, kept as a binary (`tests/fixtures/`).
const MIRROR_V0_2_0: &[u8] = include_bytes!("../../tests/fixtures/mirror-v0.2.0.wasm");

// The allocator of the `twinsync` binary, so that this bench measures what users run.
#[global_allocator]
static ALLOCATOR: twinsync::Allocator = twinsync::Allocator;

fn context() -> SyncContext {
    SyncContext {
        connection: "internal-external".into(),
        local_instance: "External".into(),
        remote_instance: "Internal".into(),
        direction: Direction::Bidirectional,
        first_sync: false,
        event_id: "Internal-42".into(),
        reason: SyncReason::LocalChange,
        hop: 0,
        now: "2026-11-27T20:00:00Z".into(),
        origin: twinsync::model::Origin::Remote,
    }
}

/// The inputs of one event: the replica just received, the previous one, the local issue.
fn inputs() -> (Issue, Issue, Issue) {
    let replica = sample_issue(10, 20);
    let mut previous = replica.clone();
    previous.comments.pop();
    previous.summary = "Checkout fails".into();
    let mut local = previous.clone();
    local.key = Some("EXT-7".into());
    (replica, previous, local)
}

/// The merge base a real incoming event with `inputs` gets: the local issue as it was at
/// the last sync, and each side's stamp of every field; the replica's summary was written
/// on Internal after the previous replica.
fn merge_base(inputs: &(Issue, Issue, Issue)) -> MergeBase {
    let (_, previous, local) = inputs;
    let stamps = |issue: &Issue, by: &str| {
        let mut stamps = FieldStamps::new();
        stamp_local_writes(&mut stamps, None, issue, 1_767_225_600_000, by);
        stamps
    };
    let previous_remote = stamps(previous, "Internal");
    let mut remote = previous_remote.clone();
    stamp_write(&mut remote, "summary", 1_767_225_700_000, "Internal");
    MergeBase {
        local: Some(local.clone()),
        local_stamps: FieldStamp::list(&stamps(local, "External")),
        remote_stamps: FieldStamp::list(&remote),
        previous_remote_stamps: FieldStamp::list(&previous_remote),
        default_policy: ConflictPolicy::LastWriterWins,
        policies: Vec::new(),
    }
}

fn invoke(
    runtime: &Runtime,
    plugin: &Plugin,
    limits: &Limits,
    inputs: &(Issue, Issue, Issue),
) -> Issue {
    invoke_with(runtime, plugin, limits, inputs, MergeBase::default())
}

fn invoke_with(
    runtime: &Runtime,
    plugin: &Plugin,
    limits: &Limits,
    inputs: &(Issue, Issue, Issue),
    merge_base: MergeBase,
) -> Issue {
    let (replica, previous, local) = inputs;
    let call = Call {
        ctx: context(),
        limits,
        can_send: true,
        directory: Arc::new(NoTwins),
        merge_base,
    };
    let outcome = plugin.run_incoming(runtime, call, replica, Some(previous), local);
    outcome.result.expect("mirror succeeds")
}

fn wasm(c: &mut Criterion) {
    let limits = Limits::default();
    let inputs = inputs();
    let mut group = c.benchmark_group("mirror incoming, 10 custom fields, 20 comments");
    for (name, config) in [
        ("wasm, pooling allocator", RuntimeConfig::default()),
        (
            "wasm, on-demand allocator",
            RuntimeConfig {
                pool: None,
                ..RuntimeConfig::default()
            },
        ),
    ] {
        let runtime = Runtime::new(&config).unwrap();
        let plugin = runtime.load("mirror", twinsync::builtin::MIRROR).unwrap();
        let expected = native_mirror(&inputs);
        assert_eq!(
            invoke(&runtime, &plugin, &limits, &inputs),
            expected,
            "wasm and native agree"
        );
        group.bench_function(name, |b| {
            b.iter(|| invoke(&runtime, &plugin, &limits, &inputs))
        });
    }
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let plugin = runtime.load("mirror", twinsync::builtin::MIRROR).unwrap();
    let base = merge_base(&inputs);
    assert_eq!(
        invoke_with(&runtime, &plugin, &limits, &inputs, base.clone()),
        native_mirror(&inputs),
        "the merge base changes nothing here: only the summary changed, on Internal"
    );
    // The base is cloned as the node builds one per event from the twin it stores.
    group.bench_function("wasm, pooling allocator, with its merge base", |b| {
        b.iter(|| invoke_with(&runtime, &plugin, &limits, &inputs, base.clone()))
    });
    // `mirror` as built for contract 0.2.0, which read the whole merge base where the
    // current one asks for the stamps of the fields that differ (`read-field-base`).
    let whole_base = runtime.load("mirror-v0.2.0", MIRROR_V0_2_0).unwrap();
    assert_eq!(whole_base.info.contract, "0.2.0");
    group.bench_function(
        "wasm, pooling allocator, with its merge base, read whole (contract 0.2.0)",
        |b| b.iter(|| invoke_with(&runtime, &whole_base, &limits, &inputs, base.clone())),
    );
    group.bench_function("native, same mapping", |b| {
        b.iter(|| native_mirror(&inputs))
    });
    group.finish();

    // The fixed cost of an invocation (new store, instantiate, call, drop) without the
    // cost of moving a big issue in and out: an issue with two short strings.
    let tiny = Issue {
        summary: "x".into(),
        status: "Open".into(),
        ..Issue::default()
    };
    let tiny = (tiny.clone(), tiny.clone(), tiny);
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let plugin = runtime.load("mirror", twinsync::builtin::MIRROR).unwrap();
    c.bench_function(
        "mirror incoming, minimal issue/wasm, pooling allocator",
        |b| b.iter(|| invoke(&runtime, &plugin, &limits, &tiny)),
    );
}

/// `mirror_incoming` of the SDK (guest/sdk/src/merge.rs and comments.rs) under the default
/// policy, on the host's types. Like the processor, it builds a new issue from borrowed
/// inputs.
fn native_mirror(inputs: &(Issue, Issue, Issue)) -> Issue {
    let (replica, previous, local) = inputs;
    let mut issue = local.clone();
    for field in &replica.custom_fields {
        if issue.custom_field(&field.name) != Some(&field.value) {
            issue.set_custom_field(&field.name, field.value.clone());
        }
    }
    issue.issue_type = replica.issue_type.clone();
    issue.summary = replica.summary.clone();
    issue.description = replica.description.clone();
    issue.status = replica.status.clone();
    issue.priority = replica.priority.clone();
    issue.resolution = replica.resolution.clone();
    issue.labels = replica.labels.clone();
    issue.components = replica.components.clone();
    issue.due_date = replica.due_date.clone();
    let same = |a: &Comment, b: &Comment| a.created == b.created && a.body.trim() == b.body.trim();
    for comment in &replica.comments {
        let before = previous.comments.iter().find(|old| old.id == comment.id);
        if let Some(own) = comment.id.strip_prefix("local:") {
            let edited = before.is_some_and(|old| old.body != comment.body);
            if let Some(mine) = issue.comments.iter_mut().find(|mine| mine.id == own)
                && edited
            {
                mine.body = comment.body.clone();
                mine.updated = comment.updated.clone();
            }
            continue;
        }
        let copy_id = format!("remote:{}", comment.id);
        let have = issue
            .comments
            .iter()
            .any(|mine| mine.id == copy_id || same(mine, comment));
        if !have && before.is_none() {
            issue.comments.push(Comment {
                id: copy_id,
                internal: false,
                ..comment.clone()
            });
        }
    }
    issue
}

criterion_group!(benches, wasm);
criterion_main!(benches);
