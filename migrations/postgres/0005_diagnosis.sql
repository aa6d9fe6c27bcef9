-- Remote diagnosis: the phone-expert queue (one ticket per case), the active triage
-- rules document, and masked-call bindings of virtual numbers to cases. The timeline
-- stays append-only: nothing here touches case_events' triggers.

CREATE TABLE diagnosis_tickets (
    id                   UUID PRIMARY KEY,
    case_id              UUID NOT NULL UNIQUE REFERENCES cases (id),
    category             TEXT NOT NULL,
    skill                TEXT NOT NULL,
    rule_id              TEXT NOT NULL,
    expected_fix_s       INTEGER NOT NULL,
    expected_truck_eta_s INTEGER,
    priority             INTEGER NOT NULL,
    queued_at            TIMESTAMPTZ NOT NULL,
    claimed_by           UUID REFERENCES users (id),
    claimed_at           TIMESTAMPTZ,
    claim_expires_at     TIMESTAMPTZ,
    first_claimed_at     TIMESTAMPTZ,
    lapsed_claims        INTEGER NOT NULL DEFAULT 0,
    outcome              TEXT CHECK (outcome IN ('solved', 'escalated', 'abandoned', 'timed_out')),
    notes                TEXT,
    closed_at            TIMESTAMPTZ,
    CHECK ((outcome IS NULL) = (closed_at IS NULL))
);
-- The queue: open tickets in queue order (priority DESC, queued_at ASC, id ASC).
CREATE INDEX diagnosis_tickets_queue ON diagnosis_tickets (priority DESC, queued_at, id)
    WHERE outcome IS NULL;
CREATE INDEX diagnosis_tickets_claims ON diagnosis_tickets (claim_expires_at)
    WHERE outcome IS NULL AND claimed_by IS NOT NULL;

-- Every stored rules document; the highest version is active. Old versions are kept as
-- the record of what rules decided which case.
CREATE TABLE triage_rules (
    version     BIGINT PRIMARY KEY,
    document    TEXT NOT NULL,
    saved_by    TEXT NOT NULL,
    saved_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE phone_bindings (
    id              BIGSERIAL PRIMARY KEY,
    virtual_number  TEXT NOT NULL,
    case_id         UUID NOT NULL REFERENCES cases (id),
    party_a         TEXT NOT NULL,
    party_b         TEXT NOT NULL,
    bound_at        TIMESTAMPTZ NOT NULL,
    released_at     TIMESTAMPTZ
);
-- A number is bound to at most one live binding, and a case holds at most one number.
CREATE UNIQUE INDEX phone_bindings_one_live_per_number ON phone_bindings (virtual_number)
    WHERE released_at IS NULL;
CREATE UNIQUE INDEX phone_bindings_one_live_per_case ON phone_bindings (case_id)
    WHERE released_at IS NULL;
