-- claimd schema, version 2.

-- A counter that moves whenever a credential row changes or goes away (a revocation, whoever
-- makes it: this process, `claimd token revoke` in another, or SQL by hand). Servers that keep
-- credentials in memory poll it and forget what they hold when it moves.
CREATE TABLE credential_changes (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    epoch  INTEGER NOT NULL
) STRICT;
INSERT INTO credential_changes (id, epoch) VALUES (1, 0);

CREATE TRIGGER credentials_updated AFTER UPDATE ON credentials
BEGIN
    UPDATE credential_changes SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER credentials_deleted AFTER DELETE ON credentials
BEGIN
    UPDATE credential_changes SET epoch = epoch + 1 WHERE id = 1;
END;

-- The verify/unverify responses list an organization's verified and claimed domains; this
-- reads them without walking its pending ones.
CREATE INDEX domains_verified_by_org ON domains (org_id, domain) WHERE state <> 'pending';
