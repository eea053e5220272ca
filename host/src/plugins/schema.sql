-- The plugin store (see host/src/plugins/): installed packages, which one each connection
-- side uses, every change with who and when, and which plugin processed each event.

-- An installed package; its bytes are in the data directory under plugins/SHA256.wasm.
-- A name and version stand for one hash for ever: installing other bytes under them is refused.
CREATE TABLE IF NOT EXISTS plugins (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    manifest TEXT NOT NULL,          -- JSON, as in the package
    installed_at INTEGER NOT NULL,
    installed_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- The package a connection side runs instead of the processor its configuration names.
CREATE TABLE IF NOT EXISTS plugin_use (
    connection TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('incoming', 'outgoing')),
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',  -- JSON: the plugin's settings for this side
    PRIMARY KEY (connection, side)
);

-- Every change to the store, oldest first. For use, upgrade and rollback `previous` is the
-- version the side ran before (NULL: the processor of the configuration).
CREATE TABLE IF NOT EXISTS plugin_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    by TEXT NOT NULL,
    action TEXT NOT NULL,            -- install, use, upgrade, rollback, remove
    name TEXT,
    version TEXT,
    sha256 TEXT,
    connection TEXT,
    side TEXT,
    previous TEXT                    -- name@version
);
CREATE INDEX IF NOT EXISTS plugin_changes_by_side ON plugin_changes (connection, side, id);

-- The plugin that processed an event (its last attempt), kept as long as the event.
CREATE TABLE IF NOT EXISTS event_plugins (
    event_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT,
    sha256 TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS event_plugins_forget AFTER DELETE ON events
BEGIN
    DELETE FROM event_plugins WHERE event_id = old.id;
END;
