// Generated from wit/processor.wit by `scripts/build-polyglot --types` (jco 1.35.0); do not edit.
declare module 'twinsync:processor/types@0.2.1' {
  /**
   * A calendar date in ISO 8601 form, for example `2026-11-27`.
   */
  export type Date = string;
  /**
   * An instant in RFC 3339 form, in UTC with a `Z` suffix, for example
   * `2026-11-27T20:12:46Z`. Two date-times in this form compare like their strings.
   */
  export type DateTime = string;
  /**
   * A person known to a tracker.
   */
  export interface User {
    /**
     * The tracker's own id of the user (login, account id, ...).
     */
    id: string,
    /**
     * The name people see.
     */
    displayName: string,
    /**
     * E-mail address, when the tracker exposes it. Useful to find the same person
     * on the other side.
     */
    email?: string,
  }
  /**
   * A comment on an issue.
   */
  export interface Comment {
    /**
     * The id the comment has in the tracker that holds it. Empty for a comment that a
     * processor adds and the tracker has not stored yet: the tracker assigns the id.
     */
    id: string,
    /**
     * Who wrote it.
     */
    author?: User,
    /**
     * The text, in the tracker's markup.
     */
    body: string,
    /**
     * When it was written.
     */
    created: DateTime,
    /**
     * When it was last edited, if ever.
     */
    updated?: DateTime,
    /**
     * A comment only the local team may see. Outgoing processors usually drop these.
     */
    internal: boolean,
  }
  /**
   * Metadata of a file attached to an issue. Content is not carried.
   */
  export interface Attachment {
    /**
     * The id the attachment has in the tracker that holds it.
     */
    id: string,
    /**
     * The file name, for example `screenshot.png`.
     */
    fileName: string,
    /**
     * The media type, for example `image/png`.
     */
    mimeType: string,
    /**
     * Size in bytes.
     */
    size: bigint,
    /**
     * SHA-256 of the content, lower-case hex: the same file on both sides has the
     * same hash, whatever its id.
     */
    sha256: string,
  }
  /**
   * The value of a custom field, typed.
   */
  export type FieldValue = FieldValueText | FieldValueNumber | FieldValueBoolean | FieldValueDate | FieldValueDateTime | FieldValueUser | FieldValueOption | FieldValueMultiOption | FieldValueNull;
  /**
   * Free text.
   */
  export interface FieldValueText {
    tag: 'text',
    val: string,
  }
  /**
   * A number.
   */
  export interface FieldValueNumber {
    tag: 'number',
    val: number,
  }
  /**
   * A check box.
   */
  export interface FieldValueBoolean {
    tag: 'boolean',
    val: boolean,
  }
  /**
   * A date without time.
   */
  export interface FieldValueDate {
    tag: 'date',
    val: Date,
  }
  /**
   * A date and time.
   */
  export interface FieldValueDateTime {
    tag: 'date-time',
    val: DateTime,
  }
  /**
   * A user picker.
   */
  export interface FieldValueUser {
    tag: 'user',
    val: User,
  }
  /**
   * One choice from a list of options, by its name.
   */
  export interface FieldValueOption {
    tag: 'option',
    val: string,
  }
  /**
   * Several choices from a list of options, by name.
   */
  export interface FieldValueMultiOption {
    tag: 'multi-option',
    val: Array<string>,
  }
  /**
   * The field exists but is empty.
   */
  export interface FieldValueNull {
    tag: 'null',
  }
  /**
   * A named custom field and its value.
   */
  export interface CustomField {
    /**
     * The field's name as the tracker shows it, for example `remote issue key`.
     */
    name: string,
    /**
     * Its value.
     */
    value: FieldValue,
  }
  /**
   * An issue as a tracker holds it, or a replica of one.
   */
  export interface Issue {
    /**
     * The human key, for example `INT-1`. None until the tracker has created the issue:
     * on first sync the incoming processor receives an issue without key and the
     * tracker assigns one when it stores the result.
     */
    key?: string,
    /**
     * The tracker's internal id, if it has one apart from the key.
     */
    id?: string,
    /**
     * The project (space, board) the issue belongs to, by key or name.
     */
    project: string,
    /**
     * Bug, Task, Story, ...
     */
    issueType: string,
    /**
     * One-line title.
     */
    summary: string,
    /**
     * Long text, in the tracker's markup.
     */
    description?: string,
    /**
     * Workflow status by name, for example `Open` or `In Progress`.
     */
    status: string,
    /**
     * Priority by name.
     */
    priority?: string,
    /**
     * Resolution by name, none while unresolved.
     */
    resolution?: string,
    /**
     * Who works on it.
     */
    assignee?: User,
    /**
     * Who raised it.
     */
    reporter?: User,
    /**
     * Free labels.
     */
    labels: Array<string>,
    /**
     * Components by name.
     */
    components: Array<string>,
    /**
     * When it is due.
     */
    dueDate?: Date,
    /**
     * Key of the parent issue, for sub-tasks.
     */
    parentKey?: string,
    /**
     * Comments, oldest first.
     */
    comments: Array<Comment>,
    /**
     * Attachment metadata.
     */
    attachments: Array<Attachment>,
    /**
     * Custom fields by name. A name appears at most once.
     */
    customFields: Array<CustomField>,
    /**
     * When the issue was created; none for an issue not created yet.
     */
    created?: DateTime,
    /**
     * When the issue last changed; none for an issue not created yet.
     */
    updated?: DateTime,
  }
  /**
   * What one side sends to the other: the same shape as an issue. `key` is the key the
   * issue has on the sending side.
   */
  export type Replica = Issue;
  /**
   * The shape of a connection.
   * # Variants
   * 
   * ## `"bidirectional"`
   * 
   * Both sides send and receive: sync back is possible.
   * ## `"unidirectional"`
   * 
   * Changes flow one way only: the receiving side cannot sync back.
   */
  export type Direction = 'bidirectional' | 'unidirectional';
  /**
   * Why a sync event exists.
   * # Variants
   * 
   * ## `"local-change"`
   * 
   * The issue changed in the local tracker (or, on the receiving side, in the remote
   * tracker).
   * ## `"sync-back"`
   * 
   * A processor on the other side called `sync-back-after-processing`.
   * ## `"manual-exalate"`
   * 
   * Someone started syncing this issue: the first event of a twin.
   * ## `"retry"`
   * 
   * An operator asked for it: a retry of an event that failed, or a conflict resolved
   * (the chosen value is sent again, stamped with the time of the decision).
   */
  export type SyncReason = 'local-change' | 'sync-back' | 'manual-exalate' | 'retry';
  /**
   * Which side created a twin. (New in 0.2.0.)
   * # Variants
   * 
   * ## `"local"`
   * 
   * This side: the issue was exalated here, and this side is its source.
   * ## `"remote"`
   * 
   * The other side: this side's issue was created by sync (or will be, on first
   * sync).
   */
  export type Origin = 'local' | 'remote';
  /**
   * Everything a processor knows about the event it is processing.
   */
  export interface SyncContext {
    /**
     * The connection's name, for example `internal-external`.
     */
    connection: string,
    /**
     * This node's tracker instance, for example `Internal`.
     */
    localInstance: string,
    /**
     * The tracker instance on the other end, for example `External`.
     */
    remoteInstance: string,
    /**
     * Whether the connection is bidirectional.
     */
    direction: Direction,
    /**
     * True when this side has no twin of the issue yet: the incoming processor is
     * creating it. Always false for an outgoing processor.
     */
    firstSync: boolean,
    /**
     * The event's id, unique across both nodes. Quote it when logging.
     */
    eventId: string,
    /**
     * Why the event exists.
     */
    reason: SyncReason,
    /**
     * How many sync backs in a row led to this event: 0 for an event that a person or
     * the tracker caused. The host stops a chain that keeps bouncing.
     */
    hop: number,
    /**
     * The time of the event, fixed for the event: a processor that needs "now" uses
     * this, so that running it again on the same input gives the same result.
     */
    now: DateTime,
    /**
     * Which side created the twin: `local` on the side that exalated the issue (its
     * source), `remote` on the other. (New in 0.2.0: before, a processor had to guess
     * from `previous` and `first-sync`.)
     */
    origin: Origin,
  }
  /**
   * A processor's own failure. The event is kept as a sync error for this twin only,
   * with this message, until an operator retries or skips it.
   */
  export interface ProcessorError {
    /**
     * What went wrong, for the person who reads the sync error.
     */
    message: string,
  }
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   */
  export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
  /**
   * How an incoming processor settles a field, set per connection and per field by the
   * node's operator. A *conflict* is a field changed on both sides since the last sync.
   * # Variants
   * 
   * ## `"overwrite"`
   * 
   * Always take the remote value (no three-way merge): what most sync tools do, and
   * what loses a local change made while a stale replica was on its way.
   * ## `"remote-wins"`
   * 
   * Take a remote change; keep a local change; on a conflict, the remote value wins.
   * ## `"local-wins"`
   * 
   * Take a remote change; keep a local change; on a conflict, the local value wins.
   * ## `"last-writer-wins"`
   * 
   * Take a remote change; keep a local change; on a conflict, the value written last
   * wins (by the stamps' times at the origin; on equal times, the instance name that
   * sorts last): both sides pick the same value.
   * ## `"hold-for-review"`
   * 
   * Take a remote change; keep a local change; on a conflict keep the local value and
   * record the conflict for an operator (`twinsync conflicts list|resolve`).
   */
  export type ConflictPolicy = 'overwrite' | 'remote-wins' | 'local-wins' | 'last-writer-wins' | 'hold-for-review';
  /**
   * Which write a field's value comes from. Every write of a field gets a stamp that is
   * unique and larger than the stamp of the value it replaced, and the stamp travels with
   * the value from node to node. Comparing stamps tells a later write (it replaced what
   * the other side has) from a concurrent one (a conflict).
   * 
   * Field names: `summary`, `description`, `status`, `priority`, `resolution`,
   * `assignee`, `issue-type`, `labels`, `components`, `due-date`, `parent-key`, and
   * `custom-field:NAME` for each custom field.
   */
  export interface FieldStamp {
    field: string,
    /**
     * When the value was written at its origin, in milliseconds since the Unix epoch
     * (raised above the replaced stamp if the clock is behind).
     */
    at: bigint,
    /**
     * The instance where it was written.
     */
    by: string,
    /**
     * The stamp of the value this write replaced (`at` 0 for the first value).
     */
    replacedAt: bigint,
    replacedBy: string,
  }
  /**
   * A field's policy.
   */
  export interface FieldPolicy {
    field: string,
    policy: ConflictPolicy,
  }
  /**
   * What a three-way merge needs to settle one field: the field's stamps and its policy.
   * (New in 0.2.1: `read-field-base` answers it for the fields a processor asks about,
   * where `read-merge-base` hands over every field's stamps and the whole local issue.)
   */
  export interface FieldBase {
    /**
     * The stamp of the local value, if the field was ever written here or synced.
     */
    local?: FieldStamp,
    /**
     * The stamp of the value in `replica`, if the other side sent one.
     */
    remote?: FieldStamp,
    /**
     * The stamp of the value in `previous`: a remote stamp that did not move means the
     * field has not changed on the other side since.
     */
    previousRemote?: FieldStamp,
    /**
     * How the connection settles this field.
     */
    policy: ConflictPolicy,
  }
  /**
   * What a three-way merge needs beyond the replica and `previous`.
   * 
   * Comment ids in replicas follow a convention the host maintains: in `replica` and
   * `previous`, a comment with id `local:ID` is (a copy of) the local comment `ID`; any
   * other id is a comment that exists only on the other side so far. A new comment made
   * from a remote one gets the id `remote:ID` in the processor's result: the host links
   * the tracker's new comment to it, so it is never added twice.
   */
  export interface MergeBase {
    /**
     * The local issue as it was after the last sync of this twin; none before the first.
     */
    local?: Issue,
    /**
     * The stamp of each local field's value.
     */
    localStamps: Array<FieldStamp>,
    /**
     * The stamp of each field's value in `replica`.
     */
    remoteStamps: Array<FieldStamp>,
    /**
     * The same for `previous`: a field whose stamp did not move has not changed on the
     * other side since.
     */
    previousRemoteStamps: Array<FieldStamp>,
    /**
     * The policy of fields not listed in `policies`.
     */
    defaultPolicy: ConflictPolicy,
    policies: Array<FieldPolicy>,
  }
}
