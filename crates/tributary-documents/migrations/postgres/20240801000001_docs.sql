-- The merged state of every url (namespace `docs`). Values are u64 in the
-- domain, bounded by MAX_STORABLE = i64::MAX, so BIGINT keeps them and
-- their order. `url` and `text` use the "C" collation (byte order), the
-- order of Rust's `str` and of SQLite's BINARY: the merge's tie rule and
-- the listing order are the same on both dialects.
CREATE TABLE documents (
    url              TEXT COLLATE "C" PRIMARY KEY,
    pub_date         BIGINT NOT NULL,
    fetch_time       BIGINT NOT NULL,
    text             TEXT COLLATE "C" NOT NULL,
    first_fetch_time BIGINT NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
