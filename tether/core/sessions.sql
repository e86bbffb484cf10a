-- Queries of tether.core.sessions: the pages' sign-in sessions (core migration 0006).

-- name: insert_session
INSERT INTO tether.session (id_hash, subject, key_id, scopes, expires_at)
VALUES (%(id_hash)s, %(subject)s, %(key_id)s, %(scopes)s, %(expires_at)s)

-- name: live_session
-- One primary-key lookup per page request; the API key signed in with (if any) is read in the
-- same statement, so a revoked key ends its sessions at once. key_scopes is NULL when that key
-- is revoked or gone.
SELECT s.subject, s.key_id, s.scopes, k.scopes AS key_scopes
FROM tether.session s
LEFT JOIN tether.api_key k ON k.id = s.key_id AND k.revoked_at IS NULL
WHERE s.id_hash = %(id_hash)s AND s.revoked_at IS NULL AND s.expires_at > now()

-- name: revoke_session
-- Revoking twice keeps the first time.
UPDATE tether.session SET revoked_at = coalesce(revoked_at, now())
WHERE id_hash = %(id_hash)s

-- name: purge_sessions
-- At most a batch of rows that expired over a day ago (revoked ones included: they expire too);
-- SKIP LOCKED so logins at the same moment do not queue behind each other's purge.
DELETE FROM tether.session
WHERE id_hash IN (
    SELECT id_hash FROM tether.session
    WHERE expires_at < now() - interval '1 day'
    ORDER BY expires_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
