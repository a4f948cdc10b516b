-- claimd schema, version 5 (PostgreSQL): the event log is the webhook outbox. A write appends
-- its event and nothing else; dispatchers turn events into deliveries later, in the order
-- events become visible (transaction, id), from a cursor kept here. Same version names as the
-- SQLite migrations.

-- How far the log has been turned into deliveries: every event at or before (tx, event_id).
-- One row; a dispatcher locks it while it advances it.
CREATE TABLE outbox_cursor (
    id        SMALLINT PRIMARY KEY CHECK (id = 1),
    tx        BIGINT NOT NULL,
    event_id  BIGINT NOT NULL
);
-- Events from before this version are not delivered.
INSERT INTO outbox_cursor (id, tx, event_id)
    SELECT 1, COALESCE(max(tx), 0), COALESCE(max(id), 0) FROM events;

-- The log in that order.
CREATE INDEX events_in_order ON events (tx, id);

-- One delivery per webhook and event, however many dispatchers turn the log.
DROP INDEX deliveries_by_webhook;
CREATE UNIQUE INDEX deliveries_once ON deliveries (webhook_id, event_id);

-- Due deliveries in the order they are leased in, to the last column (a backlog has many due
-- at the same time).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state = 'pending';
