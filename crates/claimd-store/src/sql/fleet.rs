//! The fleet's heartbeats on SQL: one row per live process.

use std::time::Duration;

use async_trait::async_trait;
use claimd_domain::Timestamp;

use super::backend::{Backend, Db, Lock, unit};
use super::statement::{Row, Statement};
use crate::error::StoreResult;
use crate::fleet::FleetStore;

async fn heartbeat<B: Backend>(
    db: &mut Db<'_, B>,
    member: &str,
    now: Timestamp,
    ttl: Duration,
) -> StoreResult<u32> {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let alive_since = Timestamp::from_millis(now.as_millis().saturating_sub(ttl_ms));
    db.execute(
        Statement::new(
            "INSERT INTO fleet_members (id, started_at, heartbeat_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(member)
        .bind(now)
        .bind(now),
    )
    .await?;
    db.execute(
        Statement::new("DELETE FROM fleet_members WHERE heartbeat_at < $1").bind(alive_since),
    )
    .await?;
    let row = db
        .fetch_optional(Statement::new(
            "SELECT COUNT(*) AS alive FROM fleet_members",
        ))
        .await?;
    let alive = match row {
        Some(row) => row.int("alive")?,
        None => 1,
    };
    Ok(u32::try_from(alive).unwrap_or(u32::MAX).max(1))
}

#[async_trait]
impl<B: Backend> FleetStore for B {
    async fn heartbeat(&self, member: &str, now: Timestamp, ttl: Duration) -> StoreResult<u32> {
        let member = member.to_owned();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move { heartbeat(&mut db, &member, now, ttl).await })
        })
        .await
    }

    async fn leave(&self, member: &str) -> StoreResult<()> {
        let member = member.to_owned();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                db.execute(
                    Statement::new("DELETE FROM fleet_members WHERE id = $1").bind(member.as_str()),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
