//! The one write connection, with group commit.
//!
//! Units of work queue up for a task that owns the connection. When it becomes free it takes
//! every unit waiting (up to [`MAX_GROUP`]) and runs them one after another in **one**
//! transaction, each inside a savepoint of its own, then commits once. With
//! `synchronous = FULL` the commit is the fsync, so under concurrency many units share one fsync
//! instead of queueing for one each; alone, a unit runs exactly as it would in a transaction of
//! its own.
//!
//! What callers see is unchanged:
//! - A unit that fails is rolled back to its savepoint: its changes vanish and the others keep
//!   theirs. Its caller gets its error.
//! - No unit is answered before the commit that makes it durable. If the transaction cannot be
//!   committed (or cannot go on), every unit in it is answered with that error and none of them
//!   took effect.
//! - Units run one at a time on one connection, so they are serialized exactly as with a
//!   single writer: a unit sees the units before it in the group.
//! - A caller that goes away does not cut its unit short: the writer task owns it.
//! - A caller that waits longer than the writer's wait limit before its unit *starts* gets
//!   `Unavailable` and the unit never runs; once started, it is waited for.
//! - A unit that panics is rolled back to its savepoint like one that failed, and its caller
//!   gets an internal error; the writer goes on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use claimd_store::sql::BoxFuture;
use claimd_store::{StoreError, StoreResult};
use futures_util::FutureExt as _;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// Most units of work in one transaction.
pub const MAX_GROUP: usize = 64;
/// Units queued for the writer before senders wait.
const QUEUE: usize = 1024;

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

/// Handle on the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    units: mpsc::Sender<Box<dyn Unit>>,
    /// Longest a unit waits to start before its caller is told the store is unavailable.
    wait: Duration,
}

/// What the writer needs to know of a unit once it ran: whether to keep its changes, and how
/// to answer its caller once the transaction's fate is known.
struct Ran {
    keep: bool,
    answer: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

trait Unit: Send {
    /// Claims the unit for running; false if its caller gave up waiting.
    fn start(&self) -> bool;
    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Ran>;
    fn fail(self: Box<Self>, error: StoreError);
}

struct Pending<T, F> {
    work: F,
    reply: oneshot::Sender<StoreResult<T>>,
    state: Arc<AtomicU8>,
}

impl<T, F> Unit for Pending<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    fn start(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn run<'c>(self: Box<Self>, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Ran> {
        let Self { work, reply, .. } = *self;
        Box::pin(async move {
            match AssertUnwindSafe(work(conn)).catch_unwind().await {
                Ok(Ok(value)) => Ran {
                    keep: true,
                    answer: Box::new(move |committed| {
                        let _ = reply.send(committed.map(|()| value));
                    }),
                },
                Ok(Err(error)) => Ran {
                    keep: false,
                    answer: Box::new(move |_| {
                        let _ = reply.send(Err(error));
                    }),
                },
                Err(_) => {
                    tracing::error!("a unit of work panicked; it is rolled back");
                    Ran {
                        keep: false,
                        answer: Box::new(move |_| {
                            let _ = reply
                                .send(Err(StoreError::Internal("a unit of work panicked".into())));
                        }),
                    }
                }
            }
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl Writer {
    /// Starts the writer task on `conn`.
    pub fn spawn(
        conn: SqliteConnection,
        options: SqliteConnectOptions,
        wait: Duration,
        db_error: fn(sqlx::Error) -> StoreError,
    ) -> Self {
        let (units, queue) = mpsc::channel(QUEUE);
        tokio::spawn(
            Task {
                conn,
                in_doubt: false,
                options,
                db_error,
            }
            .run(queue),
        );
        Self { units, wait }
    }

    /// Runs `work` in the next group; its result once the group is committed.
    pub async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let stopped = || StoreError::Internal("the SQLite writer stopped".into());
        let (reply, mut answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let unit = Box::new(Pending {
            work,
            reply,
            state: state.clone(),
        });
        let busy = || StoreError::Unavailable("timed out waiting for the writer".into());
        let deadline = tokio::time::Instant::now() + self.wait;
        tokio::time::timeout_at(deadline, self.units.send(unit))
            .await
            .map_err(|_| busy())?
            .map_err(|_| stopped())?;
        match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(result) => result.map_err(|_| stopped())?,
            Err(_) => {
                if state
                    .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Err(busy());
                }
                // Already running: its outcome is on its way.
                answer.await.map_err(|_| stopped())?
            }
        }
    }
}

struct Task {
    conn: SqliteConnection,
    /// A rollback failed: whether a transaction is still open is not known.
    in_doubt: bool,
    options: SqliteConnectOptions,
    db_error: fn(sqlx::Error) -> StoreError,
}

impl Task {
    async fn run(mut self, mut queue: mpsc::Receiver<Box<dyn Unit>>) {
        let mut group: Vec<Box<dyn Unit>> = Vec::with_capacity(MAX_GROUP);
        while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
            group.retain(|u| u.start());
            if !group.is_empty() {
                self.commit_group(std::mem::take(&mut group)).await;
            }
        }
    }

    async fn exec(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(sql).execute(&mut self.conn).await.map(drop)
    }

    async fn commit_group(&mut self, group: Vec<Box<dyn Unit>>) {
        if self.in_doubt {
            // A rollback failed last time: make sure no transaction is left open.
            let _ = self.exec("ROLLBACK").await;
            self.in_doubt = false;
        }
        let n = group.len();
        // A unit alone needs no savepoint: the transaction is its own. Statements that follow
        // one another without a unit of work in between are sent together (one trip to the
        // connection's thread instead of two or three).
        // IMMEDIATE takes the write lock before the first read of any unit.
        let begin = if n == 1 {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN IMMEDIATE; SAVEPOINT unit"
        };
        if let Err(e) = self.exec(begin).await {
            let broken = matches!(e, sqlx::Error::WorkerCrashed | sqlx::Error::Io(_));
            let error = (self.db_error)(e);
            for unit in group {
                unit.fail(error.clone());
            }
            if broken {
                self.reopen().await;
            } else {
                self.rollback().await;
            }
            return;
        }
        let mut answers = Vec::with_capacity(n);
        let mut units = group.into_iter().enumerate();
        let mut failure = None;
        for (i, unit) in units.by_ref() {
            let ran = unit.run(&mut self.conn).await;
            let last = i + 1 == n;
            let next = match (n == 1, ran.keep, last) {
                (true, true, _) => "COMMIT",
                (true, false, _) => "ROLLBACK",
                (false, true, false) => "RELEASE unit; SAVEPOINT unit",
                (false, false, false) => "ROLLBACK TO unit; RELEASE unit; SAVEPOINT unit",
                (false, true, true) => "RELEASE unit; COMMIT",
                (false, false, true) => "ROLLBACK TO unit; RELEASE unit; COMMIT",
            };
            answers.push(ran.answer);
            if let Err(e) = self.exec(next).await {
                failure = Some((self.db_error)(e));
                break;
            }
        }
        match failure {
            None => {
                for answer in answers {
                    answer(Ok(()));
                }
            }
            Some(error) => {
                // Nothing of this group is kept; whatever is left of the transaction goes.
                self.rollback().await;
                for answer in answers {
                    answer(Err(error.clone()));
                }
                for (_, unit) in units {
                    unit.fail(error.clone());
                }
            }
        }
    }

    async fn rollback(&mut self) {
        // Fails harmlessly when no transaction is open (SQLite already rolled it back).
        if let Err(e) = self.exec("ROLLBACK").await {
            self.in_doubt = !e.to_string().contains("no transaction is active");
        }
    }

    /// Replaces a connection whose worker thread is gone.
    async fn reopen(&mut self) {
        tracing::error!("the SQLite write connection failed; reopening it");
        if let Ok(fresh) = SqliteConnection::connect_with(&self.options).await {
            self.conn = fresh;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    fn db_error(e: sqlx::Error) -> StoreError {
        StoreError::Internal(e.to_string())
    }

    /// A writer on a fresh file with a table `t (v TEXT)`, and a reader connection.
    async fn writer(wait: Duration) -> (Writer, SqliteConnection, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite:{}",
            dir.path().join("w.db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .foreign_keys(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE t (v TEXT NOT NULL);
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let reader = SqliteConnection::connect_with(&options).await.unwrap();
        (Writer::spawn(conn, options, wait, db_error), reader, dir)
    }

    /// What a test unit does after its statement.
    #[derive(Clone, Copy)]
    enum Then {
        Succeed,
        Fail,
        Panic,
    }

    /// A unit of work that runs `sql`, then succeeds, fails or panics.
    async fn unit(writer: &Writer, sql: impl Into<String>, then: Then) -> StoreResult<()> {
        let sql = sql.into();
        writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(&sql).execute(conn).await.map_err(db_error)?;
                    match then {
                        Then::Succeed => Ok(()),
                        Then::Fail => Err(StoreError::Internal("refused after writing".into())),
                        Then::Panic => panic!("a bug in a unit of work"),
                    }
                })
            })
            .await
    }

    async fn insert(writer: &Writer, v: &str) -> StoreResult<()> {
        unit(
            writer,
            format!("INSERT INTO t (v) VALUES ('{v}')"),
            Then::Succeed,
        )
        .await
    }

    async fn values(reader: &mut SqliteConnection) -> Vec<String> {
        sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(reader)
            .await
            .unwrap()
    }

    /// Occupies the writer until the returned sender is dropped or fired, so the units queued
    /// meanwhile run as one group.
    async fn hold(writer: &Writer) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, released) = oneshot::channel::<()>();
        let (started, has_started) = oneshot::channel::<()>();
        let w = writer.clone();
        let held = tokio::spawn(async move {
            w.write(move |_| {
                Box::pin(async move {
                    let _ = started.send(());
                    let _ = released.await;
                    Ok(())
                })
            })
            .await
            .unwrap();
        });
        has_started.await.unwrap();
        (release, held)
    }

    /// Queues `work` behind the held writer and waits until it is in the queue.
    async fn queue<T: Send + 'static>(
        writer: &Writer,
        work: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        let before = writer.units.capacity();
        let task = tokio::spawn(work);
        while writer.units.capacity() == before {
            tokio::task::yield_now().await;
        }
        task
    }

    #[tokio::test]
    async fn a_failed_unit_is_undone_alone_in_its_group() {
        let (writer, mut reader, _dir) = writer(Duration::from_secs(30)).await;
        let (release, held) = hold(&writer).await;
        let w = writer.clone();
        let a = queue(&writer, async move { insert(&w, "a").await }).await;
        let w = writer.clone();
        let b = queue(&writer, async move {
            unit(&w, "INSERT INTO t (v) VALUES ('b')", Then::Fail).await
        })
        .await;
        let w = writer.clone();
        let c = queue(&writer, async move { insert(&w, "c").await }).await;
        release.send(()).unwrap();
        held.await.unwrap();
        assert!(a.await.unwrap().is_ok());
        assert!(
            matches!(b.await.unwrap(), Err(StoreError::Internal(m)) if m == "refused after writing")
        );
        assert!(c.await.unwrap().is_ok());
        assert_eq!(values(&mut reader).await, ["a", "c"]);
    }

    #[tokio::test]
    async fn a_panicking_unit_is_undone_and_the_writer_goes_on() {
        let (writer, mut reader, _dir) = writer(Duration::from_secs(30)).await;
        let (release, held) = hold(&writer).await;
        let w = writer.clone();
        let boom = queue(&writer, async move {
            unit(&w, "INSERT INTO t (v) VALUES ('boom')", Then::Panic).await
        })
        .await;
        let w = writer.clone();
        let a = queue(&writer, async move { insert(&w, "a").await }).await;
        release.send(()).unwrap();
        held.await.unwrap();
        assert!(matches!(boom.await.unwrap(), Err(StoreError::Internal(_))));
        assert!(a.await.unwrap().is_ok());
        insert(&writer, "after").await.unwrap();
        assert_eq!(values(&mut reader).await, ["a", "after"]);
    }

    #[tokio::test]
    async fn when_the_commit_fails_no_unit_of_the_group_is_kept_or_acknowledged() {
        let (writer, mut reader, _dir) = writer(Duration::from_secs(30)).await;
        let (release, held) = hold(&writer).await;
        let w = writer.clone();
        let a = queue(&writer, async move { insert(&w, "a").await }).await;
        let w = writer.clone();
        // A deferred foreign key is only checked by COMMIT.
        let orphan = queue(&writer, async move {
            unit(&w, "INSERT INTO child (p) VALUES (42)", Then::Succeed).await
        })
        .await;
        release.send(()).unwrap();
        // The holder was in the same group as nothing else: it committed on its own.
        held.await.unwrap();
        assert!(a.await.unwrap().is_err(), "not acknowledged");
        assert!(orphan.await.unwrap().is_err());
        assert!(values(&mut reader).await.is_empty(), "nothing kept");
        insert(&writer, "after").await.unwrap();
        assert_eq!(values(&mut reader).await, ["after"]);
    }

    #[tokio::test]
    async fn a_unit_whose_caller_stopped_waiting_before_it_started_never_runs() {
        let (writer, mut reader, _dir) = writer(Duration::from_millis(100)).await;
        let (release, held) = hold(&writer).await;
        let late = insert(&writer, "late").await;
        assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
        release.send(()).unwrap();
        // The holder had started before the limit passed: it is waited for, and succeeds.
        held.await.unwrap();
        insert(&writer, "after").await.unwrap();
        assert_eq!(values(&mut reader).await, ["after"]);
    }

    #[tokio::test]
    async fn a_unit_alone_whose_commit_fails_is_not_acknowledged() {
        let (writer, mut reader, _dir) = writer(Duration::from_secs(30)).await;
        let orphan = unit(
            &writer,
            "INSERT INTO t (v) VALUES ('x'); INSERT INTO child (p) VALUES (7)",
            Then::Succeed,
        )
        .await;
        assert!(orphan.is_err());
        assert!(values(&mut reader).await.is_empty());
        insert(&writer, "after").await.unwrap();
        assert_eq!(values(&mut reader).await, ["after"]);
    }
}
