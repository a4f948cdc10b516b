-- claimd schema, version 8 (PostgreSQL): the console's sessions, keyed by the SHA-256 of the
-- session cookie's id, shared by every process on the database.
CREATE TABLE console_sessions (
    key           TEXT PRIMARY KEY NOT NULL,
    data          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    flash         TEXT
);
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
