// `mirror`: copy the core fields across and merge comments, in both directions.

import { defineProcessor, mirrorIncoming, mirrorOutgoing } from './lib/twinsync-helpers.js';

export const { incoming, outgoing } = defineProcessor({
  incoming: mirrorIncoming,
  outgoing: mirrorOutgoing,
});
