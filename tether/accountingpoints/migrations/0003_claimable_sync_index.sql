-- The claim wants due APs that have a controllable unit, in next_sync_at order. APs without one
-- (fetched by a lookup, never registered) are never claimed, so once past their re-sync time
-- they stay due forever and pile up at the head of accounting_point_sync_due_idx: every claim
-- walked past all of them (about 200 ms per claim with 100 k of them in 1 M rows).
-- has_controllable_unit mirrors "some controllable unit points at this AP", kept true by
-- triggers on ap.controllable_unit in the same transaction, and a partial index holds only the
-- claimable rows. The claim still checks EXISTS, so the flag only narrows the scan.
ALTER TABLE ap.accounting_point_sync
    ADD COLUMN has_controllable_unit boolean NOT NULL DEFAULT false;

UPDATE ap.accounting_point_sync s SET has_controllable_unit = true
WHERE EXISTS (SELECT 1 FROM ap.controllable_unit cu
              WHERE cu.accounting_point_id = s.accounting_point_id);

CREATE INDEX accounting_point_sync_claimable_idx ON ap.accounting_point_sync (next_sync_at)
    WHERE has_controllable_unit;

CREATE FUNCTION ap.track_controllable_unit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE ap.accounting_point_sync SET has_controllable_unit = true
        WHERE accounting_point_id = NEW.accounting_point_id AND NOT has_controllable_unit;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE ap.accounting_point_sync s SET has_controllable_unit = false
        WHERE s.accounting_point_id = OLD.accounting_point_id AND s.has_controllable_unit
          AND NOT EXISTS (SELECT 1 FROM ap.controllable_unit cu
                          WHERE cu.accounting_point_id = OLD.accounting_point_id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER controllable_unit_track_sync AFTER INSERT OR DELETE ON ap.controllable_unit
    FOR EACH ROW EXECUTE FUNCTION ap.track_controllable_unit();
CREATE TRIGGER controllable_unit_track_sync_move AFTER UPDATE OF accounting_point_id
    ON ap.controllable_unit
    FOR EACH ROW WHEN (OLD.accounting_point_id IS DISTINCT FROM NEW.accounting_point_id)
    EXECUTE FUNCTION ap.track_controllable_unit();
