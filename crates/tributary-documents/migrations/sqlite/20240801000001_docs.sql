-- The merged state of every url (see the PostgreSQL migration). INTEGER is
-- a signed 64-bit value, enough for MAX_STORABLE; TEXT compares with the
-- default BINARY collation (byte order). updated_at: microseconds since
-- the epoch (UTC).
CREATE TABLE documents (
    url              TEXT PRIMARY KEY,
    pub_date         INTEGER NOT NULL,
    fetch_time       INTEGER NOT NULL,
    text             TEXT NOT NULL,
    first_fetch_time INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
