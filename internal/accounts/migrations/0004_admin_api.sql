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

-- A grant may end on its own, before the account does (a trial of the
-- beta channel); NULL: it lasts as long as the account.
ALTER TABLE channel_grants ADD COLUMN expires_at BIGINT;

-- A token's name says which of the customer's systems holds it ("ci",
-- "prod-cluster"); '' for the tokens made before names.
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
