-- Count events now go through the shared outbox (tributary_outbox,
-- namespace 'chat', created by the outbox's own migration first). Unsent
-- events of the old table move there in id order; the old table goes.
-- Times are microseconds since the epoch.
INSERT INTO tributary_outbox (namespace, key, kind, payload, created_at, next_attempt_at)
SELECT 'chat', CAST(key AS BLOB), 'UserCountEvent', CAST(payload AS BLOB),
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
       CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
FROM chat_outbox ORDER BY id;
DROP TABLE chat_outbox;
