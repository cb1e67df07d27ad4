-- The change counter: every admin action bumps it in its transaction, and
-- every token service replica polls it to drop cached licences at once.
CREATE TABLE revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);

INSERT INTO revision (id, value) VALUES (1, 0);
