//! The per-event hot path: one invocation of the `mirror` incoming processor on a realistic
//! issue (10 custom fields, 20 comments): new store, instantiate, call, drop. Beside it, the
//! same mapping compiled natively into the host, and the on-demand allocator. The first
//! figures give the processor an empty merge base; "with its merge base" gives it what a
//! real incoming event gets (the local issue at the last sync, a stamp for every field).
//!
//! `cargo bench -p twinsync --bench invocation`

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use twinsync::model::{Comment, Issue};
use twinsync::runtime::{Call, Limits, MergeBase, NoTwins, Plugin, Runtime, RuntimeConfig};

#[path = "support/event.rs"]
mod event;
use event::{Inputs, context, inputs};

/// `mirror` built for contract 0.2.0, kept as a binary (`tests/fixtures/`).
const MIRROR_V0_2_0: &[u8] = include_bytes!("../../tests/fixtures/mirror-v0.2.0.wasm");

// The allocator of the `twinsync` binary, so that this bench measures what users run.
#[global_allocator]
static ALLOCATOR: twinsync::Allocator = twinsync::Allocator;

fn invoke(runtime: &Runtime, plugin: &Plugin, limits: &Limits, inputs: &Inputs) -> Issue {
    invoke_with(runtime, plugin, limits, inputs, MergeBase::default())
}

fn invoke_with(
    runtime: &Runtime,
    plugin: &Plugin,
    limits: &Limits,
    inputs: &Inputs,
    merge_base: MergeBase,
) -> Issue {
    let Inputs {
        replica,
        previous,
        local,
        ..
    } = inputs;
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
    let base = inputs.merge_base.clone();
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
    let tiny = Inputs {
        replica: tiny.clone(),
        previous: tiny.clone(),
        local: tiny,
        merge_base: MergeBase::default(),
    };
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
fn native_mirror(inputs: &Inputs) -> Issue {
    let Inputs {
        replica,
        previous,
        local,
        ..
    } = inputs;
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
