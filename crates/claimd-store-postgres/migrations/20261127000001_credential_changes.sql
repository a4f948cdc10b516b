-- claimd schema, version 2 (PostgreSQL). Same version names as the SQLite migrations.

-- A counter that moves whenever a credential row changes or goes away (a revocation, whoever
-- makes it: any claimd process, `claimd token revoke`, or SQL by hand). Servers that keep
-- credentials in memory poll it and forget what they hold when it moves.
CREATE TABLE credential_changes (
    id     SMALLINT PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL
);
INSERT INTO credential_changes (id, epoch) VALUES (1, 0);

CREATE FUNCTION claimd_credentials_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credential_changes SET epoch = epoch + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER credentials_changed AFTER UPDATE OR DELETE OR TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION claimd_credentials_changed();

-- The verify/unverify responses list an organization's verified and claimed domains; this
-- reads them without walking its pending ones.
CREATE INDEX domains_verified_by_org ON domains (org_id, domain) WHERE state <> 'pending';
