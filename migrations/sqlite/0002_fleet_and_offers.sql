-- Vehicles, their GPS devices, offers (an accepted offer is the job until released) and
-- alerts. The rules "one pending or active offer per vehicle", "one pending offer per
-- case" and "one active job per case" are partial unique indexes: the database refuses a
-- double booking whatever the code does.

-- Each entry into `dispatching` starts a new round of offers; the attempt budget counts
-- the offers of the current round.
ALTER TABLE cases ADD COLUMN dispatch_round INTEGER NOT NULL DEFAULT 0;

CREATE TABLE vehicles (
    id               BLOB PRIMARY KEY NOT NULL,
    provider_id      BLOB NOT NULL REFERENCES providers (id),
    external_id      TEXT NOT NULL,
    plate            TEXT,
    capabilities     TEXT NOT NULL DEFAULT '[]',
    state            TEXT NOT NULL CHECK (state IN ('offline', 'available', 'offered', 'busy')),
    last_lat         REAL,
    last_lon         REAL,
    last_fix_at      TEXT,
    last_speed_kmh   REAL,
    last_heading_deg REAL,
    last_accuracy_m  REAL,
    last_fix_source  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (provider_id, external_id)
) STRICT;

CREATE TABLE vehicle_devices (
    protocol    TEXT NOT NULL CHECK (protocol IN ('jt808', 'gt06', 'osmand')),
    device_id   TEXT NOT NULL,
    vehicle_id  BLOB NOT NULL REFERENCES vehicles (id),
    PRIMARY KEY (protocol, device_id)
) STRICT;
CREATE INDEX vehicle_devices_vehicle ON vehicle_devices (vehicle_id);

CREATE TABLE offers (
    id              BLOB PRIMARY KEY NOT NULL,
    case_id         BLOB NOT NULL REFERENCES cases (id),
    vehicle_id      BLOB NOT NULL REFERENCES vehicles (id),
    provider_id     BLOB NOT NULL REFERENCES providers (id),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'declined', 'expired', 'withdrawn')),
    round           INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    eta_s           INTEGER NOT NULL,
    distance_m      REAL NOT NULL,
    sent_at         TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    answered_at     TEXT,
    decline_reason  TEXT,
    provider_eta_s  INTEGER,
    assigned_by     TEXT,
    arrived_at      TEXT,
    arrived_on_time INTEGER,
    released_at     TEXT
) STRICT;
CREATE INDEX offers_case ON offers (case_id, sent_at);
CREATE INDEX offers_vehicle ON offers (vehicle_id, sent_at);
CREATE INDEX offers_provider_state ON offers (provider_id, state);
CREATE INDEX offers_pending_expiry ON offers (expires_at) WHERE state = 'pending';
CREATE UNIQUE INDEX offers_one_open_per_vehicle ON offers (vehicle_id)
    WHERE state = 'pending' OR (state = 'accepted' AND released_at IS NULL);
CREATE UNIQUE INDEX offers_one_pending_per_case ON offers (case_id) WHERE state = 'pending';
CREATE UNIQUE INDEX offers_one_job_per_case ON offers (case_id)
    WHERE state = 'accepted' AND released_at IS NULL;

CREATE TABLE alerts (
    id                 BLOB PRIMARY KEY NOT NULL,
    case_id            BLOB NOT NULL REFERENCES cases (id),
    kind               TEXT NOT NULL,
    severity           TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    raised_at          TEXT NOT NULL,
    predicted_breach   TEXT,
    message            TEXT NOT NULL,
    acknowledged_by    TEXT,
    acknowledged_at    TEXT,
    resolved_by        TEXT,
    resolved_at        TEXT,
    updated_at         TEXT NOT NULL
) STRICT;
CREATE INDEX alerts_state ON alerts (state, raised_at);
CREATE INDEX alerts_case ON alerts (case_id);
-- One live alert of a kind per case: an episode is raised once.
CREATE UNIQUE INDEX alerts_one_live_per_kind ON alerts (case_id, kind) WHERE state <> 'resolved';
