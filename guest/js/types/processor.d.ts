// Generated from wit/processor.wit by `scripts/build-polyglot --types` (jco 1.35.0); do not edit.
/// <reference path="./interfaces/twinsync-processor-incoming.d.ts" />
/// <reference path="./interfaces/twinsync-processor-outgoing.d.ts" />
/// <reference path="./interfaces/twinsync-processor-sync-helper.d.ts" />
/// <reference path="./interfaces/twinsync-processor-types.d.ts" />
declare module 'twinsync:processor/processor@0.2.1' {
  export type * as TwinsyncProcessorSyncHelper021 from 'twinsync:processor/sync-helper@0.2.1'; // import twinsync:processor/sync-helper@0.2.1
  export type * as TwinsyncProcessorTypes021 from 'twinsync:processor/types@0.2.1'; // import twinsync:processor/types@0.2.1
  export * as incoming from 'twinsync:processor/incoming@0.2.1'; // export twinsync:processor/incoming@0.2.1
  export * as outgoing from 'twinsync:processor/outgoing@0.2.1'; // export twinsync:processor/outgoing@0.2.1
}
