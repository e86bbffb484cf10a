-- Energy suppliers and grid areas are managed by operators (API and CLI), not only seeded from
-- reference.py. A retired party stays known, because history and past periods still name it;
-- an unverified one was accepted from a sync under TETHER_AP_UNKNOWN_PARTY=accept_unverified.
ALTER TABLE ap.energy_supplier
    ADD COLUMN retired_at timestamptz,
    ADD COLUMN verified boolean NOT NULL DEFAULT true;
ALTER TABLE ap.metering_grid_area
    ADD COLUMN retired_at timestamptz,
    ADD COLUMN verified boolean NOT NULL DEFAULT true;
