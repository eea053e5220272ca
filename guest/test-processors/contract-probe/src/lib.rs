//! `contract-probe`: the default mirror, plus labels that show what contract 0.2.0 tells a
//! processor: `origin-local` or `origin-remote` (which side created the twin), and
//! `greeting-VALUE` for its setting `greeting` (none: `greeting-unset`).

use twinsync_sdk::prelude::*;

struct Probe;

fn labels(ctx: &SyncContext, issue: &mut Issue) {
    let origin = match ctx.origin {
        Origin::Local => "origin-local",
        Origin::Remote => "origin-remote",
    };
    let greeting = format!(
        "greeting-{}",
        setting("greeting").unwrap_or_else(|| "unset".into())
    );
    issue
        .labels
        .retain(|l| !l.starts_with("origin-") && !l.starts_with("greeting-"));
    issue.labels.push(origin.into());
    issue.labels.push(greeting);
}

impl Processor for Probe {
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {
        let mut issue = mirror_incoming(ctx, &replica, previous.as_ref(), issue);
        labels(ctx, &mut issue);
        Ok(issue)
    }

    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {
        let mut replica = mirror_outgoing(ctx, issue);
        labels(ctx, &mut replica);
        Ok(Some(replica))
    }
}

twinsync_sdk::export_processor!(Probe);
