//! Console sessions on SQL: one row per session, keyed by the hash of its cookie.

use async_trait::async_trait;
use claimd_domain::Timestamp;

use super::backend::{Backend, Lock, unit};
use super::statement::{Row, Statement};
use crate::error::StoreResult;
use crate::sessions::{SessionStore, SessionWindow, StoredSession};

const COLUMNS: &str = "key, data, created_at, last_seen_at, flash";

fn session(row: &impl Row) -> StoreResult<StoredSession> {
    Ok(StoredSession {
        key: row.text("key")?,
        data: row.text("data")?,
        created_at: row.timestamp("created_at")?,
        last_seen_at: row.timestamp("last_seen_at")?,
        flash: row.text_or_null("flash")?,
    })
}

#[async_trait]
impl<B: Backend> SessionStore for B {
    async fn create_session(
        &self,
        session: &StoredSession,
        window: SessionWindow,
    ) -> StoreResult<()> {
        let s = session.clone();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                db.execute(
                    Statement::new(
                        "DELETE FROM console_sessions WHERE last_seen_at <= $1 OR created_at <= $2",
                    )
                    .bind(window.idle_since)
                    .bind(window.born_after),
                )
                .await?;
                db.execute(
                    Statement::new(format!(
                        "INSERT INTO console_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
                    ))
                    .bind(s.key.as_str())
                    .bind(s.data.as_str())
                    .bind(s.created_at)
                    .bind(s.last_seen_at)
                    .bind(s.flash.as_deref()),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn touch_session(
        &self,
        key: &str,
        now: Timestamp,
        window: SessionWindow,
    ) -> StoreResult<Option<StoredSession>> {
        let key = key.to_owned();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                let row = db
                    .fetch_optional(
                        Statement::new(format!(
                            "SELECT {COLUMNS} FROM console_sessions \
                             WHERE key = $1 AND last_seen_at > $2 AND created_at > $3"
                        ))
                        .bind(key.as_str())
                        .bind(window.idle_since)
                        .bind(window.born_after),
                    )
                    .await?;
                let Some(found) = row.as_ref().map(session).transpose()? else {
                    return Ok(None);
                };
                db.execute(
                    Statement::new(
                        "UPDATE console_sessions SET last_seen_at = $2, flash = NULL WHERE key = $1",
                    )
                    .bind(key.as_str())
                    .bind(now),
                )
                .await?;
                Ok(Some(StoredSession {
                    last_seen_at: now,
                    ..found
                }))
            })
        })
        .await
    }

    async fn set_session_flash(&self, key: &str, flash: &str) -> StoreResult<()> {
        let (key, flash) = (key.to_owned(), flash.to_owned());
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                db.execute(
                    Statement::new("UPDATE console_sessions SET flash = $2 WHERE key = $1")
                        .bind(key.as_str())
                        .bind(flash.as_str()),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn end_session(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        unit(self, Lock::None, move |mut db| {
            Box::pin(async move {
                db.execute(
                    Statement::new("DELETE FROM console_sessions WHERE key = $1")
                        .bind(key.as_str()),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
