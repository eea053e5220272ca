//! A test processor that behaves like `mirror` unless the issue asks otherwise: the custom
//! field `test behaviour` (on the replica for incoming, on the issue for outgoing) names
//! what to do. One guest, many behaviours, so tests choose per twin which one misbehaves,
//! including the hostile ones the sandbox must contain.

use std::hint::black_box;
use std::io::Write;

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
            _ => {}
        }
        Ok(result)
    }

    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {
        match issue.custom_text(BEHAVIOUR_FIELD) {
            Some("outgoing-error") => Err(ProcessorError::new("outgoing refused on purpose")),
            Some("outgoing-nothing") => Ok(None),
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
