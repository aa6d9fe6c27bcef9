-- Foundation schema: accounts, cases and their append-only timeline, idempotency keys.

CREATE TABLE providers (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    api_key_hash  BYTEA NOT NULL UNIQUE,
    webhook_url   TEXT,
    service_area  JSONB,
    priority      INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('agent', 'expert', 'admin')),
    skills         JSONB NOT NULL DEFAULT '[]',
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    token_hash  BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE cases (
    id                 UUID PRIMARY KEY,
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
    lat                DOUBLE PRECISION NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                DOUBLE PRECISION NOT NULL CHECK (lon BETWEEN -180 AND 180),
    accuracy_m         DOUBLE PRECISION,
    address            TEXT,
    road_kind          TEXT NOT NULL,
    fault_category     TEXT NOT NULL,
    symptoms           JSONB NOT NULL DEFAULT '[]',
    fault_description  TEXT,
    promised_arrival   TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    last_event_seq     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX cases_status_id ON cases (status, id);
CREATE INDEX cases_created_at ON cases (created_at);

CREATE TABLE case_events (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id  UUID NOT NULL REFERENCES cases (id),
    seq      BIGINT NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    kind     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    data     JSONB NOT NULL DEFAULT '{}',
    UNIQUE (case_id, seq)
);

-- The timeline is the record used in disputes: append-only. The trigger holds for every
-- role, superusers included; the REVOKE takes the privileges from the role that owns the
-- table (the application's role, which ran this migration) as a second line.
CREATE FUNCTION refuse_timeline_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_events is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER case_events_append_only
    BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION refuse_timeline_change();
CREATE TRIGGER case_events_no_truncate
    BEFORE TRUNCATE ON case_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_timeline_change();
REVOKE UPDATE, DELETE, TRUNCATE ON case_events FROM PUBLIC;
DO $$ BEGIN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON case_events FROM %I', current_user);
END $$;

CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    case_id       UUID NOT NULL,
    response      JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
