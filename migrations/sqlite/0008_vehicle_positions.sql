-- Latest positions move out of `vehicles` into a narrow table of their own, keyed by the
-- vehicle and stored in key order (WITHOUT ROWID).
--
-- Every truck reports about once a second and its position is written a moment later.
-- In `vehicles` (about 300 bytes a row, in the order the trucks were registered) a flush
-- of 200 positions sorted by vehicle rewrote about 190 scattered pages, all of them pages
-- that a claim or an offer also writes. Here a row is about 90 bytes and neighbouring
-- vehicle ids share a page, so the same chunk rewrites a few pages, and a claim or an
-- offer never touches a page a position flush rewrites.
CREATE TABLE vehicle_positions (
    vehicle_id   BLOB PRIMARY KEY NOT NULL REFERENCES vehicles (id),
    lat          REAL NOT NULL,
    lon          REAL NOT NULL,
    fix_at       TEXT NOT NULL,
    speed_kmh    REAL,
    heading_deg  REAL,
    accuracy_m   REAL,
    source       TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO vehicle_positions (vehicle_id, lat, lon, fix_at, speed_kmh, heading_deg, accuracy_m, source)
SELECT id, last_lat, last_lon, last_fix_at, last_speed_kmh, last_heading_deg, last_accuracy_m,
       COALESCE(last_fix_source, 'api')
FROM vehicles
WHERE last_lat IS NOT NULL AND last_lon IS NOT NULL AND last_fix_at IS NOT NULL;

ALTER TABLE vehicles DROP COLUMN last_lat;
ALTER TABLE vehicles DROP COLUMN last_lon;
ALTER TABLE vehicles DROP COLUMN last_fix_at;
ALTER TABLE vehicles DROP COLUMN last_speed_kmh;
ALTER TABLE vehicles DROP COLUMN last_heading_deg;
ALTER TABLE vehicles DROP COLUMN last_accuracy_m;
ALTER TABLE vehicles DROP COLUMN last_fix_source;
