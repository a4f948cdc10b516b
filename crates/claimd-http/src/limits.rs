//! Rate limits (governor's GCRA, in memory per process): per credential and per organization on
//! every authenticated request; per (organization, domain) and per registrable domain across all
//! organizations on the requests that make claimd send DNS queries, so that verify cannot be
//! turned into a scanner or a hammer. A refusal is 429 with `Retry-After`.
//!
//! **Shared across a fleet.** When several processes serve one database, each one knows how
//! many are alive (the fleet's heartbeats, [`Limits::set_members`]) and every request it admits
//! costs that many cells of the configured quota: each process allows its share, `1/N` of the
//! rate and of the burst, and together they allow what one process would — with no round trip
//! to the database per request. A process that dies stops counting once its heartbeat is older
//! than the fleet's time to live, and the others' shares grow back at their next heartbeat.
//! The slack: a process only learns of a change at its own heartbeat (between two, the fleet
//! can allow at most one process's share too much), and shares are whole cells (with more
//! processes than the quota per minute, each still allows one request a minute).

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use axum::http::StatusCode;
use claimd_domain::{DomainName, OrgId};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Requests per minute (bursts up to the same number); 0 turns a limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitConfig {
    pub per_credential: u32,
    pub per_organization: u32,
    /// verifyDomain and the dry run, per (organization, domain).
    pub lookups_per_domain: u32,
    /// DNS checks aimed at one registrable domain, across all organizations.
    pub lookups_per_registrable: u32,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            per_credential: 600,
            per_organization: 1200,
            lookups_per_domain: 12,
            lookups_per_registrable: 60,
        }
    }
}

/// Keyed limiters grow with the keys seen; past this many, idle keys are dropped.
const MAX_KEYS: usize = 100_000;

struct Limit<K: Hash + Eq + Clone> {
    what: &'static str,
    /// Its quota per minute, which is also its burst.
    per_minute: NonZeroU32,
    limiter: DefaultKeyedRateLimiter<K>,
    /// Requests refused so far (metrics).
    refused: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(what: &'static str, per_minute: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(Self {
            what,
            per_minute,
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            refused: AtomicU64::new(0),
        })
    }

    /// A request that costs `members` cells: this process's share of the quota.
    fn allow(&self, key: &K, members: NonZeroU32) -> Result<(), ApiError> {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        let cost = members.min(self.per_minute);
        let checked = self
            .limiter
            .check_key_n(key, cost)
            .expect("a cost is never more than the burst");
        checked.map_err(|not_until| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "rate limit reached: too many requests {}; retry in {seconds} s",
                    self.what
                ),
            )
            .with_retry_after(seconds)
        })
    }
}

pub struct Limits {
    /// The processes sharing the limits (1 alone).
    members: AtomicU32,
    credential: Option<Limit<String>>,
    organization: Option<Limit<String>>,
    domain: Option<Limit<(String, String)>>,
    registrable: Option<Limit<String>>,
}

impl Limits {
    pub fn new(config: &LimitConfig) -> Self {
        Self {
            members: AtomicU32::new(1),
            credential: Limit::new("with this credential", config.per_credential),
            organization: Limit::new("for this organization", config.per_organization),
            domain: Limit::new("checking this domain", config.lookups_per_domain),
            registrable: Limit::new(
                "checking names under this registrable domain",
                config.lookups_per_registrable,
            ),
        }
    }

    /// How many processes share the limits now (the fleet's heartbeat says).
    pub fn set_members(&self, members: u32) {
        self.members.store(members.max(1), Ordering::Relaxed);
    }

    pub fn members(&self) -> u32 {
        self.members.load(Ordering::Relaxed)
    }

    fn cost(&self) -> NonZeroU32 {
        NonZeroU32::new(self.members()).unwrap_or(NonZeroU32::MIN)
    }

    /// Every authenticated request.
    pub fn allow_request(&self, credential: &str, org: &OrgId) -> Result<(), ApiError> {
        let cost = self.cost();
        if let Some(l) = &self.credential {
            l.allow(&credential.to_owned(), cost)?;
        }
        if let Some(l) = &self.organization {
            l.allow(&org.as_str().to_owned(), cost)?;
        }
        Ok(())
    }

    /// Requests refused so far, by limit: `credential`, `organization`, `domain_lookups`,
    /// `registrable_lookups` (a limit that is off counts nothing).
    pub fn refusals(&self) -> [(&'static str, u64); 4] {
        fn count<K: Hash + Eq + Clone>(l: &Option<Limit<K>>) -> u64 {
            l.as_ref().map_or(0, |l| l.refused.load(Ordering::Relaxed))
        }
        [
            ("credential", count(&self.credential)),
            ("organization", count(&self.organization)),
            ("domain_lookups", count(&self.domain)),
            ("registrable_lookups", count(&self.registrable)),
        ]
    }

    /// A request about to send DNS queries for `domain`.
    pub fn allow_lookup(&self, org: &OrgId, domain: &DomainName) -> Result<(), ApiError> {
        let cost = self.cost();
        if let Some(l) = &self.domain {
            l.allow(&(org.as_str().to_owned(), domain.as_str().to_owned()), cost)?;
        }
        if let Some(l) = &self.registrable {
            l.allow(&domain.registrable().to_owned(), cost)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_n_plus_first_is_refused_with_a_retry_after_and_others_are_unaffected() {
        let limits = Limits::new(&LimitConfig {
            per_credential: 3,
            per_organization: 0,
            lookups_per_domain: 2,
            lookups_per_registrable: 0,
        });
        let (a, b) = (OrgId::new("a"), OrgId::new("b"));
        for _ in 0..3 {
            limits.allow_request("c1", &a).unwrap();
        }
        let refused = limits.allow_request("c1", &a).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.retry_after.is_some_and(|s| s >= 1));
        limits.allow_request("c2", &b).unwrap();
        assert_eq!(limits.refusals()[0], ("credential", 1));

        let d = DomainName::parse("example.com").unwrap();
        limits.allow_lookup(&a, &d).unwrap();
        limits.allow_lookup(&a, &d).unwrap();
        assert!(limits.allow_lookup(&a, &d).is_err());
        limits.allow_lookup(&b, &d).unwrap();
    }

    #[test]
    fn in_a_fleet_each_process_allows_its_share() {
        let config = LimitConfig {
            per_credential: 30,
            per_organization: 0,
            lookups_per_domain: 0,
            lookups_per_registrable: 0,
        };
        let admitted = |limits: &Limits, key: &str| {
            (0..100)
                .filter(|_| limits.allow_request(key, &OrgId::new("o")).is_ok())
                .count()
        };
        // Three processes: each admits a third of the burst, together the whole of it.
        let fleet: Vec<Limits> = (0..3).map(|_| Limits::new(&config)).collect();
        fleet.iter().for_each(|l| l.set_members(3));
        let total: usize = fleet.iter().map(|l| admitted(l, "c1")).sum();
        assert_eq!(total, 30);
        // One leaves: the two left take half each from their next heartbeat on.
        fleet[..2].iter().for_each(|l| l.set_members(2));
        let total: usize = fleet[..2].iter().map(|l| admitted(l, "c2")).sum();
        assert_eq!(total, 30);
        // More processes than the quota: each still admits one.
        let crowded = Limits::new(&config);
        crowded.set_members(1000);
        assert_eq!(admitted(&crowded, "c3"), 1);
        // 0 is not a fleet size; it counts as one.
        crowded.set_members(0);
        assert_eq!(crowded.members(), 1);
    }
}
