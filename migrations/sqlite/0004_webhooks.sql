-- Outgoing webhooks: an outbox derived from the case event log (one delivery per event
-- and provider, whichever instance derived it), the log of every attempt, and the cursor
-- up to which the log has been turned into deliveries. Webhook secrets are not stored:
-- they are derived from the server secret and the provider's secret generation.

ALTER TABLE providers ADD COLUMN webhook_secret_generation INTEGER NOT NULL DEFAULT 1;
ALTER TABLE providers ADD COLUMN webhook_secret_rotated_at TEXT;

CREATE TABLE webhook_deliveries (
    id                  BLOB PRIMARY KEY NOT NULL,
    provider_id         BLOB NOT NULL REFERENCES providers (id),
    event               TEXT NOT NULL,
    case_id             BLOB REFERENCES cases (id),
    source_event_id     INTEGER NOT NULL,
    url                 TEXT NOT NULL,
    body                TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT NOT NULL,
    claimed_until       TEXT,
    deadline            TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    delivered_at        TEXT,
    dead_lettered_at    TEXT,
    dead_letter_reason  TEXT,
    UNIQUE (source_event_id, provider_id, event)
) STRICT;
CREATE INDEX webhook_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_dead ON webhook_deliveries (dead_lettered_at) WHERE status = 'dead';
CREATE INDEX webhook_by_provider ON webhook_deliveries (provider_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id       BLOB NOT NULL REFERENCES webhook_deliveries (id),
    attempt           INTEGER NOT NULL,
    started_at        TEXT NOT NULL,
    outcome           TEXT NOT NULL,
    status_code       INTEGER,
    error             TEXT,
    latency_ms        INTEGER NOT NULL,
    response_excerpt  TEXT,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;

CREATE TABLE webhook_cursor (
    id             INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    last_event_id  INTEGER NOT NULL
) STRICT;
INSERT INTO webhook_cursor (id, last_event_id) SELECT 1, COALESCE(MAX(id), 0) FROM case_events;
