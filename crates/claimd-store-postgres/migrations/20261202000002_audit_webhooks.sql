-- claimd schema, version 4 (PostgreSQL): the audit log read by the API, webhooks, and their
-- outbox. Same version names as the SQLite migrations.

-- Events about credentials, organizations and webhooks as well as domains: what an event is
-- about (`target_type`, `target_id`; `domain` stays '' for the others), and for domain events
-- the domain's state after the change. Rows written before this version are domain events.
ALTER TABLE events ADD COLUMN target_type TEXT NOT NULL DEFAULT 'domain';
ALTER TABLE events ADD COLUMN target_id TEXT;
ALTER TABLE events ADD COLUMN state TEXT;
-- The writing transaction: readers page in (tx, id) order and see only events of transactions
-- older than every transaction still running, so a page never skips an event that commits
-- later with a smaller id.
ALTER TABLE events ADD COLUMN tx BIGINT NOT NULL DEFAULT (pg_current_xact_id()::TEXT::BIGINT);
CREATE INDEX events_by_org ON events (org_id, tx, id);

-- The event log is append-only: no update at all, and no deletion of an event younger than the
-- retention period (none at all while it is unset). claimd deletes only what retention allows.
CREATE TABLE audit_retention (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    keep_ms  BIGINT
);
INSERT INTO audit_retention (id, keep_ms) VALUES (1, NULL);

CREATE FUNCTION claimd_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keep BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT keep_ms INTO keep FROM audit_retention WHERE id = 1;
        IF keep IS NOT NULL AND OLD.at < (extract(epoch FROM now()) * 1000)::BIGINT - keep THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'events are kept for the audit retention period';
    END IF;
    RAISE EXCEPTION 'the event log is append-only';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION claimd_events_append_only();

CREATE FUNCTION claimd_events_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only';
END
$$;

CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION claimd_events_no_truncate();

CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id),
    name           TEXT NOT NULL,
    target_url     TEXT NOT NULL,
    resource       TEXT NOT NULL,
    event          TEXT NOT NULL,
    -- `domain=NAME`, or NULL for every domain.
    filter         TEXT,
    -- Needed in full to sign deliveries (an HMAC key cannot be stored as a hash).
    secret         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    created_by     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    -- Every attempt has failed since then.
    failing_since  BIGINT
);
CREATE INDEX webhooks_by_org ON webhooks (org_id, status);

-- The outbox: a row per (webhook, event), written in the same transaction as the event.
CREATE TABLE deliveries (
    id               BIGSERIAL PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    delivered_at     BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, event_id);
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;

-- Every attempt, for the delivery log.
CREATE TABLE delivery_attempts (
    id           BIGSERIAL PRIMARY KEY,
    delivery_id  BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    webhook_id   TEXT NOT NULL,
    at           BIGINT NOT NULL,
    status_code  BIGINT,
    latency_ms   BIGINT NOT NULL,
    error        TEXT
);
CREATE INDEX delivery_attempts_by_webhook ON delivery_attempts (webhook_id, id);
