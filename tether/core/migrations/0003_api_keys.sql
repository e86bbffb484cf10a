-- API keys: bearer credentials with scopes. Only a SHA-256 of the secret part is stored; the
-- secret is printed once by `tether keys create`. A revoked key stays for the audit trail.
CREATE TABLE tether.api_key (
    id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    scopes text[] NOT NULL CHECK (
        cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'events', 'admin']
    ),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    last_used_at timestamptz
);
