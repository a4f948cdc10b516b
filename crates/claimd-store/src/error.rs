//! What a unit of work or read can fail with.

use claimd_domain::{LifecycleError, OrgId};

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
