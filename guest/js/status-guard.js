// `status-guard`: `mirror` with the seed page's conflict avoidance. Outside first sync, a
// replica whose status is the one received (or sent) last time carries no status change, so
// the local status is left alone: a local change made meanwhile survives the stale value
// that a sync back brings.

import { defineProcessor, mirrorIncoming, mirrorOutgoing } from './lib/twinsync-helpers.js';

export const { incoming, outgoing } = defineProcessor({
  incoming(ctx, replica, previous, issue) {
    const statusUnchanged = previous !== undefined && previous.status === replica.status;
    const result = mirrorIncoming(ctx, replica, previous, issue);
    if (!ctx.firstSync && statusUnchanged) {
      result.status = issue.status;
    }
    return result;
  },
  outgoing: mirrorOutgoing,
});
