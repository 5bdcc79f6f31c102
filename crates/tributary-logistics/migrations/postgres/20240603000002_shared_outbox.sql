-- Events now go through the shared outbox (tributary_outbox, namespace
-- 'logistics', created by the outbox's own migration first). Unsent events
-- of the old table move there in id order; the old table goes.
INSERT INTO tributary_outbox (namespace, key, kind, payload, created_at, attempts, next_attempt_at)
SELECT 'logistics', convert_to(package_id::text, 'UTF8'), event_type,
       convert_to(payload::text, 'UTF8'), created_at, attempts, next_attempt_at
FROM package_event ORDER BY id;
DROP TABLE package_event;
