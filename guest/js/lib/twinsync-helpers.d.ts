// TypeScript declarations of twinsync-helpers.js (written by hand; the contract's own types
// are generated from wit/processor.wit into ../types/). TypeScript reads this file instead
// of the .js next to it, so a project checked with `tsc` (the scaffold's tsconfig.json)
// gets typed helpers. Keep it in step with twinsync-helpers.js.

import type {
  Comment,
  ConflictPolicy,
  FieldValue,
  Issue,
  LogLevel,
  Replica,
  SyncContext,
} from 'twinsync:processor/types@0.2.1';

export type IncomingProcess = (
  ctx: SyncContext,
  replica: Replica,
  previous: Replica | undefined,
  issue: Issue,
) => Issue;
export type OutgoingProcess = (ctx: SyncContext, issue: Issue) => Replica | undefined;

/** The exports of a processor module. */
export interface ProcessorExports {
  incoming: { process: IncomingProcess };
  outgoing: { process: OutgoingProcess };
}

export function customField(issue: Issue, name: string): FieldValue | undefined;
export function customText(issue: Issue, name: string): string | undefined;
export function setCustomField(issue: Issue, name: string, value: FieldValue): void;
export function removeCustomField(issue: Issue, name: string): FieldValue | undefined;
export function text(val: string): FieldValue;

/** The host refused `sync-back-after-processing`; `message` says why. */
export class SyncBackError extends Error {
  constructor(message: string);
}
export function syncBackAfterProcessing(): void;
export function log(level: LogLevel, message: string): void;

/** A deliberate refusal: a sync error of kind `processor-error` with this message. */
export class ProcessorError extends Error {
  constructor(message: string);
  readonly payload: { message: string };
}
export function fail(message: string): ProcessorError;

export function guardExports(exports: Partial<ProcessorExports>): ProcessorExports;
export function defineProcessor(sides?: {
  incoming?: IncomingProcess;
  outgoing?: OutgoingProcess;
}): ProcessorExports;

export function mergeComments(
  local: Comment[],
  remote: Comment[],
  previous?: Comment[],
): Comment[];

/** The core fields an incoming merge settles: [name in the merge base, property]. */
export const CORE_FIELDS: ReadonlyArray<readonly [string, keyof Issue]>;

export class Merger {
  constructor(ctx: SyncContext);
  readonly ctx: SyncContext;
  policy(field: string): ConflictPolicy;
  takeRemote(field: string, mine: unknown, theirs: unknown): boolean;
}

export function mirrorOutgoing(ctx: SyncContext, issue: Issue): Replica;
export function mirrorIncoming(
  ctx: SyncContext,
  replica: Replica,
  previous: Replica | undefined,
  issue: Issue,
): Issue;
