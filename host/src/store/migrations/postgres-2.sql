-- Version 2: several processes of one node (docs/postgres-workers.md).

-- Which process works on an issue now (the key is the pipeline's: `issue:KEY`, or
-- `twin:ID` before first sync), until when (ms since epoch, the database's clock). A
-- process commits an event only while it holds the claim on its issue; a killed
-- process's claims run out and another process takes the issue over.
CREATE TABLE claims (
    issue TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);
CREATE INDEX claims_by_owner ON claims (owner);

-- Work one process of the node does at a time (`send:CONNECTION`, `poll`): who, until
-- when. Renewed by its holder, taken over once it has run out.
CREATE TABLE leaders (
    role TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until BIGINT NOT NULL
);
