// `bare`: a test processor written without the helpers, against componentize-js's own
// mapping of the contract only. It shows that a refusal and a crash are told apart however a
// processor is written: the build wraps every processor (see `guardExports` in
// lib/twinsync-helpers.js). The custom field "test behaviour" on the replica says what to do:
//
// - "error": refuse, the componentize-js way: `throw { payload: { message } }`;
// - "panic": throw a plain `Error` ("scripted panic for ..."), which componentize-js alone
//   would report as a refusal with that message and no stack;
// - anything else: take the remote summary, description and status.

const BEHAVIOUR_FIELD = 'test behaviour';

function behaviour(issue) {
  const value = issue.customFields.find((field) => field.name === BEHAVIOUR_FIELD)?.value;
  return value?.tag === 'text' ? value.val : '';
}

export const incoming = {
  process(ctx, replica, previous, issue) {
    switch (behaviour(replica)) {
      case 'error':
        throw { payload: { message: 'refusing issue on purpose' } };
      case 'panic':
        throw new Error(`scripted panic for ${JSON.stringify(replica.key ?? null)}`);
      default:
        return {
          ...issue,
          summary: replica.summary,
          description: replica.description,
          status: replica.status,
        };
    }
  },
};

export const outgoing = {
  process(ctx, issue) {
    return issue;
  },
};
