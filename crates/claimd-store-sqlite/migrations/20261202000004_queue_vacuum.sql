-- claimd schema, version 6 (SQLite): nothing to do. PostgreSQL's version makes autovacuum visit
-- the webhook delivery queue sooner; SQLite reuses freed pages by itself. Kept so both databases
-- have the same versions.
SELECT 1;
