-- name: insert_key
INSERT INTO tether.api_key (id, name, hash, scopes)
VALUES (%(id)s, %(name)s, %(hash)s, %(scopes)s)
RETURNING id, name, scopes, created_at, revoked_at, last_used_at

-- name: list_keys
SELECT id, name, scopes, created_at, revoked_at, last_used_at
FROM tether.api_key
ORDER BY created_at, id

-- name: revoke_key
-- Revoking twice keeps the first time; already_revoked tells the caller it was (the old row is
-- read under the row lock, so two concurrent revokes cannot both claim the first).
UPDATE tether.api_key k SET revoked_at = coalesce(k.revoked_at, now())
FROM (SELECT id, revoked_at FROM tether.api_key WHERE id = %(id)s FOR UPDATE) old
WHERE k.id = old.id
RETURNING k.id, k.name, k.scopes, k.created_at, k.revoked_at, k.last_used_at,
          old.revoked_at IS NOT NULL AS already_revoked

-- name: active_key
SELECT id, hash, scopes,
       last_used_at IS NULL OR last_used_at < now() - interval '60 seconds' AS needs_touch
FROM tether.api_key
WHERE id = %(id)s AND revoked_at IS NULL

-- name: touch_key
-- At most one write per key per minute, not one per request.
UPDATE tether.api_key SET last_used_at = now()
WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')

-- name: cache_listeners
-- The API processes whose key cache listens on this database (their listener's name).
SELECT pid FROM pg_stat_activity
WHERE application_name = 'tether api key cache' AND datname = current_database()

-- name: ack_key_change
SELECT pg_notify('tether_api_key_ack', %(payload)s)

-- name: cut_listener
-- A cache that did not confirm a revocation in time: end its listener (waiting until it is
-- gone), so that process stops serving from its cache.
SELECT pg_terminate_backend(%(pid)s, 5000)
