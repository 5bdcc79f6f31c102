-- Shop streams (namespace `shop`); see the PostgreSQL migration. INTEGER
-- is a signed 64-bit value.
CREATE TABLE shop_products (
    product_id    TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    store_id      TEXT NOT NULL,
    doc           TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL
);
CREATE TABLE shop_filtered_products (
    product_id    TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    store_id      TEXT NOT NULL,
    doc           TEXT NOT NULL,
    event_time_ms INTEGER NOT NULL
);
CREATE TABLE shop_recommendations (
    rec_key      TEXT PRIMARY KEY,
    prompt_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    find         TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    product_name TEXT NOT NULL,
    matched_at   INTEGER NOT NULL,
    doc          TEXT NOT NULL
);
CREATE INDEX shop_recommendations_user ON shop_recommendations (user_id, matched_at);
CREATE TABLE shop_join_state (
    entry_key TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    change    TEXT NOT NULL
);
CREATE INDEX shop_join_state_seq ON shop_join_state (seq);
