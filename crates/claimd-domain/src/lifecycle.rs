//! The lifecycle of one (organization, domain) record as pure functions over its current state.
//! Each storage implementation loads the state inside its write transaction, asks these
//! functions what to do, and applies the answer — so the rules exist once, and are re-checked
//! atomically at the moment of the write.

use std::time::Duration;

use crate::{DomainName, OrgId, RecheckState, Timestamp, VerificationToken};

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

/// What a DNS lookup of a verification token concluded, as kept on the record and in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupOutcome {
    /// The expected TXT record is published.
    Verified,
    /// The name exists but has no TXT record.
    NotFound,
    /// The name does not exist.
    NxDomain,
    /// TXT records exist, none with the expected value.
    WrongValue,
    /// The DNS answered with an error or could not be reached.
    DnsFailure,
    /// No answer in time.
    Timeout,
    /// The answer is DNSSEC-signed and its signatures do not validate: it proves nothing, and
    /// may be an attack on the lookup rather than a loss of control.
    DnssecBogus,
}

impl LookupOutcome {
    pub const ALL: [LookupOutcome; 7] = [
        Self::Verified,
        Self::NotFound,
        Self::NxDomain,
        Self::WrongValue,
        Self::DnsFailure,
        Self::Timeout,
        Self::DnssecBogus,
    ];

    /// The stored and reported form (`verified`, `not_found`, `nxdomain`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::NotFound => "not_found",
            Self::NxDomain => "nxdomain",
            Self::WrongValue => "wrong_value",
            Self::DnsFailure => "dns_failure",
            Self::Timeout => "timeout",
            Self::DnssecBogus => "dnssec_bogus",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Only this outcome may change a record's state.
    pub fn is_verified(self) -> bool {
        self == Self::Verified
    }
}

/// One DNS lookup made for a record, kept for the reads and the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupSummary {
    pub at: Timestamp,
    pub outcome: LookupOutcome,
    /// For a person: what was looked up and seen, and what to do.
    pub detail: String,
    /// For the audit log: a machine-readable record of everything the lookup saw (JSON);
    /// empty when there is nothing beyond `detail`.
    pub evidence: String,
}

impl LookupSummary {
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
    /// The last DNS lookup made for this record (its evidence lives in the event log).
    pub last_lookup: Option<LookupSummary>,
    /// Where its re-checks stand (verified records only).
    pub recheck: RecheckState,
}

/// The changes the lifecycle makes to a record, applied in memory by the units of work and then
/// written back whole. Each is what one transition means for the record's fields.
impl DomainRecord {
    /// A new record, pending with `token`.
    pub fn pending(
        org_id: OrgId,
        domain: DomainName,
        token: VerificationToken,
        token_expires_at: Timestamp,
        now: Timestamp,
    ) -> Self {
        Self {
            org_id,
            domain,
            state: DomainState::Pending,
            token,
            token_expires_at,
            reserve_domain: false,
            flags: ClaimFlags::default(),
            created_at: now,
            updated_at: now,
            verified_at: None,
            claimed_at: None,
            last_lookup: None,
            recheck: RecheckState::default(),
        }
    }

    pub fn renew_token(&mut self, token: VerificationToken, expires_at: Timestamp, now: Timestamp) {
        self.token = token;
        self.token_expires_at = expires_at;
        self.updated_at = now;
    }

    /// A lookup that did not prove control: kept for the reads, the state is unchanged.
    pub fn record_lookup(&mut self, lookup: LookupSummary) {
        self.last_lookup = Some(lookup);
    }

    /// Verified by `lookup`; re-checked from then on as `schedule` says.
    pub fn mark_verified(&mut self, lookup: LookupSummary, now: Timestamp, schedule: RecheckState) {
        self.state = DomainState::Verified;
        self.verified_at = Some(now);
        self.updated_at = now;
        self.last_lookup = Some(lookup);
        self.recheck = schedule;
    }

    pub fn mark_claimed(&mut self, flags: ClaimFlags, now: Timestamp) {
        self.state = DomainState::Claimed;
        self.claimed_at = Some(now);
        self.updated_at = now;
        self.flags = flags;
    }

    /// Back to verified: the claim is released.
    pub fn mark_unclaimed(&mut self, now: Timestamp) {
        self.state = DomainState::Verified;
        self.claimed_at = None;
        self.updated_at = now;
    }

    /// Back to pending, keeping the token and its expiry; no more re-checks, and no more
    /// reservation (it lasts while the name stays verified).
    pub fn mark_unverified(&mut self, now: Timestamp) {
        self.state = DomainState::Pending;
        self.verified_at = None;
        self.updated_at = now;
        self.recheck = RecheckState::default();
        self.reserve_domain = false;
    }

    /// A pending record whose token can no longer be verified.
    pub fn token_expired(&self, now: Timestamp) -> bool {
        self.state == DomainState::Pending && now >= self.token_expires_at
    }
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
    /// Another organization verified the name with `reserveDomain`, and keeps it verified.
    #[error(
        "{0} is reserved by another organization (reserveDomain): no other organization may request a token for it or verify it while that organization keeps it verified"
    )]
    ReservedByOther(DomainName),
    /// `reserveDomain` on a name another organization has verified too.
    #[error(
        "reserveDomain: {0} cannot be reserved, another organization has verified it as well; a reservation is only for a name one organization alone has verified"
    )]
    VerifiedByOther(DomainName),
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
    #[error(
        "{0} was unverified while this request ran, so it was not looked up; call verifyDomain again"
    )]
    UnverifiedMeanwhile(DomainName),
    /// A claim with `forceDomainClaim: false` while users of other organizations have
    /// addresses in the domain (how many, never who or where).
    #[error(
        "{count} user(s) of other organizations have addresses in {domain}; claim with forceDomainClaim: true to mark them transient, or with claimDomainOnly: true to leave users alone"
    )]
    ExternalUsers { domain: DomainName, count: u64 },
    /// A user with an address outside the verified domains of an organization that enforces
    /// them.
    #[error(
        "userName: {0} is not one of this organization's verified domains (nor below one), and the organization enforces them (enforceVerifiedDomains)"
    )]
    OutsideVerifiedDomains(DomainName),
    /// The admin lock-out guard: the change would leave the organization with no active user
    /// holding `id_full_admin`.
    #[error(
        "admin lock-out guard: this change would leave the organization with no active user holding id_full_admin; give another active user that role first (an operator credential is not held by the guard)"
    )]
    AdminLockout,
    /// The guard, for the organizations a claim would mark users of (how many, never which).
    #[error(
        "admin lock-out guard: the claim of {domain} would make the last active id_full_admin of {count} other organization(s) transient; claim with claimDomainOnly: true, or ask the operator"
    )]
    AdminLockoutElsewhere { domain: DomainName, count: u64 },
}

/// What getDomainVerificationToken does to the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenPlan {
    /// Hand back the stored token unchanged (pending and unexpired, or already verified).
    Existing,
    /// Create the record, pending, with this token.
    New {
        token: VerificationToken,
        expires_at: Timestamp,
    },
    /// The pending token expired: replace it.
    Renew {
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

/// What other organizations hold on exactly one name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeldElsewhere {
    /// Nothing that keeps this organization from it.
    #[default]
    Nothing,
    /// Another organization claims it.
    Claim,
    /// Another organization keeps it verified with `reserveDomain`.
    Reservation,
}

impl HeldElsewhere {
    /// The refusal of a token request or a verification of `domain`, if any. A claim is named
    /// before a reservation: it is the stronger hold, and Cisco's contract names it.
    pub fn refusal(self, domain: &DomainName) -> Option<LifecycleError> {
        match self {
            Self::Nothing => None,
            Self::Claim => Some(LifecycleError::ClaimedByOther(domain.clone())),
            Self::Reservation => Some(LifecycleError::ReservedByOther(domain.clone())),
        }
    }
}

/// getDomainVerificationToken. `elsewhere` says what other organizations hold on exactly this
/// domain. A retry returns the same token while it is valid, so a record the user already
/// published never goes stale by asking again.
pub fn plan_token(
    domain: &DomainName,
    own: Option<&DomainRecord>,
    elsewhere: HeldElsewhere,
    cap: PendingCap,
    now: Timestamp,
    ttl: Duration,
    fresh: VerificationToken,
) -> Result<TokenPlan, LifecycleError> {
    if let Some(refusal) = elsewhere.refusal(domain) {
        return Err(refusal);
    }
    let expires_at = now.plus(ttl);
    match own {
        None if cap.max > 0 && cap.pending >= cap.max => {
            Err(LifecycleError::TooManyPending { max: cap.max })
        }
        None => Ok(TokenPlan::New {
            token: fresh,
            expires_at,
        }),
        Some(r) => match r.state {
            DomainState::Claimed => Err(LifecycleError::ClaimedBySelf(domain.clone())),
            DomainState::Verified => Ok(TokenPlan::Existing),
            DomainState::Pending if now < r.token_expires_at => Ok(TokenPlan::Existing),
            DomainState::Pending => Ok(TokenPlan::Renew {
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

/// What a verification does to the record, decided inside the write transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// The lookup proved control: the record becomes verified.
    MarkVerified,
    /// The record is verified already; nothing to record.
    AlreadyVerified,
}

/// Re-checked inside the write transaction. `looked_up` is the token a successful lookup found,
/// or `None` when none was made because the record was verified when the request began.
pub fn accept_verification(
    domain: &DomainName,
    own: Option<&DomainRecord>,
    looked_up: Option<&VerificationToken>,
) -> Result<Acceptance, LifecycleError> {
    match (own, looked_up) {
        (None, _) => Err(LifecycleError::NoTokenRequested(domain.clone())),
        (Some(r), _) if r.state.is_verified() => Ok(Acceptance::AlreadyVerified),
        (Some(_), None) => Err(LifecycleError::UnverifiedMeanwhile(domain.clone())),
        // The token was replaced while the lookup ran: the proof is for a stale token.
        (Some(r), Some(token)) if &r.token != token => {
            Err(LifecycleError::TokenExpired(domain.clone()))
        }
        (Some(_), Some(_)) => Ok(Acceptance::MarkVerified),
    }
}

/// Other organizations' verified records of a name, as a verification reads them inside its
/// write transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifiedElsewhere {
    /// Another organization has the name verified (or claimed).
    pub verified: bool,
    /// Another organization keeps it reserved.
    pub reserved: bool,
}

/// The reservation rule of a verification, checked with [`accept_verification`]: nobody else
/// verifies a name an organization reserves, and a reservation is only for a name no other
/// organization has verified (so a reserved name is verified by exactly one organization).
pub fn check_reservation(
    domain: &DomainName,
    elsewhere: VerifiedElsewhere,
    reserve: bool,
) -> Result<(), LifecycleError> {
    if elsewhere.reserved {
        Err(LifecycleError::ReservedByOther(domain.clone()))
    } else if reserve && elsewhere.verified {
        Err(LifecycleError::VerifiedByOther(domain.clone()))
    } else {
        Ok(())
    }
}

/// What claiming one domain does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimPlan {
    Claim,
    /// Claimed by this organization already: nothing to do.
    AlreadyClaimed,
}

/// May this organization claim `domain`? `claims` are the current claims on names in the same
/// registrable domain, by any organization.
pub fn plan_claim(
    org: &OrgId,
    domain: &DomainName,
    own: Option<&DomainRecord>,
    claims: &[(OrgId, DomainName)],
) -> Result<ClaimPlan, LifecycleError> {
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
    if own_state == Some(DomainState::Claimed) {
        Ok(ClaimPlan::AlreadyClaimed)
    } else {
        Ok(ClaimPlan::Claim)
    }
}

/// unclaimDomain is allowed only on this organization's claim.
pub fn plan_unclaim(domain: &DomainName, own: Option<&DomainRecord>) -> Result<(), LifecycleError> {
    match own.map(|r| r.state) {
        None => Err(LifecycleError::NotAssociated(domain.clone())),
        Some(DomainState::Claimed) => Ok(()),
        Some(_) => Err(LifecycleError::NotClaimed(domain.clone())),
    }
}

/// What unverifyDomain does to the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnverifyPlan {
    /// Drop the verification, keep the record pending with its token.
    BackToPending,
    /// Pending already, and kept: nothing to do.
    AlreadyPending,
    /// Delete the record (`removePending`).
    Delete,
}

pub fn plan_unverify(
    domain: &DomainName,
    own: Option<&DomainRecord>,
    remove_pending: bool,
) -> Result<UnverifyPlan, LifecycleError> {
    match own.map(|r| r.state) {
        None => Err(LifecycleError::NotAssociated(domain.clone())),
        Some(DomainState::Claimed) => Err(LifecycleError::StillClaimed(domain.clone())),
        Some(_) if remove_pending => Ok(UnverifyPlan::Delete),
        Some(DomainState::Verified) => Ok(UnverifyPlan::BackToPending),
        Some(DomainState::Pending) => Ok(UnverifyPlan::AlreadyPending),
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
            last_lookup: None,
            recheck: RecheckState::default(),
        }
    }

    #[test]
    fn token_plan_reuses_until_expiry() {
        let d = name("example.com");
        let now = Timestamp::from_millis(100);
        let ttl = Duration::from_millis(50);
        let fresh = || VerificationToken::from_stored("t2".into());
        let cap = PendingCap { pending: 0, max: 0 };
        let pending = record(DomainState::Pending, 200);
        assert_eq!(
            plan_token(
                &d,
                Some(&pending),
                HeldElsewhere::Nothing,
                cap,
                now,
                ttl,
                fresh()
            ),
            Ok(TokenPlan::Existing)
        );
        let expired = record(DomainState::Pending, 100);
        assert!(matches!(
            plan_token(&d, Some(&expired), HeldElsewhere::Nothing, cap, now, ttl, fresh()),
            Ok(TokenPlan::Renew { expires_at, .. }) if expires_at == Timestamp::from_millis(150)
        ));
        assert!(matches!(
            plan_token(&d, None, HeldElsewhere::Nothing, cap, now, ttl, fresh()),
            Ok(TokenPlan::New { .. })
        ));
        assert_eq!(
            plan_token(&d, None, HeldElsewhere::Claim, cap, now, ttl, fresh()),
            Err(LifecycleError::ClaimedByOther(d.clone()))
        );
        assert_eq!(
            plan_token(
                &d,
                Some(&pending),
                HeldElsewhere::Reservation,
                cap,
                now,
                ttl,
                fresh()
            ),
            Err(LifecycleError::ReservedByOther(d.clone()))
        );
        let claimed = record(DomainState::Claimed, 0);
        assert_eq!(
            plan_token(
                &d,
                Some(&claimed),
                HeldElsewhere::Nothing,
                cap,
                now,
                ttl,
                fresh()
            ),
            Err(LifecycleError::ClaimedBySelf(d.clone()))
        );
        let verified = record(DomainState::Verified, 0);
        assert_eq!(
            plan_token(
                &d,
                Some(&verified),
                HeldElsewhere::Nothing,
                cap,
                now,
                ttl,
                fresh()
            ),
            Ok(TokenPlan::Existing)
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
            plan_token(&d, None, HeldElsewhere::Nothing, full, now, ttl, fresh()),
            Err(LifecycleError::TooManyPending { max: 3 })
        );
        let pending = record(DomainState::Pending, 200);
        assert_eq!(
            plan_token(
                &d,
                Some(&pending),
                HeldElsewhere::Nothing,
                full,
                now,
                ttl,
                fresh()
            ),
            Ok(TokenPlan::Existing)
        );
        let room = PendingCap { pending: 2, max: 3 };
        assert!(matches!(
            plan_token(&d, None, HeldElsewhere::Nothing, room, now, ttl, fresh()),
            Ok(TokenPlan::New { .. })
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
        assert_eq!(
            accept_verification(&d, Some(&p), Some(&t1)),
            Ok(Acceptance::MarkVerified)
        );
        assert_eq!(
            accept_verification(&d, Some(&p), Some(&t2)),
            Err(LifecycleError::TokenExpired(d.clone()))
        );
        let verified = record(DomainState::Verified, 0);
        assert_eq!(
            accept_verification(&d, Some(&verified), Some(&t2)),
            Ok(Acceptance::AlreadyVerified)
        );
        assert_eq!(
            accept_verification(&d, Some(&verified), None),
            Ok(Acceptance::AlreadyVerified)
        );
        // Another organization's reservation refuses any verification; a reservation is refused
        // where another organization has verified the name.
        let free = VerifiedElsewhere::default();
        let verified_there = VerifiedElsewhere {
            verified: true,
            reserved: false,
        };
        let reserved_there = VerifiedElsewhere {
            verified: true,
            reserved: true,
        };
        assert_eq!(check_reservation(&d, free, true), Ok(()));
        assert_eq!(check_reservation(&d, verified_there, false), Ok(()));
        assert_eq!(
            check_reservation(&d, verified_there, true),
            Err(LifecycleError::VerifiedByOther(d.clone()))
        );
        assert_eq!(
            check_reservation(&d, reserved_there, false),
            Err(LifecycleError::ReservedByOther(d.clone()))
        );
        // Planned without a lookup (it was verified), unverified before the write.
        assert_eq!(
            accept_verification(&d, Some(&p), None),
            Err(LifecycleError::UnverifiedMeanwhile(d.clone()))
        );
    }

    #[test]
    fn claim_rules() {
        let a = OrgId::new("a");
        let b = OrgId::new("b");
        let d = name("example.com");
        let verified = record(DomainState::Verified, 0);
        assert_eq!(
            plan_claim(&a, &d, None, &[]),
            Err(LifecycleError::NotVerified(d.clone()))
        );
        assert_eq!(
            plan_claim(&a, &d, Some(&record(DomainState::Pending, 0)), &[]),
            Err(LifecycleError::NotVerified(d.clone()))
        );
        assert_eq!(
            plan_claim(&a, &d, Some(&verified), &[]),
            Ok(ClaimPlan::Claim)
        );
        assert_eq!(
            plan_claim(&a, &d, Some(&verified), &[(b.clone(), d.clone())]),
            Err(LifecycleError::ClaimedByOther(d.clone()))
        );
        let child = name("x.example.com");
        assert_eq!(
            plan_claim(&a, &d, Some(&verified), &[(b.clone(), child.clone())]),
            Err(LifecycleError::HierarchyConflict {
                domain: d.clone(),
                conflicting: child.clone()
            })
        );
        // The same organization may hold both levels.
        assert_eq!(
            plan_claim(&a, &d, Some(&verified), &[(a.clone(), child)]),
            Ok(ClaimPlan::Claim)
        );
        assert_eq!(
            plan_claim(
                &a,
                &d,
                Some(&record(DomainState::Claimed, 0)),
                &[(a.clone(), d.clone())]
            ),
            Ok(ClaimPlan::AlreadyClaimed)
        );
    }

    #[test]
    fn unclaim_and_unverify_rules() {
        let d = name("example.com");
        assert_eq!(
            plan_unclaim(&d, None),
            Err(LifecycleError::NotAssociated(d.clone()))
        );
        assert_eq!(
            plan_unclaim(&d, Some(&record(DomainState::Verified, 0))),
            Err(LifecycleError::NotClaimed(d.clone()))
        );
        assert_eq!(
            plan_unclaim(&d, Some(&record(DomainState::Claimed, 0))),
            Ok(())
        );
        assert_eq!(
            plan_unverify(&d, None, false),
            Err(LifecycleError::NotAssociated(d.clone()))
        );
        assert_eq!(
            plan_unverify(&d, Some(&record(DomainState::Claimed, 0)), true),
            Err(LifecycleError::StillClaimed(d.clone()))
        );
        assert_eq!(
            plan_unverify(&d, Some(&record(DomainState::Verified, 0)), false),
            Ok(UnverifyPlan::BackToPending)
        );
        assert_eq!(
            plan_unverify(&d, Some(&record(DomainState::Pending, 0)), true),
            Ok(UnverifyPlan::Delete)
        );
        assert_eq!(
            plan_unverify(&d, Some(&record(DomainState::Pending, 0)), false),
            Ok(UnverifyPlan::AlreadyPending)
        );
    }

    #[test]
    fn transitions_change_only_their_fields() {
        let org = OrgId::new("a");
        let d = name("example.com");
        let t = VerificationToken::from_stored("t1".into());
        let mut r = DomainRecord::pending(
            org,
            d,
            t,
            Timestamp::from_millis(9),
            Timestamp::from_millis(1),
        );
        assert_eq!(
            (r.state, r.created_at, r.updated_at),
            (
                DomainState::Pending,
                Timestamp::from_millis(1),
                Timestamp::from_millis(1)
            )
        );
        let lookup = LookupSummary {
            at: Timestamp::from_millis(2),
            outcome: LookupOutcome::Verified,
            detail: String::new(),
            evidence: String::new(),
        };
        r.mark_verified(
            lookup.clone(),
            Timestamp::from_millis(3),
            RecheckState::default(),
        );
        assert_eq!(r.state, DomainState::Verified);
        assert_eq!(
            (r.verified_at, r.updated_at),
            (Some(Timestamp::from_millis(3)), Timestamp::from_millis(3))
        );
        assert_eq!(r.last_lookup, Some(lookup));
        let flags = ClaimFlags {
            force_domain_claim: false,
            claim_domain_only: true,
        };
        r.mark_claimed(flags, Timestamp::from_millis(4));
        assert_eq!(
            (r.state, r.claimed_at, r.flags),
            (DomainState::Claimed, Some(Timestamp::from_millis(4)), flags)
        );
        r.mark_unclaimed(Timestamp::from_millis(5));
        assert_eq!((r.state, r.claimed_at), (DomainState::Verified, None));
        r.reserve_domain = true;
        r.mark_unverified(Timestamp::from_millis(6));
        assert_eq!(
            (r.state, r.verified_at, r.updated_at),
            (DomainState::Pending, None, Timestamp::from_millis(6))
        );
        assert!(
            !r.reserve_domain,
            "a reservation lasts while the name is verified"
        );
        assert_eq!(
            r.token_expires_at,
            Timestamp::from_millis(9),
            "the token and its expiry are kept"
        );
        assert_eq!(r.created_at, Timestamp::from_millis(1));
    }

    #[test]
    fn lookup_outcomes_round_trip_their_stored_form() {
        for o in LookupOutcome::ALL {
            assert_eq!(LookupOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(LookupOutcome::parse("already_verified"), None);
    }
}
