-- The user counter prunes applied-event ids by age (chat.users.applied_retention_hours);
-- this index keeps each pruning batch from scanning the whole table.
CREATE INDEX chat_applied_events_applied_at ON chat_applied_events (applied_at);
