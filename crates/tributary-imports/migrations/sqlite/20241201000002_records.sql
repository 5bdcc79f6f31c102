-- Records of the kinds declared by a JSON Schema: one row per (kind,
-- natural key), the whole document, the upload and record that wrote it.
CREATE TABLE imports_records (
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    document   TEXT NOT NULL,
    request_id TEXT NOT NULL,
    record     BIGINT NOT NULL,
    loaded_at  BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
