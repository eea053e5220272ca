-- Version 4: who wrote an issue's stamps last, if an outgoing event for a local change did:
-- its twin and its processor's fingerprint (store/twins.rs, `Twin::stamped_by`). The next
-- such event of that twin that reads the issue as it was then has nothing new to read.
ALTER TABLE issue_stamps ADD COLUMN stamped_by TEXT;
