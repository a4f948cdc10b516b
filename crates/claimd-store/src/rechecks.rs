//! The re-check schedule: which verified domains are due for another lookup, who is looking
//! them up (a lease, so that any number of workers share one schedule), and what each lookup
//! concluded.

use async_trait::async_trait;
use claimd_domain::{
    DomainName, DomainRecord, LookupSummary, OrgId, RecheckSettings, RecheckState, RecheckStep,
    Timestamp, VerificationToken,
};

use crate::error::StoreResult;
use crate::events::Actor;

/// A domain due for a re-check, leased to one worker, with its organization's choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueRecheck {
    pub record: DomainRecord,
    pub settings: RecheckSettings,
}

/// Who holds leased re-checks, and until when. A lease that runs out (its worker died) is
/// taken by the next worker that looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until: Timestamp,
}

/// What one re-check concluded, to be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecheckResult {
    pub org_id: OrgId,
    pub domain: DomainName,
    /// The token that was looked up: the record must still carry it.
    pub token: VerificationToken,
    pub lookup: LookupSummary,
    pub step: RecheckStep,
    /// The re-check state after it.
    pub state: RecheckState,
}

#[async_trait]
pub trait RecheckStore: Send + Sync {
    /// Leases up to `limit` of the verified domains due at `now` that no other worker holds a
    /// running lease on, soonest due first.
    async fn lease_due_rechecks(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueRecheck>>;

    /// Gives back every lease `owner` still holds on a domain due at `now` or before: a
    /// worker that stops hands what it leased and did not look up to the other workers at
    /// once, rather than when the leases run out. Returns how many were given back.
    async fn release_rechecks(&self, owner: &str, now: Timestamp) -> StoreResult<u64>;

    /// Records finished re-checks in one unit of work, releasing their leases. A result counts
    /// only while its record is still verified with the token that was looked up and, with
    /// `owner`, while that worker still holds the lease (a lease that ran out and was taken by
    /// another worker is theirs to record). Transitions (at risk, recovered, lapsed) apply the
    /// policy's action and append their events with the DNS evidence; the rest move the schedule
    /// only. Returns how many were recorded.
    async fn record_rechecks(
        &self,
        actor: &Actor,
        owner: Option<&str>,
        results: Vec<RecheckResult>,
        now: Timestamp,
    ) -> StoreResult<u64>;
}
