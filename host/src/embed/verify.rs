//! Reconciliation of every tenant from one host thread: each tenant's twins are compared
//! with what was last exchanged (`Node::verify`) every `TenantConfig::verify_every`, the
//! first time at a point of that period that depends on the tenant's name, so that 10,000
//! tenants added at once are not all verified at once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Shared;
use super::roster::{Refresh, Roster};
use super::tenant::Running;

/// How often the loop looks for a tenant due.
const STEP: Duration = Duration::from_millis(100);

impl Shared {
    /// Verify the tenants as they fall due until the host stops.
    pub(super) fn verify_loop(&self) {
        let mut due: HashMap<String, Instant> = HashMap::new();
        let mut roster = Roster::default();
        while !self.stop.load(Ordering::Relaxed) {
            if roster.refresh(self) == Refresh::Read {
                let tenants = &roster.tenants;
                let now = Instant::now();
                // New tenants get a first time, gone ones are forgotten (added again, one
                // starts afresh).
                let mut next = HashMap::with_capacity(tenants.len());
                for tenant in tenants {
                    if let Some(every) = tenant.verify_every {
                        let at = due
                            .remove(&tenant.name)
                            .unwrap_or_else(|| now + every.mul_f64(stagger(&tenant.name)));
                        next.insert(tenant.name.clone(), at);
                    }
                }
                due = next;
            }
            for tenant in &roster.tenants {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let (Some(every), Some(at)) = (tenant.verify_every, due.get_mut(&tenant.name))
                else {
                    continue;
                };
                if Instant::now() < *at {
                    continue;
                }
                *at = Instant::now() + every;
                verify(tenant);
            }
            std::thread::sleep(STEP);
        }
    }
}

fn verify(tenant: &Running) {
    let _verifying = tenant.verifying.lock().unwrap_or_else(|e| e.into_inner());
    if tenant.stop.load(Ordering::Relaxed) {
        return;
    }
    let report =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tenant.node.verify(None)));
    match report {
        Ok(Ok(report)) => {
            tracing::info!(
                tenant = tenant.name,
                checked = report.checked,
                busy = report.busy,
                fixed = report.fixed,
                errors = report.errors,
                "verified the twins"
            );
            if report.fixed > 0 {
                tenant.wake.ring();
            }
        }
        Ok(Err(error)) => tracing::warn!(tenant = tenant.name, "verify failed: {error:#}"),
        Err(panic) => tracing::error!(
            tenant = tenant.name,
            "verify panicked: {}",
            crate::service::supervise::panic_message(&*panic)
        ),
    }
}

/// Where in its period a tenant's first verification falls: a fraction in [0, 1) from its
/// name (FNV-1a), the same at every start.
pub(super) fn stagger(name: &str) -> f64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % 10_000) as f64 / 10_000.0
}
