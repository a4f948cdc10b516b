//! Console sessions, kept in the database so that every `claimd serve` process on it knows
//! every session (a browser may reach any of them). The store keeps what the console gives it
//! as text; the key is the SHA-256 of the session's cookie, never the cookie itself.

use async_trait::async_trait;
use claimd_domain::Timestamp;

use crate::error::StoreResult;

/// One session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// Hex SHA-256 of the id in the browser's cookie.
    pub key: String,
    /// What the console keeps about the session (its own format).
    pub data: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// A message for the session's next page, shown once.
    pub flash: Option<String>,
}

/// When a session is live: seen after `idle_since` and started after `born_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindow {
    pub idle_since: Timestamp,
    pub born_after: Timestamp,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Keeps a new session, and forgets those no longer live in `window`.
    async fn create_session(
        &self,
        session: &StoredSession,
        window: SessionWindow,
    ) -> StoreResult<()>;

    /// The session `key` if it is live in `window`: marked as seen at `now`, answered with its
    /// flash, which it no longer holds. `None` for an unknown or expired session.
    async fn touch_session(
        &self,
        key: &str,
        now: Timestamp,
        window: SessionWindow,
    ) -> StoreResult<Option<StoredSession>>;

    /// Leaves `flash` for the session's next page (nothing, for an unknown session).
    async fn set_session_flash(&self, key: &str, flash: &str) -> StoreResult<()>;

    /// Ends the session (sign-out); ending an unknown one is no error.
    async fn end_session(&self, key: &str) -> StoreResult<()>;
}
