//! `remote-key`: the seed feature. Each side keeps the key of its twin in the custom field
//! "remote issue key". The side that creates the issue on first sync asks for a sync back,
//! so that the source learns the new key without waiting for the next change.

use twinsync_sdk::prelude::*;

const REMOTE_KEY_FIELD: &str = "remote issue key";

struct RemoteKey;

impl Processor for RemoteKey {
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {
        if ctx.first_sync {
            // The other side does not know our key yet: send it back once we exist.
            sync_back_after_processing().map_err(ProcessorError::new)?;
        }
        let mut issue = mirror_incoming(ctx, &replica, previous.as_ref(), issue);
        if let Some(remote_key) = replica.key {
            issue.set_custom_field(REMOTE_KEY_FIELD, FieldValue::Text(remote_key));
        }
        Ok(issue)
    }

    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {
        let mut replica = mirror_outgoing(ctx, issue);
        // Our record of the other side's key means nothing to the other side.
        replica.remove_custom_field(REMOTE_KEY_FIELD);
        Ok(Some(replica))
    }
}

twinsync_sdk::export_processor!(RemoteKey);
