// Generated from wit/processor.wit by `scripts/build-polyglot --types` (jco 1.35.0); do not edit.
/// <reference path="./twinsync-processor-types.d.ts" />
declare module 'twinsync:processor/outgoing@0.2.1' {
  /**
   * Build the replica of a local issue that changed. Returning none sends nothing.
   */
  export function process(ctx: SyncContext, issue: Issue): Replica | undefined;
  export type SyncContext = import('twinsync:processor/types@0.2.1').SyncContext;
  export type Issue = import('twinsync:processor/types@0.2.1').Issue;
  export type Replica = import('twinsync:processor/types@0.2.1').Issue;
  export type ProcessorError = import('twinsync:processor/types@0.2.1').ProcessorError;
}
