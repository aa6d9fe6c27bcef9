-- Tracking: the assigned vehicle's fixes from acceptance to completion (kept
-- RESCUE_TRAJECTORY_RETENTION_DAYS), the tracker's persisted state per active case, and
-- the predicted arrival shown with the case.

ALTER TABLE cases ADD COLUMN predicted_arrival TIMESTAMPTZ;

CREATE TABLE case_fixes (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id      UUID NOT NULL REFERENCES cases (id),
    vehicle_id   UUID NOT NULL REFERENCES vehicles (id),
    ts           TIMESTAMPTZ NOT NULL,
    lat          DOUBLE PRECISION NOT NULL,
    lon          DOUBLE PRECISION NOT NULL,
    speed_kmh    DOUBLE PRECISION,
    heading_deg  DOUBLE PRECISION,
    accuracy_m   DOUBLE PRECISION,
    source       TEXT NOT NULL,
    live         BOOLEAN NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX case_fixes_case ON case_fixes (case_id, ts);
CREATE INDEX case_fixes_received ON case_fixes (received_at);

CREATE TABLE case_tracking (
    case_id     UUID PRIMARY KEY REFERENCES cases (id),
    vehicle_id  UUID NOT NULL REFERENCES vehicles (id),
    state       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
