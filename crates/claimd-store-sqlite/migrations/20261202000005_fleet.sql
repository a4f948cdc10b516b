-- claimd schema, version 7 (SQLite): the processes serving this database, each alive while
-- its heartbeat is recent; the rate limits are shared among them. With SQLite there is one.
CREATE TABLE fleet_members (
    id            TEXT PRIMARY KEY NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
) STRICT;
