// Shared helpers for twinsync processors written in JavaScript.
//
// The JavaScript counterpart of the Rust SDK (`guest/sdk`): custom fields by name, comment
// merging without duplicates, the three-way merge with the connection's conflict policies,
// the default `mirror` mapping in both directions, and the line between a refusal (a
// `processor-error`) and a crash (a `panic`) that componentize-js does not draw by itself.
//
// Values follow the componentize-js (jco) mapping of `wit/processor.wit`: records are
// objects with camelCase fields (`issueType`, `customFields`, `firstSync`, ...), an
// `option<T>` is the value or `undefined`, a `field-value` is `{ tag: 'text', val: '...' }`
// (tags as in the WIT: `text`, `number`, ..., `date-time`, `multi-option`, `null`), enums
// are their WIT names (`'bidirectional'`, `'manual-exalate'`, `'info'`) and `u64` is a
// BigInt.

import {
  syncBackAfterProcessing as hostSyncBack,
  log as hostLog,
  readFieldBase,
  recordConflict,
} from 'twinsync:processor/sync-helper@0.2.1';

// --- Custom fields by name -----------------------------------------------------------

/** The value of the custom field `name`, or undefined if the issue does not have it. */
export function customField(issue, name) {
  return issue.customFields.find((field) => field.name === name)?.value;
}

/** The text of the custom field `name`, if it holds text or an option. */
export function customText(issue, name) {
  const value = customField(issue, name);
  return value && (value.tag === 'text' || value.tag === 'option') ? value.val : undefined;
}

/** Set the custom field `name`, adding it if the issue does not have it yet. */
export function setCustomField(issue, name, value) {
  const index = issue.customFields.findIndex((field) => field.name === name);
  if (index >= 0) {
    issue.customFields[index] = { name, value };
  } else {
    issue.customFields.push({ name, value });
  }
}

/** Remove the custom field `name`; return its value if it was there. */
export function removeCustomField(issue, name) {
  const index = issue.customFields.findIndex((field) => field.name === name);
  return index >= 0 ? issue.customFields.splice(index, 1)[0].value : undefined;
}

/** A free-text field value. */
export const text = (val) => ({ tag: 'text', val });

// --- Host functions and errors -------------------------------------------------------

/** The host refused `sync-back-after-processing`; `message` says why. */
export class SyncBackError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SyncBackError';
  }
}

/**
 * Ask the host to send the issue back after this incoming processing. Throws
 * `SyncBackError` with the host's reason when it refuses (unidirectional connection, or
 * called from an outgoing processor).
 */
export function syncBackAfterProcessing() {
  try {
    hostSyncBack();
  } catch (refused) {
    // componentize-js throws the `err` case as an Error whose `payload` is the string.
    throw new SyncBackError(String(refused?.payload ?? refused?.message ?? refused));
  }
}

/** Write a line to the event's log; `level` is 'debug', 'info', 'warn' or 'error'. */
export function log(level, message) {
  hostLog(level, message);
}

/**
 * A deliberate refusal: the event becomes a sync error (kind `processor-error`) with this
 * message. `throw new ProcessorError('...')`, or `throw fail('...')`.
 *
 * What makes it a refusal is its own `payload` property, `{ message }`: componentize-js
 * turns a thrown value with an own `payload` into the `err` case of the export's result,
 * with that payload as the `processor-error` record. A processor written without these
 * helpers refuses the same way: `throw { payload: { message: '...' } }`.
 */
export class ProcessorError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProcessorError';
    Object.defineProperty(this, 'payload', { value: { message: String(message) }, enumerable: true });
  }
}

/** The error that ends processing with a processor error: `throw fail('...')`. */
export function fail(message) {
  return new ProcessorError(message);
}

const isRefusal = (error) =>
  error !== null && typeof error === 'object' && Object.hasOwn(error, 'payload');

const describe = (error) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/**
 * Crash the component on purpose, like a Rust panic or an uncaught Python exception: the
 * call traps, and stderr (which the host keeps in the event's log) holds
 * `Uncaught NAME: MESSAGE` (the host's message for the `panic`) followed by the error's
 * message and `Stack:` as StarlingMonkey prints them.
 *
 * componentize-js 0.23 has no abort call, and on its own it turns any thrown `Error` into
 * the `err` case with the error as payload (a `processor-error` whose `message` is the
 * error's): the stack would be lost and a bug would look like a deliberate refusal. So the
 * error is thrown again while the bindings lower the payload, where nothing catches it.
 */
function crash(error) {
  console.error(`Uncaught ${describe(error)}`);
  throw {
    payload: {
      get message() {
        throw error;
      },
    },
  };
}

const GUARDED = Symbol('twinsync guarded');

/** `process` with every throw that is not a refusal turned into a crash. */
function guarded(process) {
  if (typeof process !== 'function' || process[GUARDED]) return process;
  const guardedProcess = function guardedProcess(...args) {
    try {
      return process.apply(this, args);
    } catch (error) {
      if (isRefusal(error)) throw error;
      return crash(error);
    }
  };
  guardedProcess[GUARDED] = true;
  return guardedProcess;
}

/**
 * The exports of a processor module, `{ incoming: { process }, outgoing: { process } }`,
 * with refusals and crashes told apart (see `ProcessorError` and `crash`). The build
 * (`scripts/build-polyglot`, a scaffold's `build.sh`) wraps every processor in it, so this
 * holds whether or not the processor uses these helpers; `defineProcessor` applies it too.
 */
export function guardExports({ incoming, outgoing }) {
  const side = (exported) =>
    exported === undefined ? undefined : { ...exported, process: guarded(exported.process) };
  return { incoming: side(incoming), outgoing: side(outgoing) };
}

/**
 * The exports of a processor, from its two sides; a side left out is the default mirror:
 *
 *     export const { incoming, outgoing } = defineProcessor({
 *       incoming(ctx, replica, previous, issue) { ... return issue; },
 *       outgoing(ctx, issue) { ... return replica; },  // or undefined to send nothing
 *     });
 *
 * `throw fail('...')` ends either side with a processor error; any other exception crashes
 * the component (see `crash`).
 */
export function defineProcessor({ incoming = mirrorIncoming, outgoing = mirrorOutgoing } = {}) {
  return guardExports({ incoming: { process: incoming }, outgoing: { process: outgoing } });
}

// --- Comments ------------------------------------------------------------------------

const sameComment = (a, b) => a.created === b.created && a.body.trim() === b.body.trim();

/**
 * Merge the comments of a received replica into the local issue's comments.
 *
 * The host names comments for the processor (see `merge-base` in the WIT): a remote comment
 * with id `local:ID` is the local comment `ID` (ours, or our copy of theirs); any other is
 * only on the other side so far.
 *
 * - A comment only on the other side is added, with the id `remote:ID` so that the host
 *   links the copy to it; unless the local issue already has the same comment (same
 *   creation time and text), or it was seen before (it was deleted here on purpose).
 * - A comment edited on the other side since `previous` updates the local one.
 * - Nothing is ever removed.
 */
export function mergeComments(local, remote, previous = []) {
  const merged = [...local];
  for (const comment of remote) {
    const before = previous.find((old) => old.id === comment.id);
    if (comment.id.startsWith('local:')) {
      const own = comment.id.slice('local:'.length);
      const edited = before !== undefined && before.body !== comment.body;
      const index = merged.findIndex((mine) => mine.id === own);
      if (index >= 0 && edited) {
        merged[index] = { ...merged[index], body: comment.body, updated: comment.updated };
      }
      continue;
    }
    const copyId = `remote:${comment.id}`;
    const have = merged.some((mine) => mine.id === copyId || sameComment(mine, comment));
    if (have || before !== undefined) continue;
    merged.push({
      id: copyId,
      author: comment.author,
      body: comment.body,
      created: comment.created,
      updated: comment.updated,
      internal: false,
    });
  }
  return merged;
}

// --- Three-way merge with the connection's conflict policies -------------------------

/** The core fields an incoming merge settles: [name in the merge base, property]. */
export const CORE_FIELDS = [
  ['summary', 'summary'],
  ['description', 'description'],
  ['status', 'status'],
  ['priority', 'priority'],
  ['resolution', 'resolution'],
  ['issue-type', 'issueType'],
  ['labels', 'labels'],
  ['components', 'components'],
  ['due-date', 'dueDate'],
];

/** Structural equality of contract values (records, lists, variants, BigInts, undefined). */
function sameValue(a, b) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a).filter((key) => a[key] !== undefined);
  const other = Object.keys(b).filter((key) => b[key] !== undefined);
  return keys.length === other.length && keys.every((key) => sameValue(a[key], b[key]));
}

/** A value as a conflict shows it. */
const show = (value) =>
  value === undefined
    ? 'none'
    : JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));

/** Compare strings by code point, as Rust compares them (UTF-16 order differs above U+FFFF). */
function compareCodePoints(a, b) {
  const [x, y] = [[...a], [...b]];
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const difference = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (difference !== 0) return difference;
  }
  return x.length - y.length;
}

const sameStamp = (a, b) => a.at === b.at && a.by === b.by;

/**
 * Merges one replica into one local issue, field by field, as the Rust SDK's `Merger`: a
 * change on the remote side only is taken, a change on the local side only is kept, and a
 * change on both sides (a conflict) is settled by the field's policy. Which is which comes
 * from the stamps the host keeps per field (`field-stamp` in the WIT), asked for each field
 * that differs when it is settled (`read-field-base`): cheaper than copying every field's
 * stamps and the local issue in (`read-merge-base`).
 */
export class Merger {
  /** A merger for the event being processed. */
  constructor(ctx) {
    this.ctx = ctx;
  }

  /** The policy of `field` on this connection: 'overwrite', 'remote-wins', ... */
  policy(field) {
    return readFieldBase(field).policy;
  }

  /**
   * Whether the local value `mine` of `field` should become the remote `theirs` (undefined
   * for a value that is absent). Logs the decision; records a held conflict.
   */
  takeRemote(field, mine, theirs) {
    if (sameValue(mine, theirs)) return false;
    const [take, why] = this.#decide(field, mine, theirs);
    const [kept, dropped] = take ? [theirs, mine] : [mine, theirs];
    hostLog(
      'debug',
      `${field}: kept the ${take ? 'remote' : 'local'} value ${show(kept)} over ${show(dropped)} (${why})`,
    );
    return take;
  }

  #decide(field, mine, theirs) {
    const { policy, remote, local, previousRemote: previous } = readFieldBase(field);
    if (policy === 'overwrite') return [true, 'policy overwrite'];
    if (remote === undefined) return [false, 'the other side sent no stamp for it'];
    // A write this side has seen already: its own, or the one the other side sent before.
    const seen =
      (local !== undefined && sameStamp(local, remote)) ||
      remote.by === this.ctx.localInstance ||
      (previous !== undefined && sameStamp(previous, remote));
    if (seen) return [false, 'not changed on the other side since'];
    if (local === undefined) return [true, 'never written here'];
    if (remote.replacedAt === local.at && remote.replacedBy === local.by) {
      return [true, "changed on the other side after this side's value"];
    }
    switch (policy) {
      case 'remote-wins':
        return [true, 'conflict, remote wins'];
      case 'local-wins':
        return [false, 'conflict, local wins'];
      case 'last-writer-wins': {
        const later =
          remote.at !== local.at ? remote.at > local.at : compareCodePoints(remote.by, local.by) > 0;
        return later
          ? [true, 'conflict, the remote write is the last']
          : [false, 'conflict, the local write is the last'];
      }
      default:
        // 'hold-for-review'
        recordConflict(field, show(mine), show(theirs));
        return [false, 'conflict, held for review'];
    }
  }
}

const copyValue = (value) => (Array.isArray(value) ? [...value] : value);

// --- The default mapping -------------------------------------------------------------

/** Everything the local issue has, except internal comments. */
export function mirrorOutgoing(ctx, issue) {
  return { ...issue, comments: issue.comments.filter((comment) => !comment.internal) };
}

/**
 * The incoming default, as the Rust SDK's: the remote issue's core fields (summary,
 * description, status, priority, resolution, type, labels, components, due date) and custom
 * fields merged three ways with the connection's policies (see `Merger`), and its comments
 * merged in. On first sync, everything is taken. Keys, ids, project, assignee, reporter and
 * attachments stay local.
 */
export function mirrorIncoming(ctx, replica, previous, issue) {
  const result = { ...issue, customFields: [...issue.customFields] };
  if (ctx.firstSync) {
    result.customFields = [...replica.customFields];
    for (const [, property] of CORE_FIELDS) result[property] = copyValue(replica[property]);
  } else {
    const merger = new Merger(ctx);
    for (const [name, property] of CORE_FIELDS) {
      if (merger.takeRemote(name, result[property], replica[property])) {
        result[property] = copyValue(replica[property]);
      }
    }
    // Custom fields the remote issue has, one by one (`custom-field:NAME`). A field the
    // local issue lacks is added when the remote side set it since the last sync.
    for (const field of replica.customFields) {
      if (merger.takeRemote(`custom-field:${field.name}`, customField(result, field.name), field.value)) {
        setCustomField(result, field.name, field.value);
      }
    }
  }
  result.comments = mergeComments(issue.comments, replica.comments, previous?.comments);
  return result;
}
