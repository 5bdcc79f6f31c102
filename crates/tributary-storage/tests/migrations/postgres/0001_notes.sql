-- Test schema: a parent table.
CREATE TABLE notebooks (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
