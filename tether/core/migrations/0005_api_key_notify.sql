-- Processes cache the API keys they verified (TETHER_API_KEY_CACHE_S) and LISTEN on
-- tether_api_key_changed: a key revoked, re-scoped or deleted, by `tether keys revoke` or by
-- hand, notifies them when its transaction commits, and they drop what they cached.
CREATE FUNCTION tether.api_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tether_api_key_changed', OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_key_changed
AFTER UPDATE OF revoked_at, scopes, hash OR DELETE ON tether.api_key
FOR EACH ROW EXECUTE FUNCTION tether.api_key_changed();
