// `remote-key`: each side keeps the key of its twin in the custom field "remote issue key".
// The side that creates the issue on first sync asks for a sync back, so that the source
// learns the new key without waiting for the next change; on a one-way connection nothing
// can go back, so it does not ask. It also keeps the seed page's status guard (see
// `status-guard`): these helpers merge by taking every remote change, so a stale status that
// a sync back brings would otherwise undo a local change made right after exalating.

import {
  SyncBackError,
  defineProcessor,
  fail,
  mirrorIncoming,
  mirrorOutgoing,
  removeCustomField,
  setCustomField,
  syncBackAfterProcessing,
  text,
} from './lib/twinsync-helpers.js';

const REMOTE_KEY_FIELD = 'remote issue key';

export const { incoming, outgoing } = defineProcessor({
  incoming(ctx, replica, previous, issue) {
    if (ctx.firstSync && ctx.direction === 'bidirectional') {
      // The other side does not know our key yet: send it back once we exist.
      try {
        syncBackAfterProcessing();
      } catch (error) {
        if (error instanceof SyncBackError) throw fail(error.message);
        throw error;
      }
    }
    const statusUnchanged = previous !== undefined && previous.status === replica.status;
    const result = mirrorIncoming(ctx, replica, previous, issue);
    if (!ctx.firstSync && statusUnchanged) {
      result.status = issue.status;
    }
    if (replica.key !== undefined && replica.key !== null) {
      setCustomField(result, REMOTE_KEY_FIELD, text(replica.key));
    }
    return result;
  },

  outgoing(ctx, issue) {
    const replica = mirrorOutgoing(ctx, issue);
    // Our record of the other side's key means nothing to the other side.
    removeCustomField(replica, REMOTE_KEY_FIELD);
    return replica;
  },
});
