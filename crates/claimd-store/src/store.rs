//! The umbrella over every aggregate: what the binary opens and hands around.

use async_trait::async_trait;

use crate::credentials::CredentialStore;
use crate::domains::DomainStore;
use crate::error::StoreResult;
use crate::events::EventStore;
use crate::organizations::OrganizationStore;
use crate::rechecks::RecheckStore;
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
    + Send
    + Sync
    + 'static
{
    /// Cheap round trip to the database, for readiness.
    async fn ping(&self) -> StoreResult<()>;
}
