//! What a backend provides ([`Backend`]), what a unit of work runs on ([`Db`]), and what it must
//! not overlap with ([`Lock`]).

use std::future::Future;
use std::ops::DerefMut;
use std::pin::Pin;

use async_trait::async_trait;
use claimd_domain::DomainName;

use super::statement::{Dialect, Row, Statement};
use crate::error::StoreResult;
use crate::store::Store;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a unit of work must not overlap with, beyond what its transaction isolates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lock {
    None,
    /// Every other unit of work on domains under these registrable domains (sorted, no
    /// repeats: the order in which per-family locks are taken, so that two units can never
    /// wait on each other in a cycle).
    Families(Vec<String>),
    /// Every other first-start bootstrap, in any process.
    Bootstrap,
}

impl Lock {
    /// The families of `domains`.
    pub fn families<'d>(domains: impl IntoIterator<Item = &'d DomainName>) -> Self {
        let mut families: Vec<String> = domains
            .into_iter()
            .map(|d| d.registrable().to_owned())
            .collect();
        families.sort();
        families.dedup();
        Self::Families(families)
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

    /// Runs `work` as one write transaction (or a savepoint of one, under group commit) in a
    /// task the caller does not own, answering only once it is committed; `lock` names the
    /// units of work it must not overlap.
    fn write<T, F>(&self, lock: Lock, work: F) -> impl Future<Output = StoreResult<T>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Self::Conn) -> BoxFuture<'c, StoreResult<T>> + Send + 'static;

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
}
