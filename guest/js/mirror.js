// `mirror`: copy the core fields across and merge comments, in both directions.

import { mirrorIncoming, mirrorOutgoing } from './lib/twinsync-helpers.js';

export const incoming = {
  process(ctx, replica, previous, issue) {
    return mirrorIncoming(ctx, replica, previous, issue);
  },
};

export const outgoing = {
  process(ctx, issue) {
    return mirrorOutgoing(ctx, issue);
  },
};
