-- claimd schema, version 9 (SQLite): the user directory. Case-insensitive attributes keep a
-- search key (their lowercase) beside them; userName's is unique across organizations. Every
-- email's key is a row of user_emails; the primary email's domain is indexed (reversed) for
-- the rules that act on a domain's users.
-- An organization may require its users' addresses to be in its verified domains.
ALTER TABLE organizations ADD COLUMN enforce_verified_domains INTEGER NOT NULL DEFAULT 0 CHECK (enforce_verified_domains IN (0, 1));

CREATE TABLE users (
    id                TEXT PRIMARY KEY NOT NULL,
    org_id            TEXT NOT NULL REFERENCES organizations (id),
    user_name         TEXT NOT NULL,
    user_name_key     TEXT NOT NULL UNIQUE,
    email_domain      TEXT NOT NULL,
    -- The domain's labels reversed ("com.example.sales."): a domain and every name below it
    -- are one range of this index.
    email_domain_rev  TEXT NOT NULL,
    display_name      TEXT,
    display_name_key  TEXT,
    given_name        TEXT,
    given_name_key    TEXT,
    family_name       TEXT,
    family_name_key   TEXT,
    external_id       TEXT,
    active            INTEGER NOT NULL CHECK (active IN (0, 1)),
    account_status    TEXT NOT NULL,
    -- The claimed domain that made the user transient (an unclaim restores them).
    transient_claim   TEXT,
    -- Outside the organization's verified domains while it enforces them.
    outside_verified  INTEGER NOT NULL DEFAULT 0 CHECK (outside_verified IN (0, 1)),
    emails            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    last_modified     INTEGER NOT NULL,
    version           INTEGER NOT NULL
) STRICT;
CREATE INDEX users_by_org ON users (org_id, user_name_key);
CREATE INDEX users_by_email_domain ON users (email_domain_rev);
CREATE INDEX users_by_transient_claim ON users (transient_claim);

CREATE TABLE user_emails (
    user_id    TEXT NOT NULL REFERENCES users (id),
    value_key  TEXT NOT NULL,
    PRIMARY KEY (user_id, value_key)
) STRICT;
CREATE INDEX user_emails_by_value ON user_emails (value_key);
