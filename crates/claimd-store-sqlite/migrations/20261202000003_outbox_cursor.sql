-- claimd schema, version 5 (SQLite): the event log is the webhook outbox. A write appends its
-- event and nothing else; the dispatcher turns events into deliveries later, in id order (the
-- order they commit in, with one writer), from a cursor kept here.

-- How far the log has been turned into deliveries: every event up to `event_id`. One row.
-- (`tx` is PostgreSQL's; kept for the same shape.)
CREATE TABLE outbox_cursor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    tx        INTEGER NOT NULL,
    event_id  INTEGER NOT NULL
) STRICT;
-- Events from before this version are not delivered.
INSERT INTO outbox_cursor (id, tx, event_id) SELECT 1, 0, COALESCE(max(id), 0) FROM events;

-- One delivery per webhook and event.
DROP INDEX deliveries_by_webhook;
CREATE UNIQUE INDEX deliveries_once ON deliveries (webhook_id, event_id);

-- Due deliveries in the order they are leased in, to the last column (a backlog has many due
-- at the same time).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state = 'pending';
