-- The web console (internal/tokenserver/console). Its sessions live here,
-- not in a replica's memory, so that a session works on every replica of
-- the token service and a sign-out or expiry holds on all of them. Only
-- the SHA-256 of a session id is stored: a copy of the database does not
-- sign anyone in. kind is who signed in: 'vendor' (the vendor's staff;
-- subject is an admin key's name or an OIDC e-mail, scope read or write)
-- or 'customer' (subject is the account's e-mail). A vendor session made
-- with an admin key names it (admin_key_id): revoking the key ends the
-- session. Times are Unix seconds.
CREATE TABLE console_sessions (
    id_sha256    TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('vendor', 'customer')),
    subject      TEXT NOT NULL,
    scope        TEXT NOT NULL,
    admin_key_id BIGINT REFERENCES admin_keys (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    seen_at      BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
CREATE INDEX console_sessions_subject ON console_sessions (kind, subject);

-- One-time sign-in links the vendor hands a customer: stored hashed, used
-- once (used_at), and only until expires_at.
CREATE TABLE sign_in_links (
    id          {{id}},
    link_sha256 TEXT NOT NULL UNIQUE,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- Whether the customer may create and revoke their own API tokens in the
-- console; the vendor decides per account.
ALTER TABLE accounts ADD COLUMN self_service_tokens BOOLEAN NOT NULL DEFAULT FALSE;
