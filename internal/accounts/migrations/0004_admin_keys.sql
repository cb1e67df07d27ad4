-- Admin API keys: who may use the token service's admin API, stored as
-- hashes like the customers' API tokens. The name is the actor of every
-- change the key makes, so it is unique.
CREATE TABLE admin_keys (
    id           {{id}},
    name         TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    key_sha256   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
