//! The fleet: the `claimd serve` processes sharing one database. Each one says it is alive
//! every few seconds; how many are alive is what each one divides the rate limits by, so that
//! together they allow what one process would.

use std::time::Duration;

use async_trait::async_trait;
use claimd_domain::Timestamp;

use crate::error::StoreResult;

#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Records that `member` is alive at `now`, forgets members silent for longer than `ttl`,
    /// and answers how many are alive (itself included, so at least 1).
    async fn heartbeat(&self, member: &str, now: Timestamp, ttl: Duration) -> StoreResult<u32>;

    /// `member` stops (a graceful shutdown): the others take its share at their next
    /// heartbeat instead of after `ttl`.
    async fn leave(&self, member: &str) -> StoreResult<()>;
}
