//! The storage contract on PostgreSQL, for several stateless API processes sharing one database.
//!
//! - Claim exclusivity is the partial unique index over claimed domains. The parent/child rule
//!   is made race-free by serializing every unit of work on one registrable domain with a
//!   transaction-scoped advisory lock (taken in sorted order, so batches cannot deadlock); the
//!   rules are then re-checked on freshly read rows under that lock.
//! - Migrations run at start under sqlx's advisory lock, so processes starting together apply
//!   them once.
//! - A database that cannot be reached makes requests fail fast (bounded acquire and statement
//!   timeouts) with [`StoreError::Unavailable`]; the pool reconnects by itself.
//! - Every unit of work runs in its own spawned task, so a dropped request future cannot leave a
//!   transaction open.
//!
//! The units of work themselves are shared with the SQLite store
//! ([`claimd_store::impl_sql_store!`]).

use std::str::FromStr;
use std::time::Duration;

use claimd_store::sql::{BoxFuture, run_unit_of_work};
use claimd_store::{StoreError, StoreResult};
use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

#[cfg(any(test, feature = "testing"))]
pub mod testing;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Advisory-lock namespaces (first key of the two-key form): "cl" + a tag.
const LOCK_FAMILY: i32 = 0x636c_0001;
const LOCK_BOOTSTRAP: i32 = 0x636c_0002;

#[derive(Clone, Debug)]
pub struct PgSettings {
    /// Connections per process.
    pub max_connections: u32,
    /// How long a request waits for a connection before failing with 503.
    pub acquire_timeout: Duration,
    /// Server-side limit on one statement.
    pub statement_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and applies the embedded migrations.
    pub async fn open(url: &str, settings: &PgSettings) -> StoreResult<Self> {
        let timeout_ms = settings.statement_timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("claimd")
            .options([
                ("statement_timeout", timeout_ms.as_str()),
                ("lock_timeout", timeout_ms.as_str()),
                // A safety net: no session may sit inside a transaction doing nothing.
                ("idle_in_transaction_session_timeout", "60000"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(true)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migrations failed: {e}")))?;
        Ok(Self { pool })
    }

    /// The names of the embedded migrations, in order (they must match SQLite's).
    pub fn migration_names() -> Vec<String> {
        MIGRATOR
            .iter()
            .map(|m| format!("{}_{}", m.version, m.description))
            .collect()
    }

    async fn reader(&self) -> StoreResult<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.pool.acquire().await.map_err(db_error)
    }

    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        run_unit_of_work(self.pool.clone(), "BEGIN", db_error, work).await
    }
}

/// Serializes units of work on the same registrable domains until the transaction ends.
async fn lock_families(conn: &mut PgConnection, families: &[String]) -> StoreResult<()> {
    for family in families {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_FAMILY)
            .bind(family)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

async fn lock_bootstrap(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK_BOOTSTRAP)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

fn db_error(e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions (08…), operator intervention such as a shutdown (57P…), too many
        // connections, statement or lock timeouts, serialization failures and deadlocks: all
        // worth retrying later.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("57P")
                || matches!(&*c, "53300" | "57014" | "55P03" | "40001" | "40P01")
        }),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

claimd_store::impl_sql_store!(PgStore, PgConnection);

#[cfg(test)]
mod tests {
    use claimd_store::Store as _;

    use super::*;
    use crate::testing::TestDatabase;

    async fn open_fresh() -> (PgStore, TestDatabase) {
        let db = TestDatabase::create().await;
        let store = PgStore::open(&db.url(), &PgSettings::default())
            .await
            .unwrap();
        (store, db)
    }

    claimd_store::conformance_suite!(crate::tests::open_fresh);

    /// Two processes starting at once on an empty database apply the migrations once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_starts_migrate_once() {
        let db = TestDatabase::create().await;
        let url = db.url();
        let settings = PgSettings::default();
        let (a, b) = tokio::join!(
            PgStore::open(&url, &settings),
            PgStore::open(&url, &settings)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let org = a
            .create_organization("x", claimd_domain::Timestamp::now())
            .await
            .unwrap();
        assert_eq!(b.find_organization(&org.id).await.unwrap(), Some(org));
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&a.pool)
            .await
            .unwrap();
        assert_eq!(applied as usize, PgStore::migration_names().len());
    }

    #[test]
    fn migrations_match_sqlite() {
        assert_eq!(
            PgStore::migration_names(),
            claimd_store_sqlite::SqliteStore::migration_names()
        );
        assert!(!PgStore::migration_names().is_empty());
    }
}
