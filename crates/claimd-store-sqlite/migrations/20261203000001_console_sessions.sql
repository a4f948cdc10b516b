-- claimd schema, version 8 (SQLite): the console's sessions, keyed by the SHA-256 of the
-- session cookie's id.
CREATE TABLE console_sessions (
    key           TEXT PRIMARY KEY NOT NULL,
    data          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    flash         TEXT
) STRICT;
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
