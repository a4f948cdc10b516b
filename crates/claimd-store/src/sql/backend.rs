//! What a backend provides ([`Backend`]), what a unit of work runs on ([`Db`]), and what it must
//! not overlap with ([`Lock`]).

use std::future::Future;
use std::ops::DerefMut;
use std::pin::Pin;

use async_trait::async_trait;
use claimd_domain::{DomainName, Timestamp};

use super::domains::{NewRecord, insert_new_records};
use super::statement::{Dialect, Row, Statement};
use crate::error::StoreResult;
use crate::store::{Connections, Gauges, Store};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a unit of work must not overlap with, beyond what its transaction isolates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lock {
    None,
    /// Nothing, and no transaction around it either: the unit reads, then makes at most one
    /// write, a single statement that checks for itself that what it read still holds (a key
    /// that must not exist yet). PostgreSQL runs each of its statements on its own, committed
    /// as it ends: no `BEGIN`, no lock, no `COMMIT` (a token request that reads first).
    Optimistic,
    /// Every other unit of work on domains under these registrable domains (sorted, no
    /// repeats: the order in which per-family locks are taken, so that two units can never
    /// wait on each other in a cycle).
    Families(Vec<String>),
    /// Every unit of work under these registrable domains that takes them whole
    /// ([`Lock::Families`]), but not one another: for units that read and write only the named
    /// domain's own row, and check at the write that the row is still what they read (token
    /// renewals: many names of one customer's domain at once, without waiting in a line).
    SharedFamilies(Vec<String>),
    /// Every other first-start bootstrap, in any process.
    Bootstrap,
}

impl Lock {
    /// The families of `domains`.
    pub fn families<'d>(domains: impl IntoIterator<Item = &'d DomainName>) -> Self {
        Self::Families(Self::sorted(domains))
    }

    /// The families of `domains`, shared with the other units that share them.
    pub fn shared_families<'d>(domains: impl IntoIterator<Item = &'d DomainName>) -> Self {
        Self::SharedFamilies(Self::sorted(domains))
    }

    fn sorted<'d>(domains: impl IntoIterator<Item = &'d DomainName>) -> Vec<String> {
        let mut families: Vec<String> = domains
            .into_iter()
            .map(|d| d.registrable().to_owned())
            .collect();
        families.sort();
        families.dedup();
        families
    }
}

/// One database: how statements run, and how units of work become transactions. Every backend
/// is a whole [`Store`]: the aggregate traits are implemented for it in this module's children.
pub trait Backend: Send + Sync + 'static {
    const DIALECT: Dialect;

    /// A connection to the database.
    type Conn: Send;
    /// A result row.
    type Row: Row + Send;
    /// A connection for reads, given back when dropped.
    type Reader<'a>: DerefMut<Target = Self::Conn> + Send
    where
        Self: 'a;

    fn reader(&self) -> impl Future<Output = StoreResult<Self::Reader<'_>>> + Send;

    /// The connections held now.
    fn connections(&self) -> Connections;

    /// Runs `work` as one write transaction (or a savepoint of one, under group commit) in a
    /// task the caller does not own, answering only once it is committed; `lock` names the
    /// units of work it must not overlap.
    fn write<T, F>(&self, lock: Lock, work: F) -> impl Future<Output = StoreResult<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Self::Conn) -> BoxFuture<'c, StoreResult<T>> + Send + 'static;

    /// Writes a token request's new record if the case it was planned for still holds (see
    /// [`NewRecord`]); whether it was written. By default alone, as a [`Lock::Optimistic`]
    /// unit; a backend whose round trips cost more than its statements gathers concurrent
    /// ones into one statement ([`insert_new_records`]).
    fn insert_new(&self, new: NewRecord) -> impl Future<Output = StoreResult<bool>> + Send
    where
        Self: Sized,
    {
        unit(self, Lock::Optimistic, move |mut db| {
            Box::pin(async move {
                let written = insert_new_records(&mut db, std::slice::from_ref(&new)).await?;
                Ok(written.first().copied().unwrap_or(false))
            })
        })
    }

    /// Runs a statement; the number of rows it changed.
    fn execute<'c>(
        conn: &'c mut Self::Conn,
        statement: Statement<'c>,
    ) -> impl Future<Output = StoreResult<u64>> + Send + 'c;

    fn fetch_optional<'c>(
        conn: &'c mut Self::Conn,
        statement: Statement<'c>,
    ) -> impl Future<Output = StoreResult<Option<Self::Row>>> + Send + 'c;

    fn fetch_all<'c>(
        conn: &'c mut Self::Conn,
        statement: Statement<'c>,
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send + 'c;
}

/// A connection of backend `B`, as the units of work and reads see it.
pub struct Db<'c, B: Backend> {
    conn: &'c mut B::Conn,
}

impl<'c, B: Backend> Db<'c, B> {
    pub fn new(conn: &'c mut B::Conn) -> Self {
        Self { conn }
    }

    pub async fn execute(&mut self, statement: Statement<'_>) -> StoreResult<u64> {
        B::execute(&mut *self.conn, statement).await
    }

    pub async fn fetch_optional(
        &mut self,
        statement: Statement<'_>,
    ) -> StoreResult<Option<B::Row>> {
        B::fetch_optional(&mut *self.conn, statement).await
    }

    pub async fn fetch_all(&mut self, statement: Statement<'_>) -> StoreResult<Vec<B::Row>> {
        B::fetch_all(&mut *self.conn, statement).await
    }
}

/// Runs `work` as one unit of work on `backend` under `lock`.
pub(super) async fn unit<B, T, F>(backend: &B, lock: Lock, work: F) -> StoreResult<T>
where
    B: Backend,
    T: Send + 'static,
    F: for<'c> FnOnce(Db<'c, B>) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    backend.write(lock, move |conn| work(Db::new(conn))).await
}

/// Runs one read statement on a read connection.
pub(super) async fn read_optional<B: Backend>(
    backend: &B,
    statement: Statement<'_>,
) -> StoreResult<Option<B::Row>> {
    let mut conn = backend.reader().await?;
    Db::<B>::new(&mut conn).fetch_optional(statement).await
}

pub(super) async fn read_all<B: Backend>(
    backend: &B,
    statement: Statement<'_>,
) -> StoreResult<Vec<B::Row>> {
    let mut conn = backend.reader().await?;
    Db::<B>::new(&mut conn).fetch_all(statement).await
}

#[async_trait]
impl<B: Backend> Store for B {
    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.reader().await?;
        Db::<B>::new(&mut conn)
            .execute(Statement::new("SELECT 1"))
            .await?;
        Ok(())
    }

    fn connections(&self) -> Connections {
        Backend::connections(self)
    }

    async fn gauges(&self, now: Timestamp) -> StoreResult<Gauges> {
        let mut conn = self.reader().await?;
        let mut db = Db::<B>::new(&mut conn);
        let by_state = db
            .fetch_all(Statement::new(
                "SELECT state, count(*) AS n, \
                 COALESCE(sum(CASE WHEN failing_since IS NOT NULL THEN 1 ELSE 0 END), 0) AS at_risk \
                 FROM domains GROUP BY state",
            ))
            .await?;
        let mut gauges = Gauges {
            domains: vec![("pending", 0), ("verified", 0), ("claimed", 0)],
            ..Gauges::default()
        };
        for row in &by_state {
            let state = row.text("state")?;
            let n = u64::try_from(row.int("n")?).unwrap_or(0);
            if let Some(slot) = gauges.domains.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n;
            }
            gauges.domains_at_risk += u64::try_from(row.int("at_risk")?).unwrap_or(0);
        }
        let count = |row: Option<B::Row>| -> StoreResult<u64> {
            Ok(row.map_or(Ok(0), |r| r.int("n"))?.try_into().unwrap_or(0))
        };
        let due = Statement::new(
            "SELECT count(*) AS n FROM domains WHERE recheck_due_at IS NOT NULL \
             AND recheck_due_at <= $1",
        )
        .bind(now);
        gauges.rechecks_due = count(db.fetch_optional(due).await?)?;
        let pending =
            Statement::new("SELECT count(*) AS n FROM deliveries WHERE state = 'pending'");
        gauges.deliveries_pending = count(db.fetch_optional(pending).await?)?;
        Ok(gauges)
    }
}
