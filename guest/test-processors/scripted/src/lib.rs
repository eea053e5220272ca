//! A test processor that behaves like `mirror` unless the issue asks otherwise: the custom
//! field `test behaviour` (on the replica for incoming, on the issue for outgoing) names
//! what to do. One guest, many behaviours, so tests choose per twin which one misbehaves.

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
        match behaviour.as_str() {
            "error" => return Err(ProcessorError::new("refusing issue on purpose")),
            "panic" => panic!("scripted panic for {:?}", replica.key),
            // Sync back on every event, on both sides: the loop the seed page warns about.
            "sync-back-always" => sync_back_after_processing().map_err(ProcessorError::new)?,
            // Ask for a sync back and carry on whatever the host answers.
            "sync-back-ignore-error" => {
                let _ = sync_back_after_processing();
            }
            _ => {}
        }
        Ok(mirror_incoming(ctx, &replica, previous.as_ref(), issue))
    }

    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {
        match issue.custom_text(BEHAVIOUR_FIELD) {
            Some("outgoing-error") => Err(ProcessorError::new("outgoing refused on purpose")),
            Some("outgoing-nothing") => Ok(None),
            _ => Ok(Some(mirror_outgoing(ctx, issue))),
        }
    }
}

twinsync_sdk::export_processor!(Scripted);
