-- Tracking: the assigned vehicle's fixes from acceptance to completion (kept
-- RESCUE_TRAJECTORY_RETENTION_DAYS), the tracker's persisted state per active case, and
-- the predicted arrival shown with the case.

ALTER TABLE cases ADD COLUMN predicted_arrival TEXT;

CREATE TABLE case_fixes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id      BLOB NOT NULL REFERENCES cases (id),
    vehicle_id   BLOB NOT NULL REFERENCES vehicles (id),
    ts           TEXT NOT NULL,
    lat          REAL NOT NULL,
    lon          REAL NOT NULL,
    speed_kmh    REAL,
    heading_deg  REAL,
    accuracy_m   REAL,
    source       TEXT NOT NULL,
    live         INTEGER NOT NULL,
    received_at  TEXT NOT NULL
) STRICT;
CREATE INDEX case_fixes_case ON case_fixes (case_id, ts);
CREATE INDEX case_fixes_received ON case_fixes (received_at);

CREATE TABLE case_tracking (
    case_id     BLOB PRIMARY KEY NOT NULL REFERENCES cases (id),
    vehicle_id  BLOB NOT NULL REFERENCES vehicles (id),
    state       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
