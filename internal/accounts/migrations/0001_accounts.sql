-- Accounts, their API tokens (hashes only), channel grants and the admin audit.
CREATE TABLE accounts (
    id         {{id}},
    email      TEXT NOT NULL UNIQUE,
    state      TEXT NOT NULL CHECK (state IN ('active', 'disabled')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);

CREATE TABLE api_tokens (
    id           {{id}},
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_sha256 TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX api_tokens_account ON api_tokens (account_id);

CREATE TABLE channel_grants (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    channel    TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, channel)
);

-- Append-only: the code never updates or deletes a row, and rows name the
-- account by e-mail so that they outlive a deleted account.
CREATE TABLE admin_audit (
    id      {{id}},
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    account TEXT NOT NULL,
    detail  TEXT NOT NULL
);

CREATE INDEX admin_audit_account ON admin_audit (account);
