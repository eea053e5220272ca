//! A test processor that behaves like `mirror` unless the issue asks otherwise: the custom
//! field `test behaviour` (on the replica for incoming, on the issue for outgoing) names
//! what to do. One guest, many behaviours, so tests choose per twin which one misbehaves,
//! including the hostile ones the sandbox must contain.

use std::hint::black_box;
use std::io::Write;

use twinsync_sdk::host::record_conflict;
use twinsync_sdk::prelude::*;

const BEHAVIOUR_FIELD: &str = "test behaviour";

struct Scripted;

impl Processor for Scripted {
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {
        let behaviour = replica
            .custom_text(BEHAVIOUR_FIELD)
            .unwrap_or("")
            .to_string();
        let mut result = mirror_incoming(ctx, &replica, previous.as_ref(), issue);
        match behaviour.as_str() {
            "error" => return Err(ProcessorError::new("refusing issue on purpose")),
            "panic" => panic!("scripted panic for {:?}", replica.key),
            // Sync back on every event, on both sides: the loop the seed page warns about.
            "sync-back-always" => sync_back_after_processing().map_err(ProcessorError::new)?,
            // Ask for a sync back and carry on whatever the host answers.
            "sync-back-ignore-error" => {
                let _ = sync_back_after_processing();
            }
            "unexalate" => unexalate_after_processing().map_err(ProcessorError::new)?,
            "loop" => spin_forever(),
            "alloc" => allocate_forever(),
            "recurse" => {
                black_box(recurse(0));
            }
            "big-output" => result.description = Some("x".repeat(10 << 20)),
            "invalid-output" => {
                result.due_date = Some("next tuesday".into());
                result.set_custom_field("when", FieldValue::DateTime("yesterday at noon".into()));
            }
            "read-file" => {
                let text = std::fs::read_to_string("/etc/passwd")
                    .map_err(|e| ProcessorError::new(format!("read /etc/passwd: {e}")))?;
                result.description = Some(text);
            }
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                if vars.is_empty() {
                    return Err(ProcessorError::new("environment: empty"));
                }
                result.description = Some(vars.join("\n"));
            }
            "socket" => {
                let connect = std::net::TcpStream::connect("127.0.0.1:22")
                    .map_err(|e| ProcessorError::new(format!("connect 127.0.0.1:22: {e}")));
                let resolve = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
                    .map_err(|e| ProcessorError::new(format!("resolve localhost: {e}")));
                if connect.is_ok() || resolve.is_ok() {
                    result.description = Some("network reachable".into());
                } else {
                    let (Err(c), Err(r)) = (connect, resolve) else {
                        unreachable!()
                    };
                    return Err(ProcessorError::new(format!("{}; {}", c.message, r.message)));
                }
            }
            "sync-back-flood" => {
                for _ in 0..1_000_000 {
                    let _ = sync_back_after_processing();
                }
            }
            "print-flood" => {
                let line = [b'x'; 1023];
                let mut out = std::io::stdout();
                for _ in 0..8 * 1024 {
                    let _ = out.write_all(&line);
                    let _ = out.write_all(b"\n");
                }
            }
            "near-limits" => near_limits(),
            // Sleeping: WASI time is virtual, so these end at once as `timeout`.
            "sleep-30s" => std::thread::sleep(std::time::Duration::from_secs(30)),
            "sleep-forever" => std::thread::sleep(std::time::Duration::from_nanos(u64::MAX)),
            "poll-long" => {
                let long = wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000);
                let never = wasi::clocks::monotonic_clock::subscribe_instant(u64::MAX);
                wasi::io::poll::poll(&[&long, &never]);
                never.block();
            }
            "sleep-briefly" => {
                // Well under the time limit: goes on, and the clock moved by the sleep.
                let before = wasi::clocks::monotonic_clock::now();
                std::thread::sleep(std::time::Duration::from_millis(500));
                let slept = wasi::clocks::monotonic_clock::now() - before;
                result.description = Some(format!("slept {} ms", slept / 1_000_000));
            }
            // Handing the host far more than it may keep: one 60 MB buffer, eight times.
            "conflict-flood" => {
                let value = "v".repeat(60_000_000);
                for _ in 0..8 {
                    record_conflict("summary", &value, &value);
                }
            }
            "lookup-flood" => {
                let key = "k".repeat(50_000_000);
                black_box(local_key_for_remote(&key));
            }
            // Many small conflicts: each call is small, together they pass the budget.
            "conflict-drip" => {
                let value = "d".repeat(4_000);
                for _ in 0..400 {
                    record_conflict("summary", &value, &value);
                }
            }
            "many-fields" => {
                for i in 0..50_000 {
                    result.custom_fields.push(CustomField {
                        name: format!("f{i}"),
                        value: FieldValue::Null,
                    });
                }
                // One duplicate, last: found at once, not after 50,000 x 50,000 comparisons.
                result.custom_fields.push(CustomField {
                    name: "f0".into(),
                    value: FieldValue::Null,
                });
            }
            "aliased-output" => alias_one_buffer(&mut result, 2 << 20, 1_000),
            "big-frames" => {
                black_box(big_frames(0));
            }
            "exit" => std::process::exit(3),
            "key-on-first-sync" => result.key = Some("MADE-UP-1".into()),
            _ => {}
        }
        Ok(result)
    }

    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {
        match issue.custom_text(BEHAVIOUR_FIELD) {
            Some("outgoing-error") => Err(ProcessorError::new("outgoing refused on purpose")),
            Some("outgoing-nothing") => Ok(None),
            Some("outgoing-other-key") => {
                let mut replica = mirror_outgoing(ctx, issue);
                replica.key = Some("SOMEONE-ELSES-1".into());
                Ok(Some(replica))
            }
            Some("outgoing-record-conflict") => {
                record_conflict("summary", "mine", "theirs");
                Ok(Some(mirror_outgoing(ctx, issue)))
            }
            Some("outgoing-loop") => spin_forever(),
            Some("outgoing-sleep") => {
                std::thread::sleep(std::time::Duration::from_secs(3_600));
                Ok(Some(mirror_outgoing(ctx, issue)))
            }
            _ => Ok(Some(mirror_outgoing(ctx, issue))),
        }
    }
}

fn spin_forever() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn allocate_forever() -> ! {
    let mut blocks = Vec::new();
    loop {
        blocks.push(black_box(vec![1u8; 1 << 20]));
    }
}

// Unbounded on purpose: the host must stop it.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

/// Recursion with 64 KiB frames: a few dozen calls run past the start of Rust's stack in
/// linear memory (1 MiB), below address 0.
#[allow(unconditional_recursion)]
fn big_frames(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 64 << 10]);
    black_box(big_frames(black_box(depth + 1))) + frame[black_box(7)] as u64
}

/// Fill the result with `count` custom fields whose text values all point at one buffer of
/// `size` bytes: small in guest memory, `count` times `size` if the host copied each.
fn alias_one_buffer(result: &mut Issue, size: usize, count: usize) {
    let buffer = std::mem::ManuallyDrop::new("a".repeat(size));
    for i in 0..count {
        // SAFETY: never dropped or mutated (the instance is thrown away after the call);
        // the strings only alias the buffer so the host sees many references to it.
        let alias = unsafe {
            String::from_raw_parts(buffer.as_ptr() as *mut u8, buffer.len(), buffer.capacity())
        };
        result.custom_fields.push(CustomField {
            name: format!("alias {i}"),
            value: FieldValue::Text(alias),
        });
    }
}

/// Work that fits the default limits with room to spare, but not much: 40 MiB touched (of
/// 64), 1,000 frames deep, about 63 M units of fuel (of 100 M).
fn near_limits() {
    let block = black_box(vec![7u8; 40 << 20]);
    black_box(block.iter().step_by(4096).map(|b| *b as u64).sum::<u64>());
    fn frames(depth: u32) -> u32 {
        if depth == 0 {
            0
        } else {
            black_box(frames(black_box(depth - 1))) + 1
        }
    }
    black_box(frames(1_000));
    let mut x = 0u64;
    for i in 0..black_box(1_000_000u64) {
        x = black_box(x.wrapping_mul(31).wrapping_add(i));
    }
}

twinsync_sdk::export_processor!(Scripted);
