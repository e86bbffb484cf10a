-- Core schema: the generic history mechanism every capability opts into.
--
-- A table opts in with SELECT tether.enable_history('schema.table', ARRAY['bookkeeping_col']).
-- It gains recorded_at / recorded_by, and <table>_history holds each replaced or deleted version
-- with the record-time range it was current. An update that changes only excluded columns
-- (or nothing) writes no history and keeps recorded_at.
CREATE SCHEMA IF NOT EXISTS tether;

CREATE OR REPLACE FUNCTION tether.history_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    excluded text[] := TG_ARGV[0]::text[] || ARRAY['recorded_at', 'recorded_by'];
BEGIN
    IF (to_jsonb(NEW) - excluded) = (to_jsonb(OLD) - excluded) THEN
        NEW.recorded_at := OLD.recorded_at;
        NEW.recorded_by := OLD.recorded_by;
        RETURN NEW;
    END IF;
    -- A version inserted and replaced in one transaction was never visible: keep no history.
    IF OLD.recorded_at < now() THEN
        EXECUTE format(
            'INSERT INTO %I.%I SELECT ($1).*, tstzrange($2, now()), ''UPDATE'', $3',
            TG_TABLE_SCHEMA, TG_TABLE_NAME || '_history'
        ) USING OLD, OLD.recorded_at, current_setting('tether.actor', true);
    END IF;
    NEW.recorded_at := now();
    NEW.recorded_by := current_setting('tether.actor', true);
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION tether.history_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.recorded_at := now();
    NEW.recorded_by := current_setting('tether.actor', true);
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION tether.history_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.recorded_at < now() THEN
        EXECUTE format(
            'INSERT INTO %I.%I SELECT ($1).*, tstzrange($2, now()), ''DELETE'', $3',
            TG_TABLE_SCHEMA, TG_TABLE_NAME || '_history'
        ) USING OLD, OLD.recorded_at, current_setting('tether.actor', true);
    END IF;
    RETURN OLD;
END;
$$;

CREATE OR REPLACE FUNCTION tether.enable_history(tbl regclass, excluded text[] DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    sch text;
    rel text;
BEGIN
    SELECT n.nspname, c.relname INTO sch, rel
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;

    EXECUTE format('ALTER TABLE %I.%I ADD COLUMN IF NOT EXISTS recorded_at timestamptz NOT NULL DEFAULT now()', sch, rel);
    EXECUTE format('ALTER TABLE %I.%I ADD COLUMN IF NOT EXISTS recorded_by text', sch, rel);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I (LIKE %I.%I)', sch, rel || '_history', sch, rel);
    EXECUTE format(
        'ALTER TABLE %I.%I ADD COLUMN record_time tstzrange NOT NULL, '
        'ADD COLUMN history_operation text NOT NULL, ADD COLUMN replaced_by text, '
        'ADD COLUMN history_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
        sch, rel || '_history');
    EXECUTE format('CREATE TRIGGER history_before_insert BEFORE INSERT ON %I.%I '
                   'FOR EACH ROW EXECUTE FUNCTION tether.history_before_insert()', sch, rel);
    EXECUTE format('CREATE TRIGGER history_before_update BEFORE UPDATE ON %I.%I '
                   'FOR EACH ROW EXECUTE FUNCTION tether.history_before_update(%L)',
                   sch, rel, excluded::text);
    EXECUTE format('CREATE TRIGGER history_after_delete AFTER DELETE ON %I.%I '
                   'FOR EACH ROW EXECUTE FUNCTION tether.history_after_delete()', sch, rel);
END;
$$;
