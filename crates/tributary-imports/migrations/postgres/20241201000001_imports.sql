-- Imports (namespace `imports`). Times are milliseconds since the epoch
-- (UTC) on both dialects, so one query body serves both.

-- One row per upload: its state (received -> stored -> processing ->
-- completed | failed), counts, timings. `processed` is the processor's
-- checkpoint: records handled so far, written in the same transaction as
-- their rows, so a restarted processor resumes after it.
CREATE TABLE imports_uploads (
    request_id   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    checksum     TEXT,
    object_key   TEXT,
    size         BIGINT NOT NULL DEFAULT 0,
    records      BIGINT NOT NULL DEFAULT 0,
    processed    BIGINT NOT NULL DEFAULT 0,
    loaded       BIGINT NOT NULL DEFAULT 0,
    rejected     BIGINT NOT NULL DEFAULT 0,
    duplicate_of TEXT,
    error        TEXT,
    received_at  BIGINT NOT NULL,
    stored_at    BIGINT,
    started_at   BIGINT,
    completed_at BIGINT
);
CREATE INDEX imports_uploads_checksum ON imports_uploads (kind, checksum);
CREATE INDEX imports_uploads_recent ON imports_uploads (received_at DESC, request_id DESC);

-- Every rejected record of an upload (first violation in columns, all of
-- them in `violations` as JSON).
CREATE TABLE imports_errors (
    request_id TEXT NOT NULL,
    record     BIGINT NOT NULL,
    line       BIGINT NOT NULL,
    pointer    TEXT NOT NULL,
    rule       TEXT NOT NULL,
    value      TEXT NOT NULL,
    message    TEXT NOT NULL,
    violations TEXT NOT NULL,
    PRIMARY KEY (request_id, record)
);

-- The `company` kind: the columns users filter on plus the whole document;
-- natural key `permalink`; `request_id`/`record` say which upload wrote it.
CREATE TABLE imports_companies (
    permalink          TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    category_code      TEXT,
    founded            TEXT,
    employees          BIGINT,
    money_raised_minor BIGINT,
    money_currency     TEXT,
    homepage_url       TEXT,
    twitter_username   TEXT,
    email_address      TEXT,
    offices            INTEGER NOT NULL,
    created_at         BIGINT,
    updated_at         BIGINT,
    document           JSONB NOT NULL,
    request_id         TEXT NOT NULL,
    record             BIGINT NOT NULL,
    loaded_at          BIGINT NOT NULL
);
CREATE INDEX imports_companies_name ON imports_companies (lower(name));
