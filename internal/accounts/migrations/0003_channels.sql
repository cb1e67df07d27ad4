-- The channel catalogue: a grant names a channel of this table, so that a
-- typo is refused when it is granted rather than when the customer pulls.
CREATE TABLE channels (
    name        TEXT NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- A database from before the catalogue: the channels already granted are
-- its catalogue, created when they were first granted.
INSERT INTO channels (name, description, created_at)
SELECT channel, '', MIN(granted_at) FROM channel_grants GROUP BY channel;

-- The grants again, now referring to the catalogue: built beside the old
-- table and renamed, the one way both databases add a foreign key to a
-- table. The constraint is named so that it cannot clash with the old
-- table's primary key index in PostgreSQL.
CREATE TABLE channel_grants_new (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    channel    TEXT NOT NULL REFERENCES channels (name),
    granted_at BIGINT NOT NULL,
    CONSTRAINT channel_grants_key PRIMARY KEY (account_id, channel)
);

INSERT INTO channel_grants_new (account_id, channel, granted_at)
SELECT account_id, channel, granted_at FROM channel_grants;

DROP TABLE channel_grants;

ALTER TABLE channel_grants_new RENAME TO channel_grants;

-- Who holds a channel: its removal and the catalogue's listing.
CREATE INDEX channel_grants_channel ON channel_grants (channel);
