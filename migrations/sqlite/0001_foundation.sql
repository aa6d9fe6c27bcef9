-- Foundation schema: accounts, cases and their append-only timeline, idempotency keys.
-- Types: ids are 16-byte UUID blobs, times are RFC 3339 UTC text (which sorts as time),
-- JSON is text.

CREATE TABLE providers (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    api_key_hash  BLOB NOT NULL UNIQUE,
    webhook_url   TEXT,
    service_area  TEXT,
    priority      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id             BLOB PRIMARY KEY NOT NULL,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('agent', 'expert', 'admin')),
    skills         TEXT NOT NULL DEFAULT '[]',
    created_at     TEXT NOT NULL
) STRICT;

CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE cases (
    id                 BLOB PRIMARY KEY NOT NULL,
    channel            TEXT NOT NULL,
    status             TEXT NOT NULL,
    service            TEXT NOT NULL,
    tier               TEXT NOT NULL,
    customer_name      TEXT,
    customer_phone     TEXT NOT NULL,
    member_id          TEXT,
    plate              TEXT,
    vehicle_model      TEXT,
    powertrain         TEXT,
    lat                REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
    accuracy_m         REAL,
    address            TEXT,
    road_kind          TEXT NOT NULL,
    fault_category     TEXT NOT NULL,
    symptoms           TEXT NOT NULL DEFAULT '[]',
    fault_description  TEXT,
    promised_arrival   TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    last_event_seq     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX cases_status_id ON cases (status, id);
CREATE INDEX cases_created_at ON cases (created_at);

CREATE TABLE case_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id  BLOB NOT NULL REFERENCES cases (id),
    seq      INTEGER NOT NULL,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    data     TEXT NOT NULL DEFAULT '{}',
    UNIQUE (case_id, seq)
) STRICT;

-- The timeline is the record used in disputes: append-only, enforced by the database.
CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
BEGIN
    SELECT RAISE(ABORT, 'case_events is append-only: updates are refused');
END;
CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
BEGIN
    SELECT RAISE(ABORT, 'case_events is append-only: deletes are refused');
END;

CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    case_id       BLOB NOT NULL,
    response      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
