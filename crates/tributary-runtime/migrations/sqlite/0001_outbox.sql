-- The shared transactional outbox (see the PostgreSQL migration).
-- Times are microseconds since the epoch (UTC).
CREATE TABLE tributary_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace       TEXT NOT NULL,
    key             BLOB NOT NULL,
    kind            TEXT NOT NULL DEFAULT '',
    payload         BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'Unlocked' CHECK (status IN ('Unlocked', 'Locked')),
    locked_at       INTEGER,
    locked_by       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX tributary_outbox_key ON tributary_outbox (namespace, key, id);
CREATE INDEX tributary_outbox_namespace ON tributary_outbox (namespace, id);
