//! The storage contract. Every method is one whole unit of work: it opens, re-checks the
//! lifecycle rules inside, and commits its own transaction; no transaction crosses this
//! boundary. Implementations must also finish a unit of work that has started even when the
//! caller's future is dropped (a client that disconnects must not leave a half-done change).

use std::time::Duration;

use async_trait::async_trait;
use claimd_domain::{
    CheckSummary, ClaimFlags, Credential, CredentialId, DomainName, DomainRecord, LifecycleError,
    NewCredential, OrgId, Organization, SecretHash, Timestamp, VerificationToken,
};

#[cfg(feature = "testsuite")]
pub mod conformance;
#[cfg(feature = "sql")]
pub mod sql;

/// Who made a change, for the event log.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub credential_id: Option<CredentialId>,
    pub tracking_id: Option<String>,
}

/// One row of the append-only event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub at: Timestamp,
    pub org_id: OrgId,
    pub domain: DomainName,
    pub kind: EventKind,
    pub credential_id: Option<CredentialId>,
    pub tracking_id: Option<String>,
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    TokenIssued,
    TokenRenewed,
    CheckFailed,
    Verified,
    Claimed,
    Unclaimed,
    Unverified,
    Removed,
    Imported,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        Self::TokenIssued,
        Self::TokenRenewed,
        Self::CheckFailed,
        Self::Verified,
        Self::Claimed,
        Self::Unclaimed,
        Self::Unverified,
        Self::Removed,
        Self::Imported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenIssued => "token_issued",
            Self::TokenRenewed => "token_renewed",
            Self::CheckFailed => "check_failed",
            Self::Verified => "verified",
            Self::Claimed => "claimed",
            Self::Unclaimed => "unclaimed",
            Self::Unverified => "unverified",
            Self::Removed => "removed",
            Self::Imported => "imported",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The verified and claimed domains of one organization, sorted: the body of the verify and
/// unverify responses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainSummary {
    /// Every verified domain, claimed ones included.
    pub verified: Vec<DomainName>,
    pub claimed: Vec<DomainName>,
}

/// What getDomainVerificationToken asks of the store.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The token to use if a new one is needed.
    pub fresh: VerificationToken,
    /// How long a new token stays valid.
    pub ttl: Duration,
    /// A new record is refused once the organization has this many pending ones (0: no limit).
    pub max_pending: u64,
}

/// A request to record a successful verification.
#[derive(Clone, Debug)]
pub struct Verification {
    pub domain: DomainName,
    /// The token that was found in DNS; the record must still carry it.
    pub token: VerificationToken,
    /// Also claim, in the same transaction (both or neither).
    pub claim: bool,
    pub reserve_domain: bool,
    pub check: CheckSummary,
}

#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A lifecycle rule refused the change; nothing was written.
    #[error(transparent)]
    Rule(#[from] LifecycleError),
    #[error("unknown organization {0}")]
    UnknownOrganization(OrgId),
    /// The database cannot be reached or is overloaded; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupted data. Logged, never shown to API users.
    #[error("storage failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip to the database, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    // ---- organizations ----
    async fn create_organization(&self, name: &str, now: Timestamp) -> StoreResult<Organization>;
    async fn find_organization(&self, id: &OrgId) -> StoreResult<Option<Organization>>;
    async fn list_organizations(&self) -> StoreResult<Vec<Organization>>;
    /// Creates `org_name` and an admin credential if and only if no organization exists yet,
    /// atomically (two processes starting at once create one). `None` if the store had one.
    async fn create_first_organization(
        &self,
        org_name: &str,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<(Organization, Credential)>>;

    // ---- credentials ----
    async fn create_credential(
        &self,
        new: &NewCredential,
        secret: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Credential>;
    async fn find_credential_by_secret(
        &self,
        secret: &SecretHash,
    ) -> StoreResult<Option<Credential>>;
    async fn list_credentials(&self, org: &OrgId) -> StoreResult<Vec<Credential>>;
    /// Returns false if no such credential exists. Revoking twice keeps the first time.
    async fn revoke_credential(&self, id: &CredentialId, now: Timestamp) -> StoreResult<bool>;
    /// A counter that moves whenever any credential is changed or removed, by any process:
    /// what a cache of credentials polls to know when to forget what it holds.
    async fn credential_changes(&self) -> StoreResult<i64>;

    // ---- domains: reads ----
    async fn find_domain(
        &self,
        org: &OrgId,
        domain: &DomainName,
    ) -> StoreResult<Option<DomainRecord>>;
    /// The organization's domains in name order, starting after `after`.
    async fn list_domains(
        &self,
        org: &OrgId,
        after: Option<&DomainName>,
        limit: u32,
    ) -> StoreResult<Vec<DomainRecord>>;
    async fn summarize_domains(&self, org: &OrgId) -> StoreResult<DomainSummary>;
    /// The organization's record for `domain`, and whether another organization claims exactly
    /// this domain: one read.
    async fn find_domain_and_claim(
        &self,
        org: &OrgId,
        domain: &DomainName,
    ) -> StoreResult<(Option<DomainRecord>, bool)>;
    async fn list_events(&self, org: &OrgId, domain: &DomainName) -> StoreResult<Vec<Event>>;

    // ---- domains: units of work ----
    /// getDomainVerificationToken: creates or keeps the pending record and returns it.
    async fn issue_token(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        request: TokenRequest,
        now: Timestamp,
    ) -> StoreResult<DomainRecord>;
    /// Records a DNS check that did not prove control (no state change, an event).
    async fn record_failed_check(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        check: &CheckSummary,
    ) -> StoreResult<()>;
    /// Records a successful verification, and the claim when asked, all or nothing.
    async fn complete_verification(
        &self,
        actor: &Actor,
        org: &OrgId,
        verification: &Verification,
        flags: ClaimFlags,
        now: Timestamp,
    ) -> StoreResult<DomainSummary>;
    /// The bulk path (loading another system's records, benchmarks): inserts the records as
    /// they are, with an `imported` event each, in one transaction. The claim constraints still
    /// hold; an existing (organization, domain) pair fails the whole import.
    async fn import_domains(&self, actor: &Actor, records: Vec<DomainRecord>) -> StoreResult<u64>;
    /// Claims every listed domain or none.
    async fn claim_domains(
        &self,
        actor: &Actor,
        org: &OrgId,
        domains: &[DomainName],
        flags: ClaimFlags,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn unclaim_domain(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        now: Timestamp,
    ) -> StoreResult<()>;
    async fn unverify_domain(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        remove_pending: bool,
        now: Timestamp,
    ) -> StoreResult<DomainSummary>;
}
