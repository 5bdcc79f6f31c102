-- Packages and their transactional outbox. Times are microseconds since the epoch (UTC).
CREATE TABLE package (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT NOT NULL,
    material    TEXT NOT NULL,
    max_volume  REAL NOT NULL,
    reusable    BOOLEAN NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER
);

CREATE TABLE package_event (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    package_id      INTEGER NOT NULL,
    event_type      TEXT NOT NULL CHECK (event_type IN ('Created', 'Updated', 'Removed')),
    status          TEXT NOT NULL DEFAULT 'Unlocked' CHECK (status IN ('Unlocked', 'Locked')),
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    created_at      INTEGER NOT NULL,
    locked_at       INTEGER,
    locked_by       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX package_event_package_id ON package_event (package_id, id);
CREATE INDEX package_event_status ON package_event (status);
