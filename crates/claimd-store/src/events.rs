//! The append-only event log: one event for every state change, written in the same
//! transaction as the change by the unit of work that makes it.

use async_trait::async_trait;
use claimd_domain::{CredentialId, DomainName, OrgId, Timestamp};

use crate::error::StoreResult;

/// Who made a change, for the event log.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub credential_id: Option<CredentialId>,
    pub tracking_id: Option<String>,
}

/// One row of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub at: Timestamp,
    pub org_id: OrgId,
    pub domain: DomainName,
    pub kind: EventKind,
    pub credential_id: Option<CredentialId>,
    pub tracking_id: Option<String>,
    /// The DNS evidence of a lookup, or a description.
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    TokenIssued,
    TokenRenewed,
    /// A lookup that did not prove control (stored as `check_failed`).
    LookupFailed,
    Verified,
    Claimed,
    Unclaimed,
    Unverified,
    Removed,
    Imported,
    /// A re-check found the record gone: the grace period started.
    AtRisk,
    /// A re-check found the record back.
    Recovered,
    /// The grace period ran out; the organization's lapse action follows.
    Lapsed,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        Self::TokenIssued,
        Self::TokenRenewed,
        Self::LookupFailed,
        Self::Verified,
        Self::Claimed,
        Self::Unclaimed,
        Self::Unverified,
        Self::Removed,
        Self::Imported,
        Self::AtRisk,
        Self::Recovered,
        Self::Lapsed,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenIssued => "token_issued",
            Self::TokenRenewed => "token_renewed",
            Self::LookupFailed => "check_failed",
            Self::Verified => "verified",
            Self::Claimed => "claimed",
            Self::Unclaimed => "unclaimed",
            Self::Unverified => "unverified",
            Self::Removed => "removed",
            Self::Imported => "imported",
            Self::AtRisk => "at_risk",
            Self::Recovered => "recovered",
            Self::Lapsed => "lapsed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// One domain's history in this organization, oldest first.
    async fn list_events(&self, org: &OrgId, domain: &DomainName) -> StoreResult<Vec<Event>>;
}
