// A test processor that behaves like `mirror` unless the issue asks otherwise. The custom
// field "test behaviour" (on the replica for incoming, on the issue for outgoing) names what
// to do, as in the Rust `scripted` test processor:
//
// - "error": fail with the processor error "refusing issue on purpose";
// - "panic": throw an uncaught Error ("scripted panic ..."): the component traps and the
//   error with its stack goes to stderr (see `crash` in lib/twinsync-helpers.js);
// - "sync-back-always": ask for a sync back on every event, failing if the host refuses;
// - "sync-back-ignore-error": ask for a sync back and carry on whatever the host answers;
// - outgoing "outgoing-error": fail with "outgoing refused on purpose";
// - outgoing "outgoing-nothing": send nothing.

import {
  SyncBackError,
  customText,
  defineProcessor,
  fail,
  mirrorIncoming,
  mirrorOutgoing,
  syncBackAfterProcessing,
} from './lib/twinsync-helpers.js';

const BEHAVIOUR_FIELD = 'test behaviour';

class ScriptedPanic extends Error {
  constructor(message) {
    super(message);
    this.name = 'ScriptedPanic';
  }
}

export const { incoming, outgoing } = defineProcessor({
  incoming(ctx, replica, previous, issue) {
    switch (customText(replica, BEHAVIOUR_FIELD) ?? '') {
      case 'error':
        throw fail('refusing issue on purpose');
      case 'panic':
        throw new ScriptedPanic(`scripted panic for ${JSON.stringify(replica.key ?? null)}`);
      case 'sync-back-always':
        // Sync back on every event, on both sides: the loop the seed page warns about.
        try {
          syncBackAfterProcessing();
        } catch (error) {
          if (error instanceof SyncBackError) throw fail(error.message);
          throw error;
        }
        break;
      case 'sync-back-ignore-error':
        try {
          syncBackAfterProcessing();
        } catch (error) {
          if (!(error instanceof SyncBackError)) throw error;
        }
        break;
      default:
        break;
    }
    return mirrorIncoming(ctx, replica, previous, issue);
  },

  outgoing(ctx, issue) {
    switch (customText(issue, BEHAVIOUR_FIELD)) {
      case 'outgoing-error':
        throw fail('outgoing refused on purpose');
      case 'outgoing-nothing':
        return undefined;
      default:
        return mirrorOutgoing(ctx, issue);
    }
  },
});
