-- Count events now go through the shared outbox (tributary_outbox,
-- namespace 'chat', created by the outbox's own migration first). Unsent
-- events of the old table move there in id order; the old table goes.
INSERT INTO tributary_outbox (namespace, key, kind, payload)
SELECT 'chat', convert_to(key, 'UTF8'), 'UserCountEvent', convert_to(payload, 'UTF8')
FROM chat_outbox ORDER BY id;
DROP TABLE chat_outbox;
