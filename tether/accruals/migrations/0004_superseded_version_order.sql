-- Superseded versions that arrive out of order (docs/accruals.md, "Snapshot").
--
-- From this migration on, ingest also keeps a version OLDER than the stored one (md_merge_*:
-- it lost to the stored row, so no trigger sees it), so acc.*_superseded rows are no longer in
-- version order: superseded_seq is the order they were kept, not the order of the data. The
-- as-at rule "the latest replaced version at or before as_at" therefore now means latest by
-- version time (UpdateDateTime, else MSATS load time); at an equal version time the later
-- delivery (file, then line) wins, as in the merge, and superseded_seq only breaks what is left.
-- Same signatures: *_at and the run queries that call these are unchanged.

CREATE OR REPLACE FUNCTION acc.channel_day_replaced_at(as_at timestamptz)
RETURNS SETOF acc.channel_day
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.nmi, s.suffix, s.day, s.register_id, s.uom, s.interval_length, s."values",
           s.qualities, s.quality_method, s.reason_code, s.reason_description,
           s.interval_methods, s.total, s.update_datetime, s.msats_load_datetime, s.file_id,
           s.line
    FROM acc.channel_day_superseded s
    WHERE coalesce(s.update_datetime, s.msats_load_datetime) <= as_at
      AND NOT EXISTS (
          SELECT FROM acc.channel_day_current_at(as_at) c
          WHERE (c.nmi, c.suffix, c.day) = (s.nmi, s.suffix, s.day))
      AND NOT EXISTS (
          SELECT FROM acc.channel_day_superseded n
          WHERE (n.nmi, n.suffix, n.day) = (s.nmi, s.suffix, s.day)
            AND coalesce(n.update_datetime, n.msats_load_datetime) <= as_at
            AND (coalesce(n.update_datetime, n.msats_load_datetime), coalesce(n.file_id, 0),
                 coalesce(n.line, 0), n.superseded_seq)
              > (coalesce(s.update_datetime, s.msats_load_datetime), coalesce(s.file_id, 0),
                 coalesce(s.line, 0), s.superseded_seq))
$$;

CREATE OR REPLACE FUNCTION acc.basic_read_replaced_at(as_at timestamptz)
RETURNS SETOF acc.basic_read
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.nmi, s.register_id, s.suffix, s.meter_serial, s.direction, s.previous_read,
           s.previous_read_at, s.previous_quality, s.current_read, s.current_read_at,
           s.current_quality, s.current_reason_code, s.quantity, s.uom, s.next_scheduled_read,
           s.update_datetime, s.msats_load_datetime, s.source, s.file_id, s.line
    FROM acc.basic_read_superseded s
    WHERE coalesce(s.update_datetime, s.msats_load_datetime) <= as_at
      AND NOT EXISTS (
          SELECT FROM acc.basic_read_current_at(as_at) b
          WHERE (b.nmi, b.suffix, b.register_id, b.current_read_at)
              = (s.nmi, s.suffix, s.register_id, s.current_read_at))
      AND NOT EXISTS (
          SELECT FROM acc.basic_read_superseded n
          WHERE (n.nmi, n.suffix, n.register_id, n.current_read_at)
              = (s.nmi, s.suffix, s.register_id, s.current_read_at)
            AND coalesce(n.update_datetime, n.msats_load_datetime) <= as_at
            AND (coalesce(n.update_datetime, n.msats_load_datetime), coalesce(n.file_id, 0),
                 coalesce(n.line, 0), n.superseded_seq)
              > (coalesce(s.update_datetime, s.msats_load_datetime), coalesce(s.file_id, 0),
                 coalesce(s.line, 0), s.superseded_seq))
$$;
