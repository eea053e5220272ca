// Generated from wit/processor.wit by `scripts/build-polyglot --types` (jco 1.35.0); do not edit.
/// <reference path="./twinsync-processor-types.d.ts" />
declare module 'twinsync:processor/sync-helper@0.2.1' {
  /**
   * Ask the host to send this issue back to the other side once this incoming processing
   * is committed, as if the issue had changed locally. The typical use is on first sync:
   * the side that created the issue tells the other side its new key.
   * 
   * The request takes effect only if the processor then returns successfully. Calling it
   * more than once in one event has the effect of calling it once.
   * 
   * Errors (returned, so that the processor can decide what to do):
   * - the connection is unidirectional: this side cannot send anything back. A processor
   *   that ignores this error and returns successfully ends the event as a sync error
   *   that names this rule;
   * - called from an outgoing processor: only incoming processing can sync back.
   * 
   * Loops: changes made by incoming processing never trigger a sync by themselves; a sync
   * back is the only exception. The host counts sync backs in a row (`hop` in the
   * context) and stops a chain that bounces between the sides without changing the
   * replica, recording a sync error for the twin.
   */
  export function syncBackAfterProcessing(): void;
  /**
   * Ask the host to stop syncing this twin once this incoming processing is committed:
   * both sides keep their issue and forget the link (`unExalateAfterProcessing`). The
   * stop is itself an ordered event: what was queued for the twin before it still syncs.
   * 
   * Errors: called from an outgoing processor.
   */
  export function unexalateAfterProcessing(): void;
  /**
   * The key of the local issue twinned with the remote issue `remote-key` on this
   * connection, if that remote issue is under sync.
   */
  export function localKeyForRemote(remoteKey: string): string | undefined;
  /**
   * Whether the local issue `local-key` is under sync on this connection.
   */
  export function isUnderSync(localKey: string): boolean;
  /**
   * What a three-way merge of the replica being processed needs: the local issue at the
   * last sync, when each field changed on each side, and the connection's policies.
   * Only for incoming processors; an outgoing processor gets an empty base.
   */
  export function readMergeBase(): MergeBase;
  /**
   * What a three-way merge needs to settle `field` (a name as in `field-stamp`): the same
   * stamps and policy `read-merge-base` gives for it, for one field. Cheaper when a
   * processor settles the few fields that differ: `read-merge-base` copies every field's
   * stamps and the whole local issue into the processor. Only for incoming processors;
   * an outgoing processor gets no stamps and the policy `overwrite`. (New in 0.2.1.)
   */
  export function readFieldBase(field: string): FieldBase;
  /**
   * Record a conflict on `field` for an operator to resolve (the `hold-for-review`
   * policy). The values are shown as given. Takes effect if the processing succeeds.
   */
  export function recordConflict(field: string, localValue: string, remoteValue: string): void;
  /**
   * Write a line to the event's log, which operators see with the event.
   */
  export function log(level: LogLevel, message: string): void;
  /**
   * The plugin's own setting `name`: the value the node's operator set for this
   * connection side (`twinsync plugin use ... --setting NAME=VALUE`), or else the default
   * in the plugin's manifest (`[settings]`), or none. One plugin serves many tenants,
   * each with its own settings. (New in 0.2.0.)
   */
  export function setting(name: string): string | undefined;
  export type LogLevel = import('twinsync:processor/types@0.2.1').LogLevel;
  export type MergeBase = import('twinsync:processor/types@0.2.1').MergeBase;
  export type FieldBase = import('twinsync:processor/types@0.2.1').FieldBase;
}
