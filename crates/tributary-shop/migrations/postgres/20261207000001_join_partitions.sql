-- The join state split by partition (`part`): with repartition topics
-- each replica of shop-recommendations owns some partitions of the join
-- key, and a partition's state moves with it. Existing state (one
-- replica, no repartition) becomes part 0, which is what the join uses
-- without repartition topics. `shop_join_versions` numbers each part's
-- commits: a commit names the version it read, so a replica whose copy
-- of a part is stale (another replica wrote it meanwhile, e.g. during a
-- rebalance) fails its commit, reloads and runs the record again.
CREATE TABLE shop_join_state_parts (
    part      INTEGER NOT NULL,
    entry_key TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    change    TEXT NOT NULL,
    PRIMARY KEY (part, entry_key)
);
INSERT INTO shop_join_state_parts (part, entry_key, seq, change)
    SELECT 0, entry_key, seq, change FROM shop_join_state;
DROP TABLE shop_join_state;
ALTER TABLE shop_join_state_parts RENAME TO shop_join_state;
CREATE INDEX shop_join_state_part_seq ON shop_join_state (part, seq);
CREATE TABLE shop_join_versions (
    part    INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
