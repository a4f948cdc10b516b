//! The store's own connection pool: idle connections on a stack, behind one fair semaphore.
//!
//! sqlx's pool sends a ping on every connection it takes back, to flush what a dropped
//! transaction left queued and to find dead connections. That is a round trip per unit of work
//! for PostgreSQL and for claimd (a wake-up on each side): on a read, as much as the read itself.
//! Here a connection goes back to the stack as it is, and is checked only when it may need it:
//!
//! - one that has something queued (a transaction dropped before its end queues its
//!   `ROLLBACK`) is flushed at once, in a task of its own, before it is idle again — it would
//!   otherwise keep its transaction's locks until its next use;
//! - one that sat idle for [`IDLE_BEFORE_PING`] or more (a server restart or a proxy's idle
//!   timeout may have cut it meanwhile) is pinged before use;
//! - one whose last check predates a statement failure that can mean a dead connection (see
//!   [`suspect_connections`]) is pinged before use, so that after a server restart each
//!   connection fails at most the one request that was using it, even under a load that never
//!   lets them sit idle.
//!
//! A connection whose ping fails is closed and another is opened in its place. The pool opens
//! connections as they are needed, up to its maximum, and closes those unused for
//! [`IDLE_TIMEOUT`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection idle for longer than this is pinged before use.
pub(crate) const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// A connection unused for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Moves on every statement failure that can mean a dead connection (an I/O or protocol error,
/// a connection exception, a server shutting down). Shared by every pool of the process: a
/// failure seen on one only costs the others a ping per connection.
static SUSPECT: AtomicU64 = AtomicU64::new(0);

/// Every connection checked before this call is pinged before its next use.
pub(crate) fn suspect_connections() {
    SUSPECT.fetch_add(1, Ordering::Relaxed);
}

#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    /// One per connection the pool may have: held by a connection in use (or being flushed).
    permits: Arc<Semaphore>,
    /// Connections open: idle, in use, or being flushed.
    open: AtomicU32,
    acquire_timeout: Duration,
}

struct Idle {
    conn: PgConnection,
    since: Instant,
    /// [`SUSPECT`] when the connection was last known good.
    checked: u64,
}

impl Idle {
    /// Usable without a ping: known good since the last connection-level failure, and not
    /// idle long enough for the server or the network to have cut it.
    fn fresh(&self, suspect: u64) -> bool {
        self.checked == suspect && self.since.elapsed() < IDLE_BEFORE_PING
    }
}

/// A connection of the pool, back on its stack when dropped.
pub struct PooledConnection {
    conn: Option<PgConnection>,
    checked: u64,
    close: bool,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Pool {
    /// A pool of at most `max` connections to `options`, with one opened now so that a wrong
    /// address or password fails here.
    pub(crate) async fn connect(
        options: PgConnectOptions,
        max: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        let first = PgConnection::connect_with(&options).await?;
        let pool = Self {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max.max(1) as usize)),
                open: AtomicU32::new(1),
                acquire_timeout,
            }),
        };
        pool.inner.put(first, SUSPECT.load(Ordering::Relaxed));
        Ok(pool)
    }

    /// A connection, waiting at most the acquire timeout for one ([`sqlx::Error::PoolTimedOut`]).
    pub(crate) async fn acquire(&self) -> Result<PooledConnection, sqlx::Error> {
        if let Some(conn) = self.take_fresh() {
            return Ok(conn);
        }
        tokio::time::timeout(self.inner.acquire_timeout, self.acquire_now())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    /// The common case without a timer: a permit free at once (none is free while anyone
    /// waits: the semaphore hands released permits to its waiters first) and, on top of the
    /// stack, a connection that needs no ping. Else `None`, with nothing taken.
    fn take_fresh(&self) -> Option<PooledConnection> {
        let inner = &self.inner;
        let permit = inner.permits.clone().try_acquire_owned().ok()?;
        let suspect = SUSPECT.load(Ordering::Relaxed);
        let idle = {
            let mut idle = inner.lock_idle();
            if !idle.last()?.fresh(suspect) {
                return None;
            }
            idle.pop()?
        };
        Some(PooledConnection {
            conn: Some(idle.conn),
            checked: idle.checked,
            close: false,
            pool: inner.clone(),
            permit: Some(permit),
        })
    }

    async fn acquire_now(&self) -> Result<PooledConnection, sqlx::Error> {
        let inner = &self.inner;
        let mut permit = Some(
            inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| sqlx::Error::PoolClosed)?,
        );
        loop {
            let suspect = SUSPECT.load(Ordering::Relaxed);
            let Some(idle) = inner.lock_idle().pop() else {
                break;
            };
            let fresh = idle.fresh(suspect);
            // From here the connection is accounted for by its guard, even if this future is
            // dropped (the acquire timed out) in the middle of the ping.
            let mut conn = PooledConnection {
                conn: Some(idle.conn),
                checked: idle.checked,
                close: false,
                pool: inner.clone(),
                permit: permit.take(),
            };
            if fresh {
                return Ok(conn);
            }
            if conn.ping().await.is_ok() {
                conn.checked = suspect;
                return Ok(conn);
            }
            tracing::debug!("closing a dead PostgreSQL connection");
            permit = conn.permit.take();
            conn.close = true;
        }
        let checked = SUSPECT.load(Ordering::Relaxed);
        let conn = PgConnection::connect_with(&inner.options).await?;
        inner.open.fetch_add(1, Ordering::Relaxed);
        Ok(PooledConnection {
            conn: Some(conn),
            checked,
            close: false,
            pool: inner.clone(),
            permit,
        })
    }

    /// Connections open, and how many of them are idle.
    pub(crate) fn size(&self) -> (u32, u32) {
        let idle = u32::try_from(self.inner.lock_idle().len()).unwrap_or(u32::MAX);
        (self.inner.open.load(Ordering::Relaxed), idle)
    }
}

impl Inner {
    fn lock_idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // Every change under this lock is a push, a pop or a removal: a panic cannot break it.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Back on the stack; the oldest idle connection is closed if unused for too long.
    fn put(&self, conn: PgConnection, checked: u64) {
        let stale = {
            let mut idle = self.lock_idle();
            idle.push(Idle {
                conn,
                since: Instant::now(),
                checked,
            });
            (idle[0].since.elapsed() >= IDLE_TIMEOUT).then(|| idle.remove(0))
        };
        if stale.is_some() {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl PooledConnection {
    /// Closes the connection instead of giving it back (it is in a state the next user must
    /// not inherit).
    pub(crate) fn close_on_drop(&mut self) {
        self.close = true;
    }
}

impl std::ops::Deref for PooledConnection {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a pooled connection")
    }
}

impl std::ops::DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a pooled connection")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.close {
            self.pool.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if !conn.should_flush() {
            // Back on the stack before the permit is released (fields drop after this).
            self.pool.put(conn, self.checked);
            return;
        }
        // A dropped transaction's `ROLLBACK` is queued: sent now, the permit kept until the
        // connection is idle again.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.pool.open.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        let (pool, permit, checked) = (self.pool.clone(), self.permit.take(), self.checked);
        runtime.spawn(async move {
            if conn.ping().await.is_ok() {
                pool.put(conn, checked);
            } else {
                pool.open.fetch_sub(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
}
