-- Packages and their transactional outbox.
CREATE TABLE package (
    id          BIGSERIAL PRIMARY KEY,
    title       TEXT NOT NULL,
    material    TEXT NOT NULL,
    max_volume  REAL NOT NULL,
    reusable    BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ
);

CREATE TABLE package_event (
    id              BIGSERIAL PRIMARY KEY,
    package_id      BIGINT NOT NULL,
    event_type      TEXT NOT NULL CHECK (event_type IN ('Created', 'Updated', 'Removed')),
    status          TEXT NOT NULL DEFAULT 'Unlocked' CHECK (status IN ('Unlocked', 'Locked')),
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- lease of the relay that holds the event
    locked_at       TIMESTAMPTZ,
    locked_by       TEXT,
    -- failed send rounds and when the next one may start (exponential backoff)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- per-package order checks of the relay's claim query
CREATE INDEX package_event_package_id ON package_event (package_id, id);
CREATE INDEX package_event_status ON package_event (status);
