// Shared helpers for twinsync processors written in JavaScript.
//
// The JavaScript counterpart of the Rust SDK (`guest/sdk`): custom fields by name, comment
// merging without duplicates, and the default `mirror` mapping in both directions.
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
} from 'twinsync:processor/sync-helper@0.2.0';

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
 * The error that ends processing with a processor error: `throw fail('...')`. The host keeps
 * the event as a sync error with this message.
 *
 * componentize-js turns a thrown value with an own `payload` property into the `err` case
 * of the export's result, with that payload.
 */
export function fail(message) {
  const error = new Error(message);
  error.name = 'ProcessorError';
  Object.defineProperty(error, 'payload', { value: { message }, enumerable: true });
  return error;
}

const isProcessorError = (error) =>
  error !== null && typeof error === 'object' && Object.hasOwn(error, 'payload');

const describe = (error) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/**
 * Crash the component on purpose, like a Rust panic or an uncaught Python exception: the
 * call traps, and stderr (which the host keeps in the event's log) holds
 * `Uncaught NAME: MESSAGE` followed by the error's message and stack as StarlingMonkey prints
 * them.
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

function guarded(process) {
  return function guardedProcess(...args) {
    try {
      return process(...args);
    } catch (error) {
      if (isProcessorError(error)) throw error;
      return crash(error);
    }
  };
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
  return {
    incoming: { process: guarded(incoming) },
    outgoing: { process: guarded(outgoing) },
  };
}

// --- Comments ------------------------------------------------------------------------

const sameComment = (a, b) => a.created === b.created && a.body.trim() === b.body.trim();

/**
 * Merge the comments of a received replica into the local issue's comments.
 *
 * - A remote comment that is new since `previous` is added, unless the local issue already
 *   holds the same comment (same creation time and text).
 * - A remote comment edited since `previous` updates the local copy it was made from.
 * - Nothing is ever removed.
 *
 * New comments get an empty id: the tracker assigns one when it stores the issue.
 */
export function mergeComments(local, remote, previous = []) {
  const merged = [...local];
  for (const comment of remote) {
    const before = previous.find((old) => old.id === comment.id);
    // Locate our copy by what the comment looked like when we last saw it.
    const known = before ?? comment;
    const index = merged.findIndex((mine) => sameComment(mine, known));
    if (index >= 0) {
      if (before !== undefined && before.body !== comment.body) {
        merged[index] = { ...merged[index], body: comment.body, updated: comment.updated };
      }
    } else if (before === undefined) {
      merged.push({
        id: '',
        author: comment.author,
        body: comment.body,
        created: comment.created,
        updated: comment.updated,
        internal: false,
      });
    }
    // Seen before but gone locally: someone deleted our copy on purpose; keep it gone.
  }
  return merged;
}

// --- The default mapping -------------------------------------------------------------

/** Everything the local issue has, except internal comments. */
export function mirrorOutgoing(ctx, issue) {
  return { ...issue, comments: issue.comments.filter((comment) => !comment.internal) };
}

/**
 * Take the remote issue's core fields, merge its comments, copy its custom fields (all on
 * first sync, afterwards only those the local issue has too). Keys, ids, project, assignee,
 * reporter and attachments stay local.
 */
export function mirrorIncoming(ctx, replica, previous, issue) {
  const result = { ...issue, customFields: [...issue.customFields] };
  if (ctx.firstSync) {
    result.customFields = [...replica.customFields];
  } else {
    for (const field of replica.customFields) {
      if (customField(result, field.name) !== undefined) {
        setCustomField(result, field.name, field.value);
      }
    }
  }
  result.issueType = replica.issueType;
  result.summary = replica.summary;
  result.description = replica.description;
  result.status = replica.status;
  result.priority = replica.priority;
  result.resolution = replica.resolution;
  result.labels = [...replica.labels];
  result.components = [...replica.components];
  result.dueDate = replica.dueDate;
  result.comments = mergeComments(issue.comments, replica.comments, previous?.comments);
  return result;
}
