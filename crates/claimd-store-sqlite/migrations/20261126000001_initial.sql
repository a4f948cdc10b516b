-- claimd schema, version 1. Timestamps are Unix milliseconds.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE credentials (
    id           TEXT PRIMARY KEY NOT NULL,
    -- NULL: an operator credential, valid for every organization.
    org_id       TEXT REFERENCES organizations (id),
    label        TEXT NOT NULL,
    -- SHA-256 of the bearer secret; the secret itself is never stored.
    secret_hash  BLOB NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    roles        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX credentials_by_org ON credentials (org_id);

CREATE TABLE domains (
    org_id              TEXT NOT NULL REFERENCES organizations (id),
    domain              TEXT NOT NULL,
    -- Public suffix plus one label: claims can only conflict within one registrable domain.
    registrable         TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'claimed')),
    token               TEXT NOT NULL,
    token_expires_at    INTEGER NOT NULL,
    reserve_domain      INTEGER NOT NULL DEFAULT 0 CHECK (reserve_domain IN (0, 1)),
    force_domain_claim  INTEGER NOT NULL DEFAULT 1 CHECK (force_domain_claim IN (0, 1)),
    claim_domain_only   INTEGER NOT NULL DEFAULT 0 CHECK (claim_domain_only IN (0, 1)),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    verified_at         INTEGER,
    claimed_at          INTEGER,
    last_check_at       INTEGER,
    last_check_outcome  TEXT,
    last_check_detail   TEXT,
    PRIMARY KEY (org_id, domain),
    CHECK ((state = 'claimed') = (claimed_at IS NOT NULL)),
    CHECK ((state = 'pending') = (verified_at IS NULL))
) STRICT;

-- A domain is claimed by at most one organization.
CREATE UNIQUE INDEX domains_one_claim ON domains (domain) WHERE state = 'claimed';
CREATE INDEX domains_claims_by_registrable ON domains (registrable) WHERE state = 'claimed';

-- Append-only audit log; survives the deletion of the domain record it describes.
CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    org_id         TEXT NOT NULL,
    domain         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    credential_id  TEXT,
    tracking_id    TEXT,
    detail         TEXT
) STRICT;
CREATE INDEX events_by_domain ON events (org_id, domain, id);
