-- Shop streams (namespace `shop`). Products and filtered products as the
-- sink last saw them (upsert by product_id), recommendations by their
-- idempotent key "{prompt_id}:{product_id}", and the join state: the
-- latest change per changelog key, replayed in `seq` order on start.
CREATE TABLE shop_products (
    product_id    TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    store_id      TEXT NOT NULL,
    doc           TEXT NOT NULL,
    event_time_ms BIGINT NOT NULL
);
CREATE TABLE shop_filtered_products (
    product_id    TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    store_id      TEXT NOT NULL,
    doc           TEXT NOT NULL,
    event_time_ms BIGINT NOT NULL
);
CREATE TABLE shop_recommendations (
    rec_key      TEXT PRIMARY KEY,
    prompt_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    find         TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    product_name TEXT NOT NULL,
    matched_at   BIGINT NOT NULL,
    doc          TEXT NOT NULL
);
CREATE INDEX shop_recommendations_user ON shop_recommendations (user_id, matched_at);
CREATE TABLE shop_join_state (
    entry_key TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    change    TEXT NOT NULL
);
CREATE INDEX shop_join_state_seq ON shop_join_state (seq);
