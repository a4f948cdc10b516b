-- claimd schema, version 1 (PostgreSQL). Same version names as the SQLite migrations.
-- Timestamps are Unix milliseconds.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE credentials (
    id           TEXT PRIMARY KEY,
    -- NULL: an operator credential, valid for every organization.
    org_id       TEXT REFERENCES organizations (id),
    label        TEXT NOT NULL,
    -- SHA-256 of the bearer secret; the secret itself is never stored.
    secret_hash  BYTEA NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    roles        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX credentials_by_org ON credentials (org_id);

CREATE TABLE domains (
    org_id              TEXT NOT NULL REFERENCES organizations (id),
    domain              TEXT NOT NULL,
    -- Public suffix plus one label: claims can only conflict within one registrable domain.
    registrable         TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'claimed')),
    token               TEXT NOT NULL,
    token_expires_at    BIGINT NOT NULL,
    reserve_domain      BOOLEAN NOT NULL DEFAULT FALSE,
    force_domain_claim  BOOLEAN NOT NULL DEFAULT TRUE,
    claim_domain_only   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    verified_at         BIGINT,
    claimed_at          BIGINT,
    last_check_at       BIGINT,
    last_check_outcome  TEXT,
    last_check_detail   TEXT,
    PRIMARY KEY (org_id, domain),
    CHECK ((state = 'claimed') = (claimed_at IS NOT NULL)),
    CHECK ((state = 'pending') = (verified_at IS NULL))
);

-- A domain is claimed by at most one organization.
CREATE UNIQUE INDEX domains_one_claim ON domains (domain) WHERE state = 'claimed';
CREATE INDEX domains_claims_by_registrable ON domains (registrable) WHERE state = 'claimed';

-- Append-only audit log; survives the deletion of the domain record it describes.
CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT NOT NULL,
    org_id         TEXT NOT NULL,
    domain         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    credential_id  TEXT,
    tracking_id    TEXT,
    detail         TEXT
);
CREATE INDEX events_by_domain ON events (org_id, domain, id);
