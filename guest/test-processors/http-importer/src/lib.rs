//! A processor that would like the network: it imports `wasi:http`, which the host does
//! not provide. Installing it must fail with an explanation, not a linker message.

use twinsync_sdk::prelude::*;

struct HttpImporter;

impl Processor for HttpImporter {
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {
        // Never reached on this host; it is here so that the component imports wasi:http.
        let headers = wasi::http::types::Fields::new();
        drop(headers);
        Ok(mirror_incoming(ctx, &replica, previous.as_ref(), issue))
    }
}

twinsync_sdk::export_processor!(HttpImporter);
