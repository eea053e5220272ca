//! Installing processors: what is not a processor is refused with a message saying why;
//! what is one runs on inputs of any size.

use std::sync::Arc;

use twinsync::model::{Issue, sample_issue};
use twinsync::runtime::{CONTRACT_VERSION, Call, Limits, NoTwins, PluginError};
use twinsync::sync::{Connection, Flow};
use twinsync_tests::*;

fn load(bytes: &[u8]) -> PluginError {
    runtime()
        .load("candidate.wasm", bytes)
        .expect_err("must be refused")
}

#[test]
fn random_bytes_are_not_webassembly() {
    let error = load(b"definitely not wasm");
    assert!(matches!(error, PluginError::NotWasm { .. }));
    assert!(
        error.to_string().contains("not a WebAssembly file"),
        "{error}"
    );
}

#[test]
fn a_core_module_is_not_a_component() {
    let error = load(b"\0asm\x01\0\0\0");
    assert!(matches!(error, PluginError::CoreModule { .. }));
    assert!(error.to_string().contains("wasm32-wasip2"), "{error}");
}

#[test]
fn a_truncated_component_is_invalid() {
    let wasm = twinsync::builtin::MIRROR;
    let error = load(&wasm[..wasm.len() / 2]);
    assert!(matches!(error, PluginError::Invalid { .. }), "{error}");
}

#[test]
fn a_component_of_another_world_says_which_world_is_missing() {
    let wasm = std::fs::read(WRONG_WORLD).unwrap();
    let error = load(&wasm);
    let message = error.to_string();
    assert!(
        matches!(error, PluginError::Incompatible { .. }),
        "{message}"
    );
    assert!(
        message.contains("neither world `incoming-processor` nor `outgoing-processor`"),
        "{message}"
    );
    assert!(message.contains("wasi:cli/run"), "{message}");
}

#[test]
fn the_examples_implement_both_worlds() {
    for (name, _) in twinsync::builtin::ALL {
        let plugin = processor(name);
        assert_eq!(
            plugin.info.worlds,
            ["incoming-processor", "outgoing-processor"],
            "{name}"
        );
    }
    // Imports: our contract and WASI 0.2, nothing else.
    for (name, _) in twinsync::builtin::ALL {
        for import in &processor(name).info.imports {
            let known = import.starts_with("twinsync:processor/") || import.starts_with("wasi:");
            assert!(
                known && (import.ends_with("@0.2.0") || import.contains("@0.2.")),
                "{name} imports {import}"
            );
        }
    }
    assert!(processor("remote-key").info.imports.contains(&format!(
        "twinsync:processor/sync-helper@{CONTRACT_VERSION}"
    )));
}

#[test]
fn a_connection_checks_its_processors_fit() {
    let error = Connection::new(
        "c",
        "Remote",
        Flow::Bidirectional,
        None,
        Some(processor("mirror")),
        Default::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("needs an incoming processor"),
        "{error}"
    );
}

#[test]
fn the_compile_cache_survives_restarts_and_rebuilds_bad_entries() {
    use twinsync::runtime::{Compiled, Runtime, RuntimeConfig};
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let load = || {
        let runtime = Runtime::new(&config).unwrap();
        runtime
            .load("mirror", twinsync::builtin::MIRROR)
            .unwrap()
            .compiled
    };
    assert_eq!(load(), Compiled::Cached, "first start compiles and stores");
    assert_eq!(
        load(),
        Compiled::FromCache,
        "a restart loads the compiled artifact"
    );

    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    assert_eq!(
        load(),
        Compiled::Cached,
        "a corrupt entry is compiled again"
    );
    assert_eq!(load(), Compiled::FromCache, "and replaced by a good one");

    std::fs::write(&entry, &bytes[..100]).unwrap();
    assert_eq!(
        load(),
        Compiled::Cached,
        "a truncated entry is compiled again"
    );
}

/// The SDK's allocator hands out memory from a 256 KiB arena first and grows linear memory
/// beyond it (`guest/sdk/src/bump.rs`): an issue whose copies do not fit in the arena comes
/// out whole, every comment in order.
#[test]
fn a_processor_handles_an_issue_larger_than_its_allocation_arena() {
    let run = |replica: &Issue| {
        let call = Call {
            ctx: first_sync_context(),
            limits: &Limits::default(),
            can_send: true,
            directory: Arc::new(NoTwins),
            merge_base: Default::default(),
        };
        processor("mirror").run_incoming(&runtime(), call, replica, None, &Issue::default())
    };
    let small = run(&sample_issue(1, 1));
    assert!(small.result.is_ok(), "{:?}", small.result);
    // 200 comments of 2 KB: 400 KB of text, copied in and out (more comments would spend
    // the instruction limit on the comment merge, which compares every pair).
    let mut replica = sample_issue(50, 200);
    for comment in &mut replica.comments {
        comment.body = comment.body.repeat(2_048 / comment.body.len() + 1);
    }
    let outcome = run(&replica);
    let issue = outcome.result.expect("mirror succeeds");
    assert!(
        outcome.peak_memory > small.peak_memory,
        "the copies should need more than the arena: peak {} bytes, {} for a small issue",
        outcome.peak_memory,
        small.peak_memory
    );
    assert_eq!(issue.summary, replica.summary);
    assert_eq!(issue.custom_fields, replica.custom_fields);
    assert_eq!(issue.comments.len(), replica.comments.len());
    for (copy, original) in issue.comments.iter().zip(&replica.comments) {
        assert_eq!(copy.id, format!("remote:{}", original.id));
        assert_eq!(copy.body, original.body);
        assert_eq!(copy.author, original.author);
    }
}
