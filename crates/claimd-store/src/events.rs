//! The append-only event log: one event for every change, written in the same transaction as
//! the change by the unit of work that makes it (the database refuses to update one, and to
//! delete one younger than the retention period). Read per domain (its history with the DNS
//! evidence) and per organization (the audit log).

use async_trait::async_trait;
use claimd_domain::{CredentialId, DomainName, OrgId, Timestamp, UserId, WebhookEvent, WebhookId};

use crate::error::StoreResult;

/// Who made a change, for the event log.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub credential_id: Option<CredentialId>,
    pub tracking_id: Option<String>,
    /// Held by the admin lock-out guard: an organization's own credentials (or another
    /// organization's, through a claim) are; the operator and claimd itself (re-check lapses)
    /// are not.
    pub guarded: bool,
}

/// What an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventTarget {
    Domain(DomainName),
    Credential(CredentialId),
    Organization(OrgId),
    Webhook(WebhookId),
    User(UserId),
}

impl EventTarget {
    /// The stored kind of target.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Domain(_) => "domain",
            Self::Credential(_) => "credential",
            Self::Organization(_) => "organization",
            Self::Webhook(_) => "webhook",
            Self::User(_) => "user",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::Domain(d) => d.as_str(),
            Self::Credential(c) => c.as_str(),
            Self::Organization(o) => o.as_str(),
            Self::Webhook(w) => w.as_str(),
            Self::User(u) => u.as_str(),
        }
    }

    pub fn domain(&self) -> Option<&DomainName> {
        match self {
            Self::Domain(d) => Some(d),
            _ => None,
        }
    }
}

/// One row of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub at: Timestamp,
    pub org_id: OrgId,
    pub target: EventTarget,
    pub kind: EventKind,
    pub credential_id: Option<CredentialId>,
    pub tracking_id: Option<String>,
    /// The DNS evidence of a lookup, or a description.
    pub detail: Option<String>,
    /// For a domain event: the domain's state after it (`pending`, `verified`, `claimed`, or
    /// `removed`).
    pub state: Option<String>,
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
    CredentialCreated,
    CredentialRevoked,
    OrganizationCreated,
    OrganizationUpdated,
    WebhookCreated,
    WebhookUpdated,
    WebhookDeleted,
    UserCreated,
    UserUpdated,
    UserDeleted,
    /// A claim by another organization of the user's domain made the user transient.
    UserTransient,
    /// The claim that made the user transient ended.
    UserRestored,
    /// An external user was converted into the organization that claimed its domain (in that
    /// organization's log).
    UserJoined,
    /// The user was converted into the organization that claimed its domain (in the log of
    /// the organization it left, which is not told who took it).
    UserLeft,
}

/// The audit categories events are read by, as `eventCategories` names them.
pub const EVENT_CATEGORIES: [&str; 7] = [
    "DOMAIN_VERIFICATION",
    "DOMAIN_CLAIMS",
    "DOMAIN_RECHECKS",
    "CREDENTIALS",
    "ORGANIZATIONS",
    "WEBHOOKS",
    "USERS",
];

impl EventKind {
    pub const ALL: [EventKind; 26] = [
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
        Self::CredentialCreated,
        Self::CredentialRevoked,
        Self::OrganizationCreated,
        Self::OrganizationUpdated,
        Self::WebhookCreated,
        Self::WebhookUpdated,
        Self::WebhookDeleted,
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserDeleted,
        Self::UserTransient,
        Self::UserRestored,
        Self::UserJoined,
        Self::UserLeft,
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
            Self::CredentialCreated => "credential_created",
            Self::CredentialRevoked => "credential_revoked",
            Self::OrganizationCreated => "organization_created",
            Self::OrganizationUpdated => "organization_updated",
            Self::WebhookCreated => "webhook_created",
            Self::WebhookUpdated => "webhook_updated",
            Self::WebhookDeleted => "webhook_deleted",
            Self::UserCreated => "user_created",
            Self::UserUpdated => "user_updated",
            Self::UserDeleted => "user_deleted",
            Self::UserTransient => "user_transient",
            Self::UserRestored => "user_restored",
            Self::UserJoined => "user_joined",
            Self::UserLeft => "user_left",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Its audit category, one of [`EVENT_CATEGORIES`].
    pub fn category(self) -> &'static str {
        match self {
            Self::TokenIssued
            | Self::TokenRenewed
            | Self::LookupFailed
            | Self::Verified
            | Self::Unverified
            | Self::Removed
            | Self::Imported => "DOMAIN_VERIFICATION",
            Self::Claimed | Self::Unclaimed => "DOMAIN_CLAIMS",
            Self::AtRisk | Self::Recovered | Self::Lapsed => "DOMAIN_RECHECKS",
            Self::CredentialCreated | Self::CredentialRevoked => "CREDENTIALS",
            Self::OrganizationCreated | Self::OrganizationUpdated => "ORGANIZATIONS",
            Self::WebhookCreated | Self::WebhookUpdated | Self::WebhookDeleted => "WEBHOOKS",
            Self::UserCreated
            | Self::UserUpdated
            | Self::UserDeleted
            | Self::UserTransient
            | Self::UserRestored
            | Self::UserJoined
            | Self::UserLeft => "USERS",
        }
    }

    /// Every kind in `category`.
    pub fn in_category(category: &str) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|k| k.category().eq_ignore_ascii_case(category))
            .collect()
    }

    /// A short description for a person.
    pub fn description(self) -> &'static str {
        match self {
            Self::TokenIssued => "Domain verification token issued",
            Self::TokenRenewed => "Expired domain verification token replaced",
            Self::LookupFailed => "Domain verification lookup did not find the token",
            Self::Verified => "Domain verified",
            Self::Claimed => "Domain claimed",
            Self::Unclaimed => "Domain claim released",
            Self::Unverified => "Domain verification dropped",
            Self::Removed => "Domain removed",
            Self::Imported => "Domain imported",
            Self::AtRisk => "Domain at risk: its verification record is gone",
            Self::Recovered => "Domain recovered: its verification record is back",
            Self::Lapsed => "Domain lapsed: its verification record stayed gone",
            Self::CredentialCreated => "API credential created",
            Self::CredentialRevoked => "API credential revoked",
            Self::OrganizationCreated => "Organization created",
            Self::OrganizationUpdated => "Organization updated",
            Self::WebhookCreated => "Webhook created",
            Self::WebhookUpdated => "Webhook updated",
            Self::WebhookDeleted => "Webhook deleted",
            Self::UserCreated => "User created",
            Self::UserUpdated => "User updated",
            Self::UserDeleted => "User deleted",
            Self::UserTransient => "User made transient: another organization claimed its domain",
            Self::UserRestored => "User active again: the claim of its domain ended",
            Self::UserJoined => "External user converted into this organization",
            Self::UserLeft => "User converted into the organization that claimed its domain",
        }
    }

    /// How webhooks on domains see it; `None` for events about other things.
    pub fn webhook_event(self) -> Option<WebhookEvent> {
        match self {
            Self::TokenIssued | Self::Imported => Some(WebhookEvent::Created),
            Self::Removed => Some(WebhookEvent::Deleted),
            // A failed lookup changes nothing; its evidence is in the audit log.
            Self::TokenRenewed
            | Self::Verified
            | Self::Claimed
            | Self::Unclaimed
            | Self::Unverified
            | Self::AtRisk
            | Self::Recovered
            | Self::Lapsed => Some(WebhookEvent::Updated),
            _ => None,
        }
    }
}

/// What the audit log is asked for: one organization's events, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    pub org: OrgId,
    /// Events at or after this time.
    pub from: Option<Timestamp>,
    /// Events before this time.
    pub to: Option<Timestamp>,
    /// Only what this credential did.
    pub actor: Option<CredentialId>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<EventKind>,
    pub offset: u64,
    pub limit: u32,
}

/// An event as the audit log shows it, with who made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub event: Event,
    /// The organization of the credential that made the change (none for an operator's).
    pub actor_org: Option<OrgId>,
    /// The label of that credential.
    pub actor_name: Option<String>,
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// One domain's history in this organization, oldest first.
    async fn list_events(&self, org: &OrgId, domain: &DomainName) -> StoreResult<Vec<Event>>;

    /// The audit log of one organization, in a stable order: events that become visible later
    /// always come after those already read, so offsets neither skip nor repeat.
    async fn list_audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;

    /// Deletes the events older than `before` that the retention of `keep` allows (the
    /// database refuses younger ones), and records `keep` as the retention; how many went.
    async fn prune_events(&self, keep: std::time::Duration, now: Timestamp) -> StoreResult<u64>;
}
