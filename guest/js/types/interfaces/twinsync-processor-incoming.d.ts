// Generated from wit/processor.wit by `scripts/build-polyglot --types` (jco 1.35.0); do not edit.
/// <reference path="./twinsync-processor-types.d.ts" />
declare module 'twinsync:processor/incoming@0.2.1' {
  /**
   * Process one received replica.
   * 
   * - `replica`: what the other side sent now.
   * - `previous`: the replica this side received last time for this twin. Before this
   *   side has received anything for the twin, it is the replica this side *sent* when
   *   it exalated the issue (what the other side created its issue from), so a sync back
   *   arriving at the source can be compared with what the source sent. None only on
   *   first sync of an issue created on the other side.
   * - `issue`: the local issue as it is now; on first sync an empty issue without key,
   *   which the tracker creates from the result.
   * 
   * Returns the issue as it should be stored. Returning `issue` unchanged changes
   * nothing.
   */
  export function process(ctx: SyncContext, replica: Replica, previous: Replica | undefined, issue: Issue): Issue;
  export type SyncContext = import('twinsync:processor/types@0.2.1').SyncContext;
  export type Issue = import('twinsync:processor/types@0.2.1').Issue;
  export type Replica = import('twinsync:processor/types@0.2.1').Issue;
  export type ProcessorError = import('twinsync:processor/types@0.2.1').ProcessorError;
}
