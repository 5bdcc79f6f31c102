-- Chat archive (PostgreSQL). Message identity: (chat_key, message_id);
-- see tributary_chat::domain::keys::chat_key.
CREATE TABLE chat_chats (
    chat_key  TEXT PRIMARY KEY,
    chat_name TEXT NOT NULL,
    chat_id   BIGINT
);
CREATE INDEX chat_chats_chat_id ON chat_chats (chat_id);

CREATE TABLE chat_messages (
    chat_key       TEXT    NOT NULL,
    message_id     BIGINT  NOT NULL,
    chat_id        BIGINT,
    chat_name      TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    created        BIGINT,
    date_local     TEXT,
    date_offset    INTEGER,
    edited_local   TEXT,
    edited_offset  INTEGER,
    from_name      TEXT,
    from_id        TEXT,
    forwarded_from TEXT,
    reply_to       BIGINT,
    via_bot        TEXT,
    text           TEXT    NOT NULL,
    links          TEXT,
    media_type     TEXT,
    action         TEXT,
    actor          TEXT,
    actor_id       TEXT,
    user_key       TEXT,
    user_name      TEXT,
    PRIMARY KEY (chat_key, message_id)
);
CREATE INDEX chat_messages_created ON chat_messages (created);
CREATE INDEX chat_messages_user ON chat_messages (user_key);
CREATE INDEX chat_messages_mid ON chat_messages (message_id);
CREATE INDEX chat_messages_fts ON chat_messages USING GIN (to_tsvector('simple', text));

-- Transactional outbox: count events written with the rows they describe,
-- published after commit, deleted once the bus acknowledged them.
CREATE TABLE chat_outbox (
    id      BIGSERIAL PRIMARY KEY,
    topic   TEXT NOT NULL,
    key     TEXT NOT NULL,
    payload TEXT NOT NULL
);

-- User service.
CREATE TABLE chat_user_counts (
    user_key  TEXT PRIMARY KEY,
    user_name TEXT,
    count     BIGINT NOT NULL
);
CREATE TABLE chat_applied_events (
    event_id   TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);

-- Audit service.
CREATE TABLE chat_audit_log (
    id         TEXT PRIMARY KEY,
    service    TEXT NOT NULL,
    level      TEXT NOT NULL,
    level_rank INTEGER NOT NULL,
    message    TEXT NOT NULL,
    target     TEXT NOT NULL,
    fields     TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX chat_audit_log_created ON chat_audit_log (created_ms);
CREATE INDEX chat_audit_log_service ON chat_audit_log (service, created_ms);
