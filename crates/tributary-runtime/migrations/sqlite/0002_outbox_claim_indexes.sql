-- See the PostgreSQL migration: the rows that can make a key wait, and the
-- unsent, unleased rows in id order, each in a partial index.
CREATE INDEX tributary_outbox_held ON tributary_outbox (namespace, key)
    WHERE status = 'Locked' OR attempts > 0;
CREATE INDEX tributary_outbox_ready ON tributary_outbox (namespace, id)
    WHERE status = 'Unlocked';
