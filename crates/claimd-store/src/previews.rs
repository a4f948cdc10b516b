//! Impact previews: what a change would do to the people in the directory, answered without
//! doing it (`?preview=true` on the actions and the enforcement switch).

use async_trait::async_trait;
use claimd_domain::{ClaimFlags, DomainName, OrgId, OrganizationPatch, Timestamp};

use crate::error::StoreResult;
use crate::events::Actor;

/// A change whose effect on users can be previewed: each is the unit of work of the same name,
/// run in full inside a transaction that is then rolled back, so the preview applies the very
/// rules the change would.
#[derive(Clone, Debug)]
pub enum Change {
    /// verifyDomain, as if its lookup found the organization's token.
    Verify {
        domain: DomainName,
        claim: bool,
        reserve_domain: bool,
    },
    Claim {
        domains: Vec<DomainName>,
        flags: ClaimFlags,
    },
    Unclaim(DomainName),
    Unverify {
        domain: DomainName,
        remove_pending: bool,
    },
    /// A change to the organization (the enforcement switch).
    Organization(OrganizationPatch),
}

/// What a change would do to users' account status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Impact {
    /// Users of the organization that would become transient.
    pub users_becoming_transient: u64,
    /// Users of the organization that would become active again.
    pub users_becoming_active: u64,
    /// Users of other organizations the change would mark transient (external users).
    pub external_users_marked: u64,
    /// Users of other organizations it would make active again.
    pub external_users_restored: u64,
}

#[async_trait]
pub trait PreviewStore: Send + Sync {
    /// What `change` by `org` would do now, with nothing changed. A change the rules refuse is
    /// refused here the same way.
    async fn preview(
        &self,
        actor: &Actor,
        org: &OrgId,
        change: Change,
        now: Timestamp,
    ) -> StoreResult<Impact>;
}
