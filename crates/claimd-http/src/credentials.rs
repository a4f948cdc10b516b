//! Opaque credentials kept in memory, so that a request is authenticated without a database
//! query, and forgotten as soon as any credential changes anywhere.
//!
//! The store keeps a counter that moves whenever a credential row is changed or removed, by any
//! process (a database trigger moves it, so `claimd token revoke` in another process and SQL by
//! hand count too). A task polls it every `recheck` interval; when it has moved, or cannot be
//! read, everything cached is forgotten. A revoked credential therefore stops working within one
//! interval. Entries are served only while the last successful poll is recent (two intervals), so
//! a stalled poller or an unreachable database falls back to a lookup per request rather than
//! to stale answers. Only credentials that exist are cached: an unknown secret is always looked
//! up, so the cache cannot be filled by guessing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use claimd_domain::{Credential, SecretHash};
use claimd_store::{CredentialStore, StoreResult};

/// Most credentials held; past it the cache starts over.
const MAX_ENTRIES: usize = 10_000;

pub struct CredentialCache {
    recheck: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<SecretHash, Credential>,
    /// Moves on every forget, so a lookup that raced a forget does not store what it read.
    generation: u64,
    /// The store's change counter at the last poll.
    epoch: Option<i64>,
    /// When the last successful poll started.
    validated_at: Option<Instant>,
}

/// A ticket for storing what a lookup finds, taken before the lookup.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl CredentialCache {
    /// A cache that nothing validates yet: it serves nothing until [`observe`](Self::observe)
    /// records a successful poll.
    pub fn new(recheck: Duration) -> Self {
        Self {
            recheck,
            inner: Mutex::default(),
        }
    }

    /// Starts the cache and its poller on the current runtime; `None` when `recheck` is zero
    /// or there is no runtime to poll on (every request reads the database then). The poller
    /// stops when the cache is dropped.
    pub fn spawn(store: Arc<dyn CredentialStore>, recheck: Duration) -> Option<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        if recheck.is_zero() {
            return None;
        }
        let cache = Arc::new(Self::new(recheck));
        let weak: Weak<Self> = Arc::downgrade(&cache);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(recheck);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(cache) = weak.upgrade() else { return };
                let started = Instant::now();
                let polled = store.credential_changes().await;
                cache.observe(polled, started);
            }
        });
        Some(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (every change is
        // one insert or one clear), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a poll of the store's change counter that started at `started`.
    pub fn observe(&self, polled: StoreResult<i64>, started: Instant) {
        let mut inner = self.lock();
        match polled {
            Ok(epoch) => {
                if inner.epoch != Some(epoch) {
                    inner.forget();
                    inner.epoch = Some(epoch);
                }
                inner.validated_at = Some(started);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the credential change counter; not caching credentials");
                inner.forget();
                inner.epoch = None;
                inner.validated_at = None;
            }
        }
    }

    /// The credential behind `secret`, if it is held and the cache was validated recently.
    pub fn get(&self, secret: &SecretHash) -> Option<Credential> {
        let inner = self.lock();
        if !self.fresh(&inner) {
            return None;
        }
        inner.entries.get(secret).cloned()
    }

    /// Take before looking a credential up in the store; hand back to [`insert`](Self::insert).
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// Keeps what a lookup found, unless the cache forgot everything since the ticket was taken
    /// (the lookup may have read a row from before the change).
    pub fn insert(&self, ticket: Ticket, secret: SecretHash, credential: Credential) {
        let mut inner = self.lock();
        if inner.generation != ticket.0 || !self.fresh(&inner) {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.forget();
            return;
        }
        inner.entries.insert(secret, credential);
    }

    fn fresh(&self, inner: &Inner) -> bool {
        inner
            .validated_at
            .is_some_and(|at| at.elapsed() < self.recheck * 2)
    }
}

impl Inner {
    fn forget(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimd_domain::{ApiSecret, CredentialId, Timestamp};
    use claimd_store::StoreError;

    fn credential() -> (SecretHash, Credential) {
        let secret = ApiSecret::generate().hash();
        let credential = Credential {
            id: CredentialId::new("c1"),
            org_id: None,
            label: "test".into(),
            scopes: vec![],
            roles: vec![],
            created_at: Timestamp::from_millis(1),
            expires_at: None,
            revoked_at: None,
        };
        (secret, credential)
    }

    fn validated(epoch: i64) -> CredentialCache {
        let cache = CredentialCache::new(Duration::from_secs(3600));
        cache.observe(Ok(epoch), Instant::now());
        cache
    }

    #[test]
    fn serves_what_it_was_given_while_the_counter_stands_still() {
        let cache = validated(7);
        let (secret, credential) = credential();
        assert_eq!(cache.get(&secret), None);
        cache.insert(cache.ticket(), secret.clone(), credential.clone());
        assert_eq!(cache.get(&secret), Some(credential.clone()));
        cache.observe(Ok(7), Instant::now());
        assert_eq!(cache.get(&secret), Some(credential));
    }

    #[test]
    fn forgets_everything_when_the_counter_moves() {
        let cache = validated(7);
        let (secret, credential) = credential();
        cache.insert(cache.ticket(), secret.clone(), credential);
        cache.observe(Ok(8), Instant::now());
        assert_eq!(cache.get(&secret), None);
    }

    #[test]
    fn a_lookup_that_raced_a_change_is_not_stored() {
        let cache = validated(7);
        let (secret, credential) = credential();
        let ticket = cache.ticket();
        // The row is read here, then a revocation moves the counter before the insert.
        cache.observe(Ok(8), Instant::now());
        cache.insert(ticket, secret.clone(), credential);
        assert_eq!(cache.get(&secret), None);
    }

    #[test]
    fn serves_nothing_until_validated_or_after_a_failed_poll() {
        let cache = CredentialCache::new(Duration::from_secs(3600));
        let (secret, credential) = credential();
        cache.insert(cache.ticket(), secret.clone(), credential.clone());
        assert_eq!(cache.get(&secret), None, "never validated");

        cache.observe(Ok(1), Instant::now());
        cache.insert(cache.ticket(), secret.clone(), credential.clone());
        assert!(cache.get(&secret).is_some());
        cache.observe(Err(StoreError::Unavailable("down".into())), Instant::now());
        assert_eq!(cache.get(&secret), None, "the counter could not be read");
        cache.observe(Ok(1), Instant::now());
        assert_eq!(
            cache.get(&secret),
            None,
            "what was held before the failure is gone"
        );
    }

    #[test]
    fn serves_nothing_when_the_last_poll_is_old() {
        let cache = CredentialCache::new(Duration::from_millis(10));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .expect("the monotonic clock is past one second");
        cache.observe(Ok(1), long_ago);
        let (secret, credential) = credential();
        cache.insert(cache.ticket(), secret.clone(), credential);
        assert_eq!(cache.get(&secret), None);
    }

    #[test]
    fn stays_bounded() {
        let cache = validated(1);
        let (_, credential) = credential();
        for _ in 0..MAX_ENTRIES + 5 {
            cache.insert(
                cache.ticket(),
                ApiSecret::generate().hash(),
                credential.clone(),
            );
        }
        assert!(cache.lock().entries.len() <= MAX_ENTRIES);
    }
}
