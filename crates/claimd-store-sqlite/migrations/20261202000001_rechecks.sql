-- claimd schema, version 3: continuous re-verification, and the organization resource.

-- An organization's own re-check choices (NULL: the operator's default) and its resource fields.
ALTER TABLE organizations ADD COLUMN updated_at INTEGER;
ALTER TABLE organizations ADD COLUMN preferred_language TEXT;
ALTER TABLE organizations ADD COLUMN recheck_interval_ms INTEGER;
ALTER TABLE organizations ADD COLUMN recheck_grace_ms INTEGER;
ALTER TABLE organizations ADD COLUMN lapse_action TEXT
    CHECK (lapse_action IN ('unverify', 'unclaim', 'keep'));

-- Where each verified domain stands with its re-checks. A due domain is leased by one worker
-- (owner and expiry) while its lookup runs; a lease that runs out is taken by another worker.
ALTER TABLE domains ADD COLUMN recheck_due_at INTEGER;
ALTER TABLE domains ADD COLUMN recheck_lease_owner TEXT;
ALTER TABLE domains ADD COLUMN recheck_lease_until INTEGER;
ALTER TABLE domains ADD COLUMN failing_since INTEGER;
ALTER TABLE domains ADD COLUMN lapses_at INTEGER;
ALTER TABLE domains ADD COLUMN unreachable_since INTEGER;
ALTER TABLE domains ADD COLUMN indeterminate_runs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE domains ADD COLUMN lapsed_at INTEGER;

-- Domains verified before this version enter the schedule spread over the next day.
UPDATE domains SET recheck_due_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
    + abs(random() % 86400000)
    WHERE state <> 'pending';

CREATE INDEX domains_recheck_due ON domains (recheck_due_at) WHERE recheck_due_at IS NOT NULL;
CREATE INDEX domains_recheck_lease ON domains (recheck_lease_owner)
    WHERE recheck_lease_owner IS NOT NULL;
