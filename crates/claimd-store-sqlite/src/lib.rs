//! The storage contract on an embedded SQLite file.
//!
//! - WAL journal, `synchronous = FULL`: a commit that returned is on disk.
//! - Writes go through one connection, owned by a writer task ([`writer`]) rather than taken
//!   from a pool (a pool pings a connection each time it comes back: one more round trip on the
//!   path every write shares). The task runs the units of work waiting for it in one
//!   `BEGIN IMMEDIATE` transaction, each in a savepoint, and commits them together: one fsync
//!   for the group, no answer before it. The write lock is taken before the first read of a
//!   unit and the rules are re-checked under it; other processes on the same file (the CLI)
//!   wait on the busy timeout instead of failing. That single writer is also what serializes
//!   claims on one registrable domain.
//! - Reads use a few read-only connections of their own, handed out through one fair queue,
//!   and never block writers (WAL). A read dropped half way leaves nothing behind: the
//!   connection's worker resets the statement when nobody takes its rows.
//! - A caller that goes away (client disconnected) does not cut its unit of work short: the
//!   writer task owns it, and it commits or rolls back as a whole.
//!
//! The units of work themselves are shared with the PostgreSQL store: this crate implements
//! [`Backend`], and with it every aggregate of the [`Store`](claimd_store::Store).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use claimd_store::sql::{Backend, BoxFuture, Dialect, Lock, Statement};
use claimd_store::{Connections, DriverFailure, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{Connection as _, Sqlite, SqliteConnection};

mod writer;
use writer::Writer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Options for opening the store.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    /// How long a write waits for another process holding the file's write lock.
    pub busy_timeout: Duration,
    /// Connections for reads.
    pub read_connections: u32,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
        }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
}

/// The read-only connections: idle ones on a stack, and one fair queue for all of them, so no
/// connection sits idle while a read waits.
struct Readers {
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    permits: tokio::sync::Semaphore,
    wait: Duration,
    total: u32,
}

/// A read connection, back on the stack when dropped.
pub struct ReadConnection<'a> {
    conn: Option<SqliteConnection>,
    readers: &'a Readers,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Readers {
    async fn get(&self) -> StoreResult<ReadConnection<'_>> {
        let permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| {
                DriverFailure::PoolTimeout.error("timed out waiting for a read connection".into())
            })?
            .map_err(|_| StoreError::Internal("the read connections are closed".into()))?;
        // A permit guarantees an idle connection: there are as many permits as connections.
        let conn = self.idle().pop();
        Ok(ReadConnection {
            conn,
            readers: self,
            _permit: permit,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        // Every change under this lock is one push or one pop: a panic cannot break the stack.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::ops::Deref for ReadConnection<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("a read connection")
    }
}

impl std::ops::DerefMut for ReadConnection<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("a read connection")
    }
}

impl Drop for ReadConnection<'_> {
    fn drop(&mut self) {
        // Back on the stack before the permit is released (fields drop after this).
        if let Some(conn) = self.conn.take() {
            self.readers.idle().push(conn);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` — `sqlite:path`, `sqlite://path` or a
    /// plain file path — and applies the embedded migrations.
    pub async fn open(url: &str, settings: &SqliteSettings) -> StoreResult<Self> {
        let url = if url.starts_with("sqlite:") {
            url.to_owned()
        } else {
            format!("sqlite:{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Internal(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| StoreError::Internal(format!("migrations failed: {e}")))?;
        let writer = Writer::spawn(conn, options.clone(), settings.busy_timeout * 2, db_error);
        let mut conns = Vec::new();
        for _ in 0..settings.read_connections.max(1) {
            let conn = SqliteConnection::connect_with(&options.clone().read_only(true))
                .await
                .map_err(db_error)?;
            conns.push(conn);
        }
        let readers = Arc::new(Readers {
            permits: tokio::sync::Semaphore::new(conns.len()),
            total: u32::try_from(conns.len()).unwrap_or(u32::MAX),
            idle: std::sync::Mutex::new(conns),
            wait: settings.busy_timeout * 2,
        });
        Ok(Self { writer, readers })
    }

    /// The names of the embedded migrations, in order (the PostgreSQL store must match them).
    pub fn migration_names() -> Vec<String> {
        MIGRATOR
            .iter()
            .map(|m| format!("{}_{}", m.version, m.description))
            .collect()
    }
}

impl Backend for SqliteStore {
    const DIALECT: Dialect = Dialect::Sqlite;

    type Conn = SqliteConnection;
    type Row = SqliteRow;
    type Reader<'a> = ReadConnection<'a>;

    async fn reader(&self) -> StoreResult<ReadConnection<'_>> {
        self.readers.get().await
    }

    /// The read connections, and the one write connection (never idle: it belongs to the
    /// writer task).
    fn connections(&self) -> Connections {
        let idle = u32::try_from(self.readers.idle().len()).unwrap_or(u32::MAX);
        Connections {
            open: self.readers.total + 1,
            idle,
        }
    }

    /// With one writer, every unit of work already runs alone: no lock is needed.
    async fn write<T, F>(&self, _lock: Lock, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        self.writer.write(work).await
    }

    async fn execute<'c>(
        conn: &'c mut SqliteConnection,
        statement: Statement<'c>,
    ) -> StoreResult<u64> {
        let done = claimd_store::sql::query::<Sqlite>(&statement)
            .execute(conn)
            .await;
        done.map(|r| r.rows_affected())
            .map_err(|e| statement.error(e, db_error))
    }

    async fn fetch_optional<'c>(
        conn: &'c mut SqliteConnection,
        statement: Statement<'c>,
    ) -> StoreResult<Option<SqliteRow>> {
        let row = claimd_store::sql::query::<Sqlite>(&statement)
            .fetch_optional(conn)
            .await;
        row.map_err(|e| statement.error(e, db_error))
    }

    async fn fetch_all<'c>(
        conn: &'c mut SqliteConnection,
        statement: Statement<'c>,
    ) -> StoreResult<Vec<SqliteRow>> {
        let rows = claimd_store::sql::query::<Sqlite>(&statement)
            .fetch_all(conn)
            .await;
        rows.map_err(|e| statement.error(e, db_error))
    }
}

fn db_error(e: sqlx::Error) -> StoreError {
    let failure = match &e {
        sqlx::Error::PoolTimedOut => DriverFailure::PoolTimeout,
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
            DriverFailure::Unavailable
        }
        // SQLITE_BUSY / SQLITE_LOCKED / SQLITE_BUSY_SNAPSHOT: another writer held on too long.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("5" | "6" | "517")) => {
            DriverFailure::Unavailable
        }
        _ => DriverFailure::Other,
    };
    failure.error(e.to_string())
}

#[cfg(test)]
mod tests {
    use claimd_domain::Timestamp;
    use claimd_store::prelude::*;

    use super::*;

    async fn open_temp() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claimd.db");
        let store = SqliteStore::open(path.to_str().unwrap(), &SqliteSettings::default())
            .await
            .unwrap();
        (store, dir)
    }

    claimd_store::conformance_suite!(crate::tests::open_temp);

    #[tokio::test]
    async fn reopening_keeps_data_and_reapplies_no_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claimd.db");
        let path = path.to_str().unwrap();
        let org = {
            let store = SqliteStore::open(path, &SqliteSettings::default())
                .await
                .unwrap();
            store
                .create_organization(&claimd_store::Actor::default(), "kept", Timestamp::now())
                .await
                .unwrap()
        };
        let store = SqliteStore::open(path, &SqliteSettings::default())
            .await
            .unwrap();
        assert_eq!(store.find_organization(&org.id).await.unwrap(), Some(org));
    }

    #[test]
    fn migrations_are_embedded() {
        assert_eq!(
            SqliteStore::migration_names(),
            vec![
                "20261126000001_initial".to_owned(),
                "20261127000001_credential changes".to_owned(),
                "20261202000001_rechecks".to_owned(),
                "20261202000002_audit webhooks".to_owned(),
                "20261202000003_outbox cursor".to_owned(),
                "20261202000004_queue vacuum".to_owned(),
                "20261202000005_fleet".to_owned(),
                "20261203000001_console sessions".to_owned(),
                "20261203000002_users".to_owned(),
                "20261203000003_reservations".to_owned(),
                "20261203000004_user roles".to_owned(),
                "20261203000005_user enterprise".to_owned(),
                "20261203000006_users outside".to_owned(),
                "20261204000001_no recheck lease index".to_owned(),
            ]
        );
    }

    #[tokio::test]
    async fn credentials_changed_by_hand_move_the_change_counter() {
        let (store, dir) = open_temp().await;
        let org = store
            .create_organization(&claimd_store::Actor::default(), "o", Timestamp::now())
            .await
            .unwrap();
        store
            .create_credential(
                &claimd_store::Actor::default(),
                &claimd_domain::NewCredential::org_admin(org.id.clone(), "t"),
                &claimd_domain::ApiSecret::generate().hash(),
                Timestamp::now(),
            )
            .await
            .unwrap();
        let url = format!("sqlite:{}", dir.path().join("claimd.db").display());
        let mut by_hand = <SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        for sql in [
            "UPDATE credentials SET scopes = ''",
            "DELETE FROM credentials",
        ] {
            let before = store.credential_changes().await.unwrap();
            sqlx::query(sql).execute(&mut by_hand).await.unwrap();
            assert!(store.credential_changes().await.unwrap() > before, "{sql}");
        }
    }

    /// The event log refuses changes made by hand: no update, no deletion of an event younger
    /// than the retention period (none while it is unset).
    #[tokio::test]
    async fn the_event_log_is_append_only_in_the_database() {
        let (store, dir) = open_temp().await;
        store
            .create_organization(&claimd_store::Actor::default(), "o", Timestamp::now())
            .await
            .unwrap();
        let url = format!("sqlite:{}", dir.path().join("claimd.db").display());
        let mut by_hand = <SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        for sql in [
            "UPDATE events SET detail = 'forged'",
            "DELETE FROM events",
            "UPDATE audit_retention SET keep_ms = 3600000",
            "DELETE FROM events",
        ] {
            let result = sqlx::query(sql).execute(&mut by_hand).await;
            if sql.starts_with("UPDATE audit_retention") {
                result.unwrap();
            } else {
                let e = result.expect_err(sql).to_string();
                assert!(
                    e.contains("append-only") || e.contains("retention"),
                    "{sql}: {e}"
                );
            }
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut by_hand)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}
