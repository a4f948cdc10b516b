//! The storage contract, one trait per aggregate — [`OrganizationStore`], [`CredentialStore`],
//! [`DomainStore`], [`EventStore`] — under the umbrella [`Store`] that the binary hands around.
//!
//! Every method that changes something is one whole unit of work: it opens, re-checks the
//! lifecycle rules inside, and commits its own transaction; no transaction crosses this
//! boundary. Implementations must also finish a unit of work that has started even when the
//! caller's future is dropped (a client that disconnects must not leave a half-done change).

use async_trait::async_trait;
use claimd_domain::{CredentialId, LifecycleError, OrgId};

mod credentials;
mod domains;
mod events;
mod organizations;

#[cfg(feature = "testsuite")]
pub mod conformance;
#[cfg(feature = "sql")]
pub mod sql;

pub use credentials::CredentialStore;
pub use domains::{DomainStore, DomainSummary, Proof, TokenRequest, Verification};
pub use events::{Event, EventKind, EventStore};
pub use organizations::OrganizationStore;

/// Every trait of the contract, for `use claimd_store::prelude::*` where a concrete store's
/// methods are called.
pub mod prelude {
    pub use crate::{
        CredentialStore as _, DomainStore as _, EventStore as _, OrganizationStore as _, Store as _,
    };
}

/// Everything claimd keeps. A new aggregate adds its own trait here.
#[async_trait]
pub trait Store:
    OrganizationStore + CredentialStore + DomainStore + EventStore + Send + Sync + 'static
{
    /// Cheap round trip to the database, for readiness.
    async fn ping(&self) -> StoreResult<()>;
}

/// Who made a change, for the event log.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub credential_id: Option<CredentialId>,
    pub tracking_id: Option<String>,
}

#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A lifecycle rule refused the change; nothing was written.
    #[error(transparent)]
    Rule(#[from] LifecycleError),
    #[error("unknown organization {0}")]
    UnknownOrganization(OrgId),
    /// The database cannot be reached or is overloaded; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupted data. Logged, never shown to API users.
    #[error("storage failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
