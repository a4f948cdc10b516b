//! The lifecycle of one (organization, domain) record as pure functions over its current state.
//! Each storage implementation loads the state inside its write transaction, asks these
//! functions what to do, and applies the answer — so the rules exist once, and are re-checked
//! atomically at the moment of the write.

use std::time::Duration;

use crate::{DomainName, OrgId, Timestamp, VerificationToken};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainState {
    Pending,
    Verified,
    Claimed,
}

impl DomainState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Claimed => "claimed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "verified" => Some(Self::Verified),
            "claimed" => Some(Self::Claimed),
            _ => None,
        }
    }

    pub fn is_verified(self) -> bool {
        matches!(self, Self::Verified | Self::Claimed)
    }
}

/// The outcome of the last DNS check made for a record, kept for the reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSummary {
    pub at: Timestamp,
    /// A short machine-readable kind, e.g. `verified`, `not_found`, `dns_failure`.
    pub outcome: String,
    /// For a person: what was looked up and seen, and what to do.
    pub detail: String,
    /// For the audit log: a machine-readable record of everything the check saw (JSON);
    /// empty when there is nothing beyond `detail`.
    pub evidence: String,
}

impl CheckSummary {
    /// What the event log keeps: the evidence, or the description when there is none.
    pub fn evidence_or_detail(&self) -> &str {
        if self.evidence.is_empty() {
            &self.detail
        } else {
            &self.evidence
        }
    }
}

/// The two claim options Webex defines for users outside the organization. They are stored and
/// gain effect once claimd has a user directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimFlags {
    pub force_domain_claim: bool,
    pub claim_domain_only: bool,
}

impl Default for ClaimFlags {
    fn default() -> Self {
        Self {
            force_domain_claim: true,
            claim_domain_only: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRecord {
    pub org_id: OrgId,
    pub domain: DomainName,
    pub state: DomainState,
    pub token: VerificationToken,
    pub token_expires_at: Timestamp,
    pub reserve_domain: bool,
    pub flags: ClaimFlags,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub verified_at: Option<Timestamp>,
    pub claimed_at: Option<Timestamp>,
    pub last_check: Option<CheckSummary>,
}

/// A rule refused the operation. Every variant is the caller's doing, so each maps to a 4xx.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    #[error(
        "no verification token was requested for {0} in this organization; call getDomainVerificationToken first"
    )]
    NoTokenRequested(DomainName),
    #[error(
        "the verification token for {0} has expired; call getDomainVerificationToken for a new one and publish it"
    )]
    TokenExpired(DomainName),
    #[error("{0} is claimed by another organization")]
    ClaimedByOther(DomainName),
    #[error("{0} is already claimed by this organization")]
    ClaimedBySelf(DomainName),
    #[error("{domain} cannot be claimed: it conflicts with the existing claim on {conflicting}")]
    HierarchyConflict {
        domain: DomainName,
        conflicting: DomainName,
    },
    #[error("{0} is not verified by this organization; verify it before claiming")]
    NotVerified(DomainName),
    #[error("{0} is not claimed by this organization")]
    NotClaimed(DomainName),
    #[error("{0} is not associated with this organization")]
    NotAssociated(DomainName),
    #[error("{0} is claimed; unclaim it before unverifying")]
    StillClaimed(DomainName),
    #[error("the claim request lists no domain (field 'data' must hold at least one)")]
    EmptyClaimList,
    #[error(
        "this organization already has {max} pending domains, the most it may have; verify them or remove some with unverifyDomain and removePending"
    )]
    TooManyPending { max: u64 },
}

/// What getDomainVerificationToken does to the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenIssue {
    /// Hand back the stored token unchanged (pending and unexpired, or already verified).
    Existing,
    /// Create the record, pending, with this token.
    New {
        token: VerificationToken,
        expires_at: Timestamp,
    },
    /// The pending token expired: replace it.
    Renewed {
        token: VerificationToken,
        expires_at: Timestamp,
    },
}

/// How many pending records an organization has, and may have (0: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingCap {
    pub pending: u64,
    pub max: u64,
}

/// getDomainVerificationToken. `claimed_by_other` says whether another organization holds the
/// claim on exactly this domain. A retry returns the same token while it is valid, so a record
/// the user already published never goes stale by asking again.
pub fn issue_token(
    domain: &DomainName,
    own: Option<&DomainRecord>,
    claimed_by_other: bool,
    cap: PendingCap,
    now: Timestamp,
    ttl: Duration,
    fresh: VerificationToken,
) -> Result<TokenIssue, LifecycleError> {
    if claimed_by_other {
        return Err(LifecycleError::ClaimedByOther(domain.clone()));
    }
    let expires_at = now.plus(ttl);
    match own {
        None if cap.max > 0 && cap.pending >= cap.max => {
            Err(LifecycleError::TooManyPending { max: cap.max })
        }
        None => Ok(TokenIssue::New {
            token: fresh,
            expires_at,
        }),
        Some(r) => match r.state {
            DomainState::Claimed => Err(LifecycleError::ClaimedBySelf(domain.clone())),
            DomainState::Verified => Ok(TokenIssue::Existing),
            DomainState::Pending if now < r.token_expires_at => Ok(TokenIssue::Existing),
            DomainState::Pending => Ok(TokenIssue::Renewed {
                token: fresh,
                expires_at,
            }),
        },
    }
}

/// What verifyDomain must do before any write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyPlan {
    /// Look the token up in DNS.
    Lookup(VerificationToken),
    /// Already verified by this organization: no lookup.
    AlreadyVerified,
}

pub fn plan_verification(
    domain: &DomainName,
    own: Option<&DomainRecord>,
    now: Timestamp,
) -> Result<VerifyPlan, LifecycleError> {
    match own {
        None => Err(LifecycleError::NoTokenRequested(domain.clone())),
        Some(r) if r.state.is_verified() => Ok(VerifyPlan::AlreadyVerified),
        Some(r) if now >= r.token_expires_at => Err(LifecycleError::TokenExpired(domain.clone())),
        Some(r) => Ok(VerifyPlan::Lookup(r.token.clone())),
    }
}

/// Re-checked inside the write transaction after a successful lookup of `looked_up`: returns
/// whether the record moves to verified (false: it already is).
pub fn accept_verification(
    domain: &DomainName,
    own: Option<&DomainRecord>,
    looked_up: &VerificationToken,
) -> Result<bool, LifecycleError> {
    match own {
        None => Err(LifecycleError::NoTokenRequested(domain.clone())),
        Some(r) if r.state.is_verified() => Ok(false),
        // The token was replaced while the lookup ran: the proof is for a stale token.
        Some(r) if &r.token != looked_up => Err(LifecycleError::TokenExpired(domain.clone())),
        Some(_) => Ok(true),
    }
}

/// May this organization claim `domain`? `claims` are the current claims on names in the same
/// registrable domain, by any organization. Returns whether the domain is already claimed by
/// this organization (an idempotent no-op).
pub fn check_claimable(
    org: &OrgId,
    domain: &DomainName,
    own: Option<&DomainRecord>,
    claims: &[(OrgId, DomainName)],
) -> Result<bool, LifecycleError> {
    let own_state = own.map(|r| r.state);
    if !own_state.is_some_and(DomainState::is_verified) {
        return Err(LifecycleError::NotVerified(domain.clone()));
    }
    for (_, claimed) in claims.iter().filter(|(holder, _)| holder != org) {
        if claimed == domain {
            return Err(LifecycleError::ClaimedByOther(domain.clone()));
        }
        if claimed.is_related(domain) {
            return Err(LifecycleError::HierarchyConflict {
                domain: domain.clone(),
                conflicting: claimed.clone(),
            });
        }
    }
    Ok(own_state == Some(DomainState::Claimed))
}

pub fn check_unclaim(
    domain: &DomainName,
    own: Option<&DomainRecord>,
) -> Result<(), LifecycleError> {
    match own.map(|r| r.state) {
        None => Err(LifecycleError::NotAssociated(domain.clone())),
        Some(DomainState::Claimed) => Ok(()),
        Some(_) => Err(LifecycleError::NotClaimed(domain.clone())),
    }
}

/// What unverifyDomain does to the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnverifyAction {
    /// Drop the verification, keep the record pending with its token.
    BackToPending,
    /// Delete the record (`removePending`).
    Delete,
}

pub fn check_unverify(
    domain: &DomainName,
    own: Option<&DomainRecord>,
    remove_pending: bool,
) -> Result<UnverifyAction, LifecycleError> {
    match own.map(|r| r.state) {
        None => Err(LifecycleError::NotAssociated(domain.clone())),
        Some(DomainState::Claimed) => Err(LifecycleError::StillClaimed(domain.clone())),
        Some(_) if remove_pending => Ok(UnverifyAction::Delete),
        Some(_) => Ok(UnverifyAction::BackToPending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn record(state: DomainState, expires: i64) -> DomainRecord {
        DomainRecord {
            org_id: OrgId::new("a"),
            domain: name("example.com"),
            state,
            token: VerificationToken::from_stored("t1".into()),
            token_expires_at: Timestamp::from_millis(expires),
            reserve_domain: false,
            flags: ClaimFlags::default(),
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
            verified_at: None,
            claimed_at: None,
            last_check: None,
        }
    }

    #[test]
    fn token_issue_reuses_until_expiry() {
        let d = name("example.com");
        let now = Timestamp::from_millis(100);
        let ttl = Duration::from_millis(50);
        let fresh = || VerificationToken::from_stored("t2".into());
        let cap = PendingCap { pending: 0, max: 0 };
        let pending = record(DomainState::Pending, 200);
        assert_eq!(
            issue_token(&d, Some(&pending), false, cap, now, ttl, fresh()),
            Ok(TokenIssue::Existing)
        );
        let expired = record(DomainState::Pending, 100);
        assert!(matches!(
            issue_token(&d, Some(&expired), false, cap, now, ttl, fresh()),
            Ok(TokenIssue::Renewed { expires_at, .. }) if expires_at == Timestamp::from_millis(150)
        ));
        assert!(matches!(
            issue_token(&d, None, false, cap, now, ttl, fresh()),
            Ok(TokenIssue::New { .. })
        ));
        assert_eq!(
            issue_token(&d, None, true, cap, now, ttl, fresh()),
            Err(LifecycleError::ClaimedByOther(d.clone()))
        );
        let claimed = record(DomainState::Claimed, 0);
        assert_eq!(
            issue_token(&d, Some(&claimed), false, cap, now, ttl, fresh()),
            Err(LifecycleError::ClaimedBySelf(d.clone()))
        );
        let verified = record(DomainState::Verified, 0);
        assert_eq!(
            issue_token(&d, Some(&verified), false, cap, now, ttl, fresh()),
            Ok(TokenIssue::Existing)
        );
    }

    #[test]
    fn the_pending_cap_applies_to_new_records_only() {
        let d = name("example.com");
        let now = Timestamp::from_millis(100);
        let ttl = Duration::from_millis(50);
        let full = PendingCap { pending: 3, max: 3 };
        let fresh = || VerificationToken::from_stored("t2".into());
        assert_eq!(
            issue_token(&d, None, false, full, now, ttl, fresh()),
            Err(LifecycleError::TooManyPending { max: 3 })
        );
        let pending = record(DomainState::Pending, 200);
        assert_eq!(
            issue_token(&d, Some(&pending), false, full, now, ttl, fresh()),
            Ok(TokenIssue::Existing)
        );
        let room = PendingCap { pending: 2, max: 3 };
        assert!(matches!(
            issue_token(&d, None, false, room, now, ttl, fresh()),
            Ok(TokenIssue::New { .. })
        ));
    }

    #[test]
    fn verification_plan() {
        let d = name("example.com");
        let now = Timestamp::from_millis(100);
        assert_eq!(
            plan_verification(&d, None, now),
            Err(LifecycleError::NoTokenRequested(d.clone()))
        );
        assert_eq!(
            plan_verification(&d, Some(&record(DomainState::Pending, 100)), now),
            Err(LifecycleError::TokenExpired(d.clone()))
        );
        assert!(matches!(
            plan_verification(&d, Some(&record(DomainState::Pending, 101)), now),
            Ok(VerifyPlan::Lookup(_))
        ));
        assert_eq!(
            plan_verification(&d, Some(&record(DomainState::Claimed, 0)), now),
            Ok(VerifyPlan::AlreadyVerified)
        );
        let t1 = VerificationToken::from_stored("t1".into());
        let t2 = VerificationToken::from_stored("t2".into());
        let p = record(DomainState::Pending, 0);
        assert_eq!(accept_verification(&d, Some(&p), &t1), Ok(true));
        assert_eq!(
            accept_verification(&d, Some(&p), &t2),
            Err(LifecycleError::TokenExpired(d.clone()))
        );
        assert_eq!(
            accept_verification(&d, Some(&record(DomainState::Verified, 0)), &t2),
            Ok(false)
        );
    }

    #[test]
    fn claim_rules() {
        let a = OrgId::new("a");
        let b = OrgId::new("b");
        let d = name("example.com");
        let verified = record(DomainState::Verified, 0);
        assert_eq!(
            check_claimable(&a, &d, None, &[]),
            Err(LifecycleError::NotVerified(d.clone()))
        );
        assert_eq!(
            check_claimable(&a, &d, Some(&record(DomainState::Pending, 0)), &[]),
            Err(LifecycleError::NotVerified(d.clone()))
        );
        assert_eq!(check_claimable(&a, &d, Some(&verified), &[]), Ok(false));
        assert_eq!(
            check_claimable(&a, &d, Some(&verified), &[(b.clone(), d.clone())]),
            Err(LifecycleError::ClaimedByOther(d.clone()))
        );
        let child = name("x.example.com");
        assert_eq!(
            check_claimable(&a, &d, Some(&verified), &[(b.clone(), child.clone())]),
            Err(LifecycleError::HierarchyConflict {
                domain: d.clone(),
                conflicting: child.clone()
            })
        );
        // The same organization may hold both levels.
        assert_eq!(
            check_claimable(&a, &d, Some(&verified), &[(a.clone(), child)]),
            Ok(false)
        );
        assert_eq!(
            check_claimable(
                &a,
                &d,
                Some(&record(DomainState::Claimed, 0)),
                &[(a.clone(), d.clone())]
            ),
            Ok(true)
        );
    }

    #[test]
    fn unclaim_and_unverify_rules() {
        let d = name("example.com");
        assert_eq!(
            check_unclaim(&d, None),
            Err(LifecycleError::NotAssociated(d.clone()))
        );
        assert_eq!(
            check_unclaim(&d, Some(&record(DomainState::Verified, 0))),
            Err(LifecycleError::NotClaimed(d.clone()))
        );
        assert_eq!(
            check_unclaim(&d, Some(&record(DomainState::Claimed, 0))),
            Ok(())
        );
        assert_eq!(
            check_unverify(&d, None, false),
            Err(LifecycleError::NotAssociated(d.clone()))
        );
        assert_eq!(
            check_unverify(&d, Some(&record(DomainState::Claimed, 0)), true),
            Err(LifecycleError::StillClaimed(d.clone()))
        );
        assert_eq!(
            check_unverify(&d, Some(&record(DomainState::Verified, 0)), false),
            Ok(UnverifyAction::BackToPending)
        );
        assert_eq!(
            check_unverify(&d, Some(&record(DomainState::Pending, 0)), true),
            Ok(UnverifyAction::Delete)
        );
    }
}
