//! The umbrella over every aggregate: what the binary opens and hands around.

use async_trait::async_trait;
use claimd_domain::Timestamp;

use crate::credentials::CredentialStore;
use crate::domains::DomainStore;
use crate::error::StoreResult;
use crate::events::EventStore;
use crate::fleet::FleetStore;
use crate::organizations::OrganizationStore;
use crate::previews::PreviewStore;
use crate::rechecks::RecheckStore;
use crate::sessions::SessionStore;
use crate::users::UserStore;
use crate::webhooks::WebhookStore;

/// Everything claimd keeps. A new aggregate adds its own trait here.
#[async_trait]
pub trait Store:
    OrganizationStore
    + CredentialStore
    + DomainStore
    + EventStore
    + RecheckStore
    + WebhookStore
    + FleetStore
    + SessionStore
    + UserStore
    + PreviewStore
    + Send
    + Sync
    + 'static
{
    /// Cheap round trip to the database, for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// The connections this process holds to the database now.
    fn connections(&self) -> Connections;

    /// What the database holds, counted for monitoring: domains by state, re-checks due,
    /// webhook deliveries waiting. Reads every domain row: call it rarely (metrics cache it).
    async fn gauges(&self, now: Timestamp) -> StoreResult<Gauges>;
}

/// A process's connections to the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    pub open: u32,
    /// Open and not in use.
    pub idle: u32,
}

/// Counts over the whole database, for monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Domains by lifecycle state (`pending`, `verified`, `claimed`), every state present.
    pub domains: Vec<(&'static str, u64)>,
    /// Verified or claimed domains inside a re-check grace period.
    pub domains_at_risk: u64,
    /// Verified or claimed domains whose re-check is due.
    pub rechecks_due: u64,
    /// Webhook deliveries not yet delivered or given up.
    pub deliveries_pending: u64,
}
