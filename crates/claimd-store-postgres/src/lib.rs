//! The storage contract on PostgreSQL, for several stateless API processes sharing one database.
//!
//! - Claim exclusivity is the partial unique index over claimed domains. The parent/child rule
//!   is made race-free by serializing every unit of work on one registrable domain with a
//!   transaction-scoped advisory lock (taken in sorted order, so batches cannot deadlock); the
//!   rules are then re-checked on freshly read rows under that lock. Token requests, which
//!   never create or remove a claim, take it shared (renewals) or not at all (a new record:
//!   one statement that checks no other organization claims the name, gathered with others).
//! - Migrations run at start under sqlx's advisory lock, so processes starting together apply
//!   them once.
//! - A database that cannot be reached makes requests fail fast (bounded acquire and statement
//!   timeouts) with [`StoreError::Unavailable`]; the pool reconnects by itself. The pool is the
//!   store's own ([`pool`]): unlike sqlx's, it makes no round trip when a connection comes back.
//! - Every unit of work runs in its own spawned task, so a dropped request future cannot leave a
//!   transaction open.
//!
//! The units of work themselves are shared with the SQLite store: this crate implements
//! [`Backend`], and with it every aggregate of the [`Store`](claimd_store::Store).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use claimd_store::sql::{
    Backend, BoxFuture, Db, Dialect, Lock, MAX_NEW_RECORDS, NewRecord, Statement,
    insert_new_records,
};
use claimd_store::{Connections, DriverFailure, StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{PgConnection, Postgres};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::pool::Pool;
pub use crate::pool::PooledConnection;

mod pool;
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
    pool: Pool,
    new_records: NewRecordQueue,
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
                // Every statement of claimd is small work on a few rows; a statement of many
                // new records is estimated costly enough for JIT compilation, which takes longer
                // (tens of milliseconds) than running it does.
                ("jit", "off"),
            ]);
        let server = format!(
            "PostgreSQL at {}:{} (database {}, user {})",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("named after the user"),
            options.get_username(),
        );
        let pool = Pool::connect(
            options,
            settings.max_connections.max(1),
            settings.acquire_timeout,
        )
        .await
        .map_err(|e| match db_error(e) {
            StoreError::Unavailable(cause) => {
                StoreError::Unavailable(format!("cannot connect to {server}: {cause}"))
            }
            StoreError::Internal(cause) => {
                StoreError::Internal(format!("cannot connect to {server}: {cause}"))
            }
            other => other,
        })?;
        let mut conn = pool.acquire().await.map_err(db_error)?;
        MIGRATOR
            .run(&mut *conn)
            .await
            .map_err(|e| StoreError::Internal(format!("migrations failed: {e}")))?;
        let autovacuum: Option<String> = sqlx::query_scalar("SHOW autovacuum")
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
        drop(conn);
        if autovacuum.as_deref() == Some("off") {
            tracing::warn!(
                "autovacuum is off on this PostgreSQL server: the webhook delivery and re-check \
                 queues slow down as their dead rows pile up; turn it on, or VACUUM the \
                 deliveries and domains tables regularly"
            );
        }
        let new_records = NewRecordQueue::start(pool.clone());
        Ok(Self { pool, new_records })
    }

    /// The names of the embedded migrations, in order (they must match SQLite's).
    pub fn migration_names() -> Vec<String> {
        MIGRATOR
            .iter()
            .map(|m| format!("{}_{}", m.version, m.description))
            .collect()
    }

    /// Runs `work` as one transaction, opened with `begin` (or, without one, each statement
    /// committing on its own), in a task of its own: if the caller's future is dropped (a client
    /// disconnected), the transaction still commits or rolls back as a whole and its connection
    /// never goes back to the pool mid-transaction.
    async fn run_unit_of_work<T, F>(
        &self,
        begin: Option<Cow<'static, str>>,
        work: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.map_err(db_error)?;
            let Some(begin) = begin else {
                return work(&mut conn).await;
            };
            let mut began = false;
            let outcome = async {
                let mut tx = sqlx::Connection::begin_with(&mut *conn, begin)
                    .await
                    .map_err(db_error)?;
                began = true;
                let value = work(&mut tx).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(value)
            }
            .await;
            if !began {
                // A `BEGIN` that failed in a later statement (a lock timeout) leaves the
                // transaction open and aborted: the connection must not be used again.
                conn.close_on_drop();
            }
            outcome
        })
        .await
        .map_err(|e| StoreError::Internal(format!("unit of work aborted: {e}")))?
    }
}

impl Backend for PgStore {
    const DIALECT: Dialect = Dialect::Postgres;

    type Conn = PgConnection;
    type Row = PgRow;
    type Reader<'a> = PooledConnection;

    async fn reader(&self) -> StoreResult<Self::Reader<'_>> {
        self.pool.acquire().await.map_err(db_error)
    }

    fn connections(&self) -> Connections {
        let (open, idle) = self.pool.size();
        Connections { open, idle }
    }

    /// Serializes the unit of work with every other on the same registrable domains (or with
    /// every other bootstrap) by transaction-scoped advisory locks, taken in the same round trip
    /// as `BEGIN` (a simple query of several statements: each statement after the locks reads a
    /// snapshot taken once they are held).
    async fn write<T, F>(&self, lock: Lock, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let mut begin = String::from("BEGIN");
        let mut take = |kind: &str, namespace: i32, key: i32| {
            let _ = write!(
                begin,
                "; SELECT pg_advisory_xact_lock{kind}({namespace}, {key})"
            );
        };
        match &lock {
            Lock::Optimistic => return self.run_unit_of_work(None, work).await,
            Lock::None => {}
            Lock::Families(families) => {
                for family in families {
                    take("", LOCK_FAMILY, family_key(family));
                }
            }
            Lock::SharedFamilies(families) => {
                for family in families {
                    take("_shared", LOCK_FAMILY, family_key(family));
                }
            }
            Lock::Bootstrap => take("", LOCK_BOOTSTRAP, 0),
        }
        self.run_unit_of_work(Some(begin.into()), work).await
    }

    async fn insert_new(&self, new: NewRecord) -> StoreResult<bool> {
        self.new_records.insert(new).await
    }

    async fn execute<'c>(conn: &'c mut PgConnection, statement: Statement<'c>) -> StoreResult<u64> {
        let done = claimd_store::sql::query::<Postgres>(&statement)
            .execute(conn)
            .await;
        done.map(|r| r.rows_affected())
            .map_err(|e| statement.error(e, db_error))
    }

    async fn fetch_optional<'c>(
        conn: &'c mut PgConnection,
        statement: Statement<'c>,
    ) -> StoreResult<Option<PgRow>> {
        let row = claimd_store::sql::query::<Postgres>(&statement)
            .fetch_optional(conn)
            .await;
        row.map_err(|e| statement.error(e, db_error))
    }

    async fn fetch_all<'c>(
        conn: &'c mut PgConnection,
        statement: Statement<'c>,
    ) -> StoreResult<Vec<PgRow>> {
        let rows = claimd_store::sql::query::<Postgres>(&statement)
            .fetch_all(conn)
            .await;
        rows.map_err(|e| statement.error(e, db_error))
    }
}

/// Token requests' new records, gathered: what arrives while statements run goes into the
/// next ones ([`insert_new_records`], up to [`MAX_NEW_RECORDS`] in one statement), so that
/// under load a new record costs a share of one round trip, one plan and one commit instead
/// of all of them, as a group commit does. At most [`NEW_RECORD_WRITERS`] statements run at a
/// time. A request that finds one of those free runs its statement itself: alone, it waits
/// for no one and is handed to no other task.
#[derive(Clone)]
struct NewRecordQueue {
    pool: Pool,
    /// One permit per statement of new records in flight, whoever runs it.
    slots: Arc<Semaphore>,
    sender: mpsc::UnboundedSender<(NewRecord, oneshot::Sender<StoreResult<bool>>)>,
}

/// Statements of new records in flight at once.
const NEW_RECORD_WRITERS: usize = 2;

type NewRecordReceiver = mpsc::UnboundedReceiver<(NewRecord, oneshot::Sender<StoreResult<bool>>)>;

impl NewRecordQueue {
    /// Starts the writers; they stop once every clone of the queue is dropped.
    fn start(pool: Pool) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let slots = Arc::new(Semaphore::new(NEW_RECORD_WRITERS));
        for _ in 0..NEW_RECORD_WRITERS {
            tokio::spawn(write_new_records(
                pool.clone(),
                slots.clone(),
                receiver.clone(),
            ));
        }
        Self {
            pool,
            slots,
            sender,
        }
    }

    /// Writes `new` at once if a statement slot is free; otherwise queues it and waits for the
    /// statement a writer runs. Either way the record is one autocommitted statement: a
    /// request dropped while it runs cannot leave half of it (the connection finishes the
    /// exchange before anyone else uses it, as after a dropped read).
    async fn insert(&self, new: NewRecord) -> StoreResult<bool> {
        if let Ok(_slot) = self.slots.try_acquire() {
            return insert_one(&self.pool, &new).await;
        }
        let stopped = || StoreError::Internal("the writer of new records stopped".into());
        let (reply, answer) = oneshot::channel();
        self.sender.send((new, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// One writer: takes what has arrived (waiting for the first, then for a free statement slot,
/// while more arrive), writes it in one statement, answers each request.
async fn write_new_records(
    pool: Pool,
    slots: Arc<Semaphore>,
    receiver: Arc<tokio::sync::Mutex<NewRecordReceiver>>,
) {
    loop {
        let mut gathered = Vec::new();
        let slot = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            gathered.push(first);
            let Ok(slot) = slots.acquire().await else {
                return;
            };
            // One of a few sizes (what is left goes into the next statement): every connection
            // then prepares and plans at most twelve statements of new records, not 64.
            let take = statement_size(1 + receiver.len());
            while gathered.len() < take {
                match receiver.try_recv() {
                    Ok(next) => gathered.push(next),
                    Err(_) => break,
                }
            }
            slot
        };
        let (new, replies): (Vec<_>, Vec<_>) = gathered.into_iter().unzip();
        match insert_new(&pool, &new).await {
            Ok(written) => {
                for (reply, written) in replies.into_iter().zip(written) {
                    let _ = reply.send(Ok(written));
                }
            }
            // An organization that does not exist fails the whole statement: each alone, so
            // that only its own request fails.
            Err(StoreError::UnknownOrganization(_)) if new.len() > 1 => {
                for (one, reply) in new.iter().zip(replies) {
                    let _ = reply.send(insert_one(&pool, one).await);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        drop(slot);
    }
}

/// The sizes a statement of new records comes in: powers of two and the halves between them.
const STATEMENT_SIZES: [usize; 12] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, MAX_NEW_RECORDS];

/// How many of `waiting` new records go into one statement: the largest of
/// [`STATEMENT_SIZES`] not over them.
fn statement_size(waiting: usize) -> usize {
    STATEMENT_SIZES
        .into_iter()
        .take_while(|&size| size <= waiting)
        .last()
        .unwrap_or(1)
}

async fn insert_new(pool: &Pool, new: &[NewRecord]) -> StoreResult<Vec<bool>> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    insert_new_records(&mut Db::<PgStore>::new(&mut conn), new).await
}

/// One new record in a statement of its own: whether it was written.
async fn insert_one(pool: &Pool, new: &NewRecord) -> StoreResult<bool> {
    let written = insert_new(pool, std::slice::from_ref(new)).await?;
    Ok(written.first().copied().unwrap_or(false))
}

/// The second key of a registrable domain's advisory lock: a hash of its name (FNV-1a). Two
/// names with the same key only wait on each other needlessly.
fn family_key(family: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in family.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

fn db_error(e: sqlx::Error) -> StoreError {
    if matches!(e, sqlx::Error::PoolTimedOut) {
        return DriverFailure::PoolTimeout.error(e.to_string());
    }
    let code = match &e {
        sqlx::Error::Database(d) => d.code(),
        _ => None,
    };
    // The connection is gone or going: connection exceptions (08…), operator intervention such
    // as a shutdown (57P…), and the driver's own failures to talk to the server.
    let connection_lost = match &e {
        sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        _ => code
            .as_deref()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
    };
    if connection_lost {
        pool::suspect_connections();
    }
    // Too many connections, statement or lock timeouts, serialization failures and deadlocks:
    // like a lost connection, worth retrying later.
    let unavailable = connection_lost
        || code
            .as_deref()
            .is_some_and(|c| matches!(c, "53300" | "57014" | "55P03" | "40001" | "40P01"));
    if unavailable {
        DriverFailure::Unavailable.error(e.to_string())
    } else {
        DriverFailure::Other.error(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use claimd_store::prelude::*;

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
            .create_organization(
                &claimd_store::Actor::default(),
                "x",
                claimd_domain::Timestamp::now(),
            )
            .await
            .unwrap();
        assert_eq!(b.find_organization(&org.id).await.unwrap(), Some(org));
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&mut *a.pool.acquire().await.unwrap())
            .await
            .unwrap();
        assert_eq!(applied as usize, PgStore::migration_names().len());
    }

    /// A unit of work that times out waiting for its registrable domain's lock fails as
    /// unavailable, and the connection it ran on (its transaction begun and aborted in the same
    /// round trip) is not handed to the next unit of work.
    #[tokio::test]
    async fn a_lock_timeout_fails_the_unit_and_spoils_no_connection() {
        let db = TestDatabase::create().await;
        let settings = PgSettings {
            max_connections: 1,
            statement_timeout: Duration::from_millis(200),
            ..PgSettings::default()
        };
        let store = PgStore::open(&db.url(), &settings).await.unwrap();
        let now = claimd_domain::Timestamp::now();
        let org = store
            .create_organization(&claimd_store::Actor::default(), "x", now)
            .await
            .unwrap()
            .id;
        let domain = claimd_domain::DomainName::parse("www.locked.example").unwrap();
        let actor = claimd_store::Actor {
            credential_id: None,
            tracking_id: None,
            guarded: false,
        };
        // A token request for a new name takes no lock.
        let pending = store
            .issue_token(
                &actor,
                &org,
                &domain,
                claimd_store::TokenRequest {
                    fresh: claimd_domain::VerificationToken::generate(),
                    ttl: Duration::from_secs(60),
                    max_pending: 0,
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(pending.domain, domain);
        let withdraw = || store.unverify_domain(&actor, &org, &domain, true, now);

        // Another session holds the lock of locked.example.
        let mut other = <PgConnection as sqlx::Connection>::connect(&db.url())
            .await
            .unwrap();
        sqlx::query("SELECT pg_advisory_lock($1, $2)")
            .bind(LOCK_FAMILY)
            .bind(family_key("locked.example"))
            .execute(&mut other)
            .await
            .unwrap();
        match withdraw().await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("expected a lock timeout, got {other:?}"),
        }
        assert!(store.find_domain(&org, &domain).await.unwrap().is_some());

        sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut other)
            .await
            .unwrap();
        withdraw().await.unwrap();
        assert_eq!(store.find_domain(&org, &domain).await.unwrap(), None);
    }

    /// A store of at most `max_connections` connections, with one organization.
    async fn small_store(
        max_connections: u32,
    ) -> (PgStore, TestDatabase, claimd_domain::Organization) {
        let db = TestDatabase::create().await;
        let settings = PgSettings {
            max_connections,
            ..PgSettings::default()
        };
        let store = PgStore::open(&db.url(), &settings).await.unwrap();
        let org = store
            .create_organization(
                &claimd_store::Actor::default(),
                "x",
                claimd_domain::Timestamp::now(),
            )
            .await
            .unwrap();
        (store, db, org)
    }

    /// A session of the test's own, beside the store's.
    async fn connect(db: &TestDatabase) -> PgConnection {
        <PgConnection as sqlx::Connection>::connect(&db.url())
            .await
            .unwrap()
    }

    /// The store's sessions sitting inside a transaction doing nothing.
    async fn idle_in_transaction(admin: &mut PgConnection) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'claimd' AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(admin)
        .await
        .unwrap()
    }

    /// A pooled connection cut by the server while it sat idle (a restart, an administrator) is
    /// found out and replaced before a request uses it.
    #[tokio::test]
    async fn a_connection_cut_while_idle_is_replaced_before_use() {
        let (store, db, org) = small_store(1).await;
        let mut admin = connect(&db).await;
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'claimd') t",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(cut, 1, "the store's one connection");
        tokio::time::sleep(pool::IDLE_BEFORE_PING + Duration::from_millis(200)).await;
        assert_eq!(store.find_organization(&org.id).await.unwrap(), Some(org));
    }

    /// A connection cut while the pool keeps it busy (no idle second passes) fails the one
    /// request that was using it, and the next request gets a working connection: the failure
    /// marks every connection checked before it for a ping.
    #[tokio::test]
    async fn a_connection_cut_under_load_fails_one_request_at_most() {
        let (store, db, org) = small_store(1).await;
        let mut admin = connect(&db).await;
        // Waits until the backend is gone.
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'claimd') t",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(cut, 1, "the store's one connection");
        match store.find_organization(&org.id).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("the request on the cut connection: {other:?}"),
        }
        assert_eq!(store.find_organization(&org.id).await.unwrap(), Some(org));
        assert_eq!(Backend::connections(&store).open, 1);
    }

    /// Many requests at once share the pool's connections and never open more than its
    /// maximum.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_opens_at_most_its_maximum() {
        let (store, db, org) = small_store(3).await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..24 {
            let (store, id) = (store.clone(), org.id.clone());
            tasks.spawn(async move {
                for _ in 0..20 {
                    assert!(store.find_organization(&id).await.unwrap().is_some());
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let mut admin = connect(&db).await;
        let on_server: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'claimd'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        let held = Backend::connections(&store);
        assert!((1..=3).contains(&on_server), "{on_server} connections");
        assert_eq!(i64::from(held.open), on_server);
        assert_eq!(held.idle, held.open, "all back on the stack");
    }

    /// Token requests dropped at any point of their statement (a client gone, a request
    /// timeout) leave whole records or none: every record has its event and every event its
    /// record, no connection is left inside a transaction, and the names cut off are issued
    /// normally afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_requests_cut_off_mid_statement_leave_whole_records() {
        use claimd_store::{DomainStore, TokenRequest};
        let (store, db, org) = small_store(2).await;
        let names: Vec<claimd_domain::DomainName> = (0..200)
            .map(|i| claimd_domain::DomainName::parse(&format!("cut{i}.example.com")).unwrap())
            .collect();
        let request = || TokenRequest {
            fresh: claimd_domain::VerificationToken::generate(),
            ttl: Duration::from_secs(3600),
            max_pending: 0,
        };
        let actor = claimd_store::Actor::default();
        let now = claimd_domain::Timestamp::now();
        // One at a time (each runs its own statement), then all at once (queued for the
        // writers), each aborted after a delay that runs from before its statement is sent to
        // after its answer is back.
        let delay = |i: usize| Duration::from_micros((i as u64 * 31) % 3000);
        let issue = |name: &claimd_domain::DomainName| {
            let (store, org, name, actor, request) = (
                store.clone(),
                org.id.clone(),
                name.clone(),
                actor.clone(),
                request(),
            );
            tokio::spawn(async move { store.issue_token(&actor, &org, &name, request, now).await })
        };
        let cut = |task: tokio::task::JoinHandle<
            claimd_store::StoreResult<claimd_domain::DomainRecord>,
        >,
                   after: Duration| async move {
            tokio::task::spawn_blocking(move || std::thread::sleep(after))
                .await
                .unwrap();
            task.abort();
            match task.await {
                Ok(issued) => {
                    issued.unwrap();
                    1
                }
                Err(e) if e.is_cancelled() => 0,
                Err(e) => panic!("{e}"),
            }
        };
        let (alone, together) = names.split_at(names.len() / 2);
        let mut finished = 0;
        for (i, name) in alone.iter().enumerate() {
            finished += cut(issue(name), delay(i)).await;
        }
        let tasks: Vec<_> = together.iter().map(issue).collect();
        for (i, task) in tasks.into_iter().enumerate() {
            finished += cut(task, delay(i) / 8).await;
        }
        assert!(finished < names.len(), "no request was cut off");
        let mut admin = connect(&db).await;
        // The statements of the requests cut off may still be finishing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (records, issued, unmatched): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM domains), \
                    (SELECT count(*) FROM events WHERE kind = 'token_issued'), \
                    (SELECT count(*) FROM domains d WHERE NOT EXISTS (SELECT 1 FROM events e \
                       WHERE e.domain = d.domain AND e.kind = 'token_issued'))",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(
            (issued, unmatched),
            (records, 0),
            "records and their events"
        );
        assert!(records >= finished as i64);
        assert_eq!(idle_in_transaction(&mut admin).await, 0);
        for name in &names {
            let record = store
                .issue_token(&actor, &org.id, name, request(), now)
                .await
                .unwrap();
            assert_eq!(&record.domain, name);
        }
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM domains")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert_eq!(total, names.len() as i64);
    }

    /// A unit of work that fails gives its connection back with its transaction rolled back
    /// at once: its locks are not kept until the connection's next use.
    #[tokio::test]
    async fn a_failed_unit_of_work_releases_its_locks_at_once() {
        let (store, db) = open_fresh().await;
        let failed = store
            .write(
                Lock::Families(vec!["held.example".into()]),
                |_conn: &mut PgConnection| {
                    Box::pin(async { Err::<(), _>(StoreError::Internal("refused".into())) })
                },
            )
            .await;
        assert!(matches!(failed, Err(StoreError::Internal(_))), "{failed:?}");
        let mut other = connect(&db).await;
        // The rollback is sent by a task of the pool's, right after the unit ends.
        let mut free = false;
        for _ in 0..100 {
            free = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                .bind(LOCK_FAMILY)
                .bind(family_key("held.example"))
                .fetch_one(&mut other)
                .await
                .unwrap();
            if free {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(free, "the failed unit's lock is still held");
        // Nothing in the store is idle in a transaction.
        assert_eq!(idle_in_transaction(&mut other).await, 0);
    }

    /// The event log refuses changes made by hand: no update, no truncation, no deletion of an
    /// event younger than the retention period (none while it is unset).
    #[tokio::test]
    async fn the_event_log_is_append_only_in_the_database() {
        let (store, db) = open_fresh().await;
        store
            .create_organization(
                &claimd_store::Actor::default(),
                "o",
                claimd_domain::Timestamp::now(),
            )
            .await
            .unwrap();
        let mut by_hand = <PgConnection as sqlx::Connection>::connect(&db.url())
            .await
            .unwrap();
        for sql in [
            "UPDATE events SET detail = 'forged'",
            "DELETE FROM events",
            "TRUNCATE events",
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

    /// An event whose transaction commits after a later one's is still turned into its
    /// delivery: the outbox cursor does not pass a transaction still running.
    #[tokio::test]
    async fn the_outbox_cursor_waits_for_transactions_still_running() {
        use claimd_domain::{
            DomainName, Timestamp, Webhook, WebhookEvent, WebhookFilter, WebhookId,
            WebhookResource, WebhookSecret, WebhookStatus,
        };
        let (store, db) = open_fresh().await;
        let actor = claimd_store::Actor::default();
        let t0 = Timestamp::from_millis(1_700_000_000_000);
        let org = store.create_organization(&actor, "o", t0).await.unwrap();
        let webhook = Webhook {
            id: WebhookId::generate(),
            org_id: org.id.clone(),
            name: "all".into(),
            target_url: "https://receiver.example/".into(),
            resource: WebhookResource::Domains,
            event: WebhookEvent::All,
            filter: WebhookFilter::any(),
            secret: WebhookSecret::generate(),
            status: WebhookStatus::Active,
            created_by: None,
            created_at: t0,
            updated_at: t0,
            failing_since: None,
        };
        store.create_webhook(&actor, &webhook).await.unwrap();
        // A transaction appends an event (as a unit of work would) and stays open...
        let mut slow = <PgConnection as sqlx::Connection>::connect(&db.url())
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut slow).await.unwrap();
        sqlx::query(
            "INSERT INTO events (at, org_id, domain, kind, target_type, target_id, state) \
             VALUES ($1, $2, 'slow.example', 'token_issued', 'domain', 'slow.example', 'pending')",
        )
        .bind(t0.as_millis() + 1)
        .bind(org.id.as_str())
        .execute(&mut slow)
        .await
        .unwrap();
        // ...while a later one commits its own.
        store
            .issue_token(
                &actor,
                &org.id,
                &DomainName::parse("fast.example").unwrap(),
                claimd_store::TokenRequest {
                    fresh: claimd_domain::VerificationToken::generate(),
                    ttl: std::time::Duration::from_secs(3600),
                    max_pending: 0,
                },
                t0.plus(std::time::Duration::from_millis(2)),
            )
            .await
            .unwrap();
        let lease = |owner: &str| claimd_store::Lease {
            owner: owner.into(),
            until: Timestamp::now().plus(std::time::Duration::from_secs(30)),
        };
        let domains = |due: &[claimd_store::DueDelivery]| -> Vec<String> {
            due.iter().map(|d| d.event.target.id().to_owned()).collect()
        };
        let now = Timestamp::now();
        let first = store
            .lease_due_deliveries(&lease("one"), now, 10)
            .await
            .unwrap();
        assert!(
            first.is_empty(),
            "nothing passes the running transaction: {first:?}"
        );
        sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
        let second = store
            .lease_due_deliveries(&lease("two"), now, 10)
            .await
            .unwrap();
        assert_eq!(domains(&second), ["slow.example", "fast.example"]);
    }

    #[test]
    fn new_records_go_into_statements_of_a_few_sizes() {
        let sizes: Vec<usize> = [1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 1000]
            .into_iter()
            .map(statement_size)
            .collect();
        assert_eq!(sizes, [1, 2, 3, 4, 4, 6, 8, 8, 48, 64, 64, 64]);
    }

    #[test]
    fn family_keys_are_stable_and_spread() {
        // Every process must compute the same key for a name, on any platform and release.
        assert_eq!(family_key(""), 0x811c_9dc5_u32 as i32);
        assert_eq!(family_key("a"), 0xe40c_292c_u32 as i32);
        assert_ne!(family_key("example.com"), family_key("example.org"));
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
