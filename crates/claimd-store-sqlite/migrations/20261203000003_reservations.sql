-- reserveDomain: a verified organization keeps the name to itself while it stays verified.
-- A reservation ends with the verification.
UPDATE domains SET reserve_domain = FALSE WHERE state = 'pending' AND reserve_domain;
-- At most one organization reserves a name: where several did before this rule, the earliest
-- verified keeps it.
UPDATE domains SET reserve_domain = FALSE
WHERE reserve_domain AND state <> 'pending' AND EXISTS (
    SELECT 1 FROM domains o
    WHERE o.domain = domains.domain AND o.reserve_domain AND o.state <> 'pending'
      AND (o.verified_at < domains.verified_at
           OR (o.verified_at = domains.verified_at AND o.org_id < domains.org_id)));
CREATE UNIQUE INDEX domains_one_reservation ON domains (domain)
    WHERE reserve_domain AND state <> 'pending';
-- Other organizations' verified records of a name, read by verifications (pending rows, the
-- bulk of token requests, stay out of it).
CREATE INDEX domains_verified_by_name ON domains (domain) WHERE state <> 'pending';
