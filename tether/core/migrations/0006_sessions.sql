-- Sign-in sessions of the pages (/login): the cookie carries a random session id, signed; only
-- a SHA-256 of the id is stored. /logout sets revoked_at, so a copied cookie stops working on the
-- server, not only in the browser. Each login deletes a bounded batch of rows that expired more
-- than a day ago, so the table holds about one TTL (plus a day) of logins.
CREATE TABLE tether.session (
    id_hash text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    subject text NOT NULL,
    key_id text,  -- the API key signed in with, if any: the session ends when the key does
    scopes text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'events', 'admin']),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE INDEX session_expires_at ON tether.session (expires_at);
