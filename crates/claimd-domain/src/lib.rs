//! claimd's domain model: the values that cross every layer and the lifecycle rules as pure
//! functions over state. Nothing here performs I/O; the storage implementations call the rules
//! inside their transactions so that both databases decide exactly alike.

mod credential;
mod lifecycle;
mod name;
mod organization;
mod policy;
mod recheck;
mod scim_filter;
mod time;
mod token;
mod user;
mod webhook;

pub use credential::{
    ApiSecret, Credential, CredentialId, KNOWN_ROLES, KNOWN_SCOPES, NewCredential, OrgId,
    ROLE_FULL_ADMIN, ROLE_READONLY_ADMIN, ROLE_USER_ADMIN, SCOPE_AUDIT_READ,
    SCOPE_IDENTITY_ORGANIZATION, SCOPE_ORGANIZATIONS_READ, SCOPE_ORGANIZATIONS_RW,
    SCOPE_PEOPLE_READ, SCOPE_PEOPLE_RW, SecretHash, UserId, WebhookId,
};
pub use lifecycle::{
    Acceptance, ClaimFlags, ClaimPlan, DomainRecord, DomainState, HeldElsewhere, LifecycleError,
    LookupOutcome, LookupSummary, PendingCap, TokenPlan, UnverifyPlan, VerifiedElsewhere,
    VerifyPlan, accept_verification, check_reservation, plan_claim, plan_token, plan_unclaim,
    plan_unverify, plan_verification,
};
pub use name::{DomainName, NameError};
pub use organization::{Organization, OrganizationPatch};
pub use policy::{CONSUMER_MAIL_DOMAINS, DeniedDomain, DomainPolicy};
pub use recheck::{
    LapseAction, NOT_CHECKABLE_AFTER, RecheckConfig, RecheckPolicy, RecheckSettings, RecheckState,
    RecheckStep, Verdict, jitter, plan_recheck,
};
pub use scim_filter::{
    Attribute as FilterAttribute, Filter, FilterError, Kind as FilterKind, Op as FilterOp,
    Value as FilterValue, parse_filter,
};
pub use time::Timestamp;
pub use token::{LEGACY_TXT_PREFIX, TXT_PREFIX, TxtMatch, VerificationToken, match_txt_value};
pub use user::{
    AccountStatus, Email, EmailError, Enterprise, User, UserFields, normalize_email, search_key,
};
pub use webhook::{
    Webhook, WebhookEvent, WebhookFilter, WebhookResource, WebhookSecret, WebhookStatus,
};
