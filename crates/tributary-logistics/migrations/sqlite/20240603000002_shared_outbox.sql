-- Events now go through the shared outbox (tributary_outbox, namespace
-- 'logistics', created by the outbox's own migration first). Unsent events
-- of the old table move there in id order; the old table goes.
INSERT INTO tributary_outbox (namespace, key, kind, payload, created_at, attempts, next_attempt_at)
SELECT 'logistics', CAST(CAST(package_id AS TEXT) AS BLOB), event_type,
       CAST(payload AS BLOB), created_at, attempts, next_attempt_at
FROM package_event ORDER BY id;
DROP TABLE package_event;
