// `remote-key`: each side keeps the key of its twin in the custom field "remote issue key".
// The side that creates the issue on first sync asks for a sync back, so that the source
// learns the new key without waiting for the next change; on a one-way connection nothing
// can go back, so it does not ask. It also keeps the seed page's status guard (see
// `status-guard`) where the connection's status policy is `overwrite`: outside first sync, a
// replica whose status is the one received last time carries no status change, so a local
// status change made meanwhile survives the stale status a sync back brings. With the other
// policies the three-way merge already tells a stale status from a change, and
// second-guessing it could leave the sides apart.

import {
  Merger,
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
    if (!ctx.firstSync && statusUnchanged && new Merger(ctx).policy('status') === 'overwrite') {
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
