-- Latest positions move out of `vehicles` into a narrow table of their own.
--
-- Every truck reports about once a second and its position is written a moment later.
-- In `vehicles` each such update locked the vehicle's row, so an offer's claim of that
-- truck (`FOR UPDATE` of the same row) waited for the position flush's statement, and the
-- row's whole width went into the write-ahead log. Here a claim and a position never share
-- a row, a row is about 90 bytes, and half of each page is left free (fillfactor 50) so
-- that an update stays on its page (a HOT update: no index entry to write).
CREATE TABLE vehicle_positions (
    vehicle_id   UUID PRIMARY KEY REFERENCES vehicles (id),
    lat          DOUBLE PRECISION NOT NULL,
    lon          DOUBLE PRECISION NOT NULL,
    fix_at       TIMESTAMPTZ NOT NULL,
    speed_kmh    DOUBLE PRECISION,
    heading_deg  DOUBLE PRECISION,
    accuracy_m   DOUBLE PRECISION,
    source       TEXT NOT NULL
) WITH (fillfactor = 50);

INSERT INTO vehicle_positions (vehicle_id, lat, lon, fix_at, speed_kmh, heading_deg, accuracy_m, source)
SELECT id, last_lat, last_lon, last_fix_at, last_speed_kmh, last_heading_deg, last_accuracy_m,
       COALESCE(last_fix_source, 'api')
FROM vehicles
WHERE last_lat IS NOT NULL AND last_lon IS NOT NULL AND last_fix_at IS NOT NULL;

ALTER TABLE vehicles
    DROP COLUMN last_lat,
    DROP COLUMN last_lon,
    DROP COLUMN last_fix_at,
    DROP COLUMN last_speed_kmh,
    DROP COLUMN last_heading_deg,
    DROP COLUMN last_accuracy_m,
    DROP COLUMN last_fix_source;
