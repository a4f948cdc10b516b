-- claimd schema, version 4: the audit log read by the API, webhooks, and their outbox.

-- Events about credentials, organizations and webhooks as well as domains: what an event is
-- about (`target_type`, `target_id`; `domain` stays '' for the others), and for domain events
-- the domain's state after the change. Rows written before this version are domain events.
ALTER TABLE events ADD COLUMN target_type TEXT NOT NULL DEFAULT 'domain';
ALTER TABLE events ADD COLUMN target_id TEXT;
ALTER TABLE events ADD COLUMN state TEXT;
CREATE INDEX events_by_org ON events (org_id, id);

-- The event log is append-only: no update at all, and no deletion of an event younger than the
-- retention period (none at all while it is unset). claimd deletes only what retention allows.
CREATE TABLE audit_retention (
    id       INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    keep_ms  INTEGER
) STRICT;
INSERT INTO audit_retention (id, keep_ms) VALUES (1, NULL);

CREATE TRIGGER events_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

CREATE TRIGGER events_kept BEFORE DELETE ON events
    WHEN (SELECT keep_ms FROM audit_retention WHERE id = 1) IS NULL
      OR old.at >= CAST(strftime('%s', 'now') AS INTEGER) * 1000
                   - (SELECT keep_ms FROM audit_retention WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'events are kept for the audit retention period');
END;

CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY NOT NULL,
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
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    -- Every attempt has failed since then.
    failing_since  INTEGER
) STRICT;
CREATE INDEX webhooks_by_org ON webhooks (org_id, status);

-- The outbox: a row per (webhook, event), written in the same transaction as the event.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    delivered_at     INTEGER
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, event_id);
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;

-- Every attempt, for the delivery log.
CREATE TABLE delivery_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    webhook_id   TEXT NOT NULL,
    at           INTEGER NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    error        TEXT
) STRICT;
CREATE INDEX delivery_attempts_by_webhook ON delivery_attempts (webhook_id, id);
