//! Domains: the (organization, domain) records and the units of work of their lifecycle.

use std::time::Duration;

use async_trait::async_trait;
use claimd_domain::{
    ClaimFlags, DomainName, DomainRecord, HeldElsewhere, LookupSummary, OrgId, RecheckConfig,
    Timestamp, VerificationToken,
};

use crate::error::StoreResult;
use crate::events::Actor;

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

/// A request to record a verification.
#[derive(Clone, Debug)]
pub struct Verification {
    pub domain: DomainName,
    /// `None` when no lookup was made because the record was verified already.
    pub proof: Option<Proof>,
    /// Also claim, in the same transaction (both or neither).
    pub claim: bool,
    pub reserve_domain: bool,
    /// The operator's re-check defaults and bounds: a newly verified domain is scheduled for
    /// its first re-check by its organization's policy within them.
    pub recheck: RecheckConfig,
}

/// A lookup that proved control.
#[derive(Clone, Debug)]
pub struct Proof {
    /// The token found in DNS; the record must still carry it.
    pub token: VerificationToken,
    pub lookup: LookupSummary,
}

#[async_trait]
pub trait DomainStore: Send + Sync {
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
    /// The organization's record for `domain`, and what other organizations hold on exactly
    /// this domain (a claim, a reservation): one read.
    async fn find_domain_and_claim(
        &self,
        org: &OrgId,
        domain: &DomainName,
    ) -> StoreResult<(Option<DomainRecord>, HeldElsewhere)>;

    /// getDomainVerificationToken: creates or keeps the pending record and returns it.
    async fn issue_token(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        request: TokenRequest,
        now: Timestamp,
    ) -> StoreResult<DomainRecord>;
    /// Records a lookup that did not prove control (no state change, an event).
    async fn record_failed_lookup(
        &self,
        actor: &Actor,
        org: &OrgId,
        domain: &DomainName,
        lookup: &LookupSummary,
    ) -> StoreResult<()>;
    /// Records a verification, and the claim when asked, all or nothing; returns the
    /// organization's verified and claimed domains after it.
    async fn complete_verification(
        &self,
        actor: &Actor,
        org: &OrgId,
        verification: &Verification,
        now: Timestamp,
    ) -> StoreResult<DomainSummary>;
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
    /// The bulk path (loading another system's records, benchmarks): inserts the records as
    /// they are, with an `imported` event each, in one transaction. The claim constraints still
    /// hold; an existing (organization, domain) pair fails the whole import.
    async fn import_domains(&self, actor: &Actor, records: Vec<DomainRecord>) -> StoreResult<u64>;
}
