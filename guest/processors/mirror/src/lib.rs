//! `mirror`: the default processor. Copies the core fields both ways and merges comments;
//! internal comments stay home. Never syncs back.

use twinsync_sdk::Processor;

struct Mirror;

// Both sides are the SDK's defaults: `mirror_outgoing` and `mirror_incoming`.
impl Processor for Mirror {}

twinsync_sdk::export_processor!(Mirror);
