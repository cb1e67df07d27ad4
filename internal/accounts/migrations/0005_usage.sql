-- Usage: the gateway's record of every manifest request that counts as a
-- pull, a check (HEAD) or a refusal, sent to the token service in batches.
-- Raw events are kept for usage.retention, the daily counts for
-- usage.rollup_retention; both name the account by e-mail, like the audit,
-- so that they outlive a deleted account. time is Unix milliseconds.
CREATE TABLE usage_events (
    id         {{id}},
    time       BIGINT NOT NULL,
    account    TEXT NOT NULL,
    repository TEXT NOT NULL,
    channel    TEXT NOT NULL,
    reference  TEXT NOT NULL,
    digest     TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('pull', 'check', 'denied')),
    reason     TEXT NOT NULL,
    client     TEXT NOT NULL,
    agent      TEXT NOT NULL
);

CREATE INDEX usage_events_account_time ON usage_events (account, time);
CREATE INDEX usage_events_repository_time ON usage_events (repository, time);
CREATE INDEX usage_events_time ON usage_events (time);

-- One row per UTC day (YYYY-MM-DD), account, repository and outcome,
-- upserted in the transaction that stores the events it counts.
CREATE TABLE usage_daily (
    day        TEXT NOT NULL,
    account    TEXT NOT NULL,
    repository TEXT NOT NULL,
    channel    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    count      BIGINT NOT NULL,
    CONSTRAINT usage_daily_key PRIMARY KEY (day, account, repository, channel, outcome)
);
