//! What a unit of work or read can fail with.

use claimd_domain::{LifecycleError, OrgId};

use crate::previews::Impact;

#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A lifecycle rule refused the change; nothing was written.
    #[error(transparent)]
    Rule(#[from] LifecycleError),
    #[error("unknown organization '{0}'")]
    UnknownOrganization(OrgId),
    /// The database cannot be reached or is overloaded; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Another unit of work changed the record between this one's read and its write (units
    /// that run beside each other, see `Lock::Optimistic` and `Lock::SharedFamilies`); the
    /// store runs the unit again and answers this only if that keeps happening.
    #[error("the record changed meanwhile, more than once")]
    Raced,
    /// The change would break a uniqueness rule (the text says which value is taken).
    #[error("{0}")]
    Conflict(String),
    /// The resource has moved on from the version the change was made against.
    #[error("the resource has changed since the version given")]
    VersionMismatch,
    /// A preview's unit of work ends with its answer as this error, so that its transaction
    /// rolls back; the store turns it back into the answer, and no caller ever sees it.
    #[error("a preview ended its unit of work")]
    Previewed(Impact),
    /// Anything else: a bug or corrupted data. Logged, never shown to API users.
    #[error("storage failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the database driver failed with, by kind: counted for the whole process (metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverFailure {
    /// No connection came free in time (the pool is exhausted or the database slow).
    PoolTimeout,
    /// Any other failure worth retrying: the database unreachable, busy or shutting down.
    Unavailable,
    /// Anything else.
    Other,
}

impl DriverFailure {
    pub const ALL: [DriverFailure; 3] = [Self::PoolTimeout, Self::Unavailable, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PoolTimeout => "pool_timeout",
            Self::Unavailable => "unavailable",
            Self::Other => "other",
        }
    }

    /// How many of this kind the process has seen.
    pub fn count(self) -> u64 {
        DRIVER_FAILURES[self as usize].load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts the failure and makes it a [`StoreError`] (`Other` is [`StoreError::Internal`]).
    pub fn error(self, message: String) -> StoreError {
        DRIVER_FAILURES[self as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self {
            Self::PoolTimeout | Self::Unavailable => StoreError::Unavailable(message),
            Self::Other => StoreError::Internal(message),
        }
    }
}

static DRIVER_FAILURES: [std::sync::atomic::AtomicU64; 3] = [
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
];
