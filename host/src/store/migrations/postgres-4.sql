-- Version 4: which twin's outgoing event for a local change wrote an issue's stamps last
-- (store/twins.rs, `Twin::stamped_by`): the next one of that twin that reads the issue as
-- it was then has nothing new to read.
ALTER TABLE issue_stamps ADD COLUMN stamped_by TEXT;
