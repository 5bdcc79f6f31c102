-- The shared transactional outbox: events written in a system's own
-- transaction, relayed to the bus by that system's relay (per namespace).
CREATE TABLE tributary_outbox (
    id              BIGSERIAL PRIMARY KEY,
    namespace       TEXT NOT NULL,
    -- the bus key; events of one key are relayed in id order
    key             BYTEA NOT NULL,
    -- what happened (system-defined, e.g. Created), for the system's encoder
    kind            TEXT NOT NULL DEFAULT '',
    payload         BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    status          TEXT NOT NULL DEFAULT 'Unlocked' CHECK (status IN ('Unlocked', 'Locked')),
    -- lease of the relay that holds the event
    locked_at       TIMESTAMPTZ,
    locked_by       TEXT,
    -- failed send rounds and when the next one may start (exponential backoff)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX tributary_outbox_key ON tributary_outbox (namespace, key, id);
CREATE INDEX tributary_outbox_namespace ON tributary_outbox (namespace, id);
