-- claimd schema, version 7 (PostgreSQL): the `claimd serve` processes sharing this database,
-- each alive while its heartbeat is recent; each divides the rate limits by how many are
-- alive, so that together they allow what one process would.
CREATE TABLE fleet_members (
    id            TEXT PRIMARY KEY NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL
);
