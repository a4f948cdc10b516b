//! Continuous re-verification. Every verified domain is looked up again on its organization's
//! schedule — the same lookup verifyDomain makes, perspectives and quorum included — and what
//! the lookup concludes is decided by `claimd_domain::plan_recheck` and recorded by the store.
//!
//! [`recheck`] is one re-check, shared by the worker and `POST …/domains/{id}/recheck`.
//! [`Worker`] runs in every `claimd serve` process that has workers (`--recheck-workers`): it
//! leases due domains from the store (so any number of processes share one schedule, and a
//! domain is looked at by one of them at a time), looks them up within a global rate
//! (`--recheck-rate`) and at most a few at a time per registrable domain, and records the
//! results in batches. A worker that dies loses its leases when they run out; another one
//! picks the domains up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claimd_dns::Verifier;
use claimd_domain::{DomainRecord, RecheckConfig, RecheckPolicy, Timestamp, jitter, plan_recheck};
use claimd_store::{Actor, DueRecheck, Lease, RecheckResult, Store};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

/// One re-check of a verified record at `now`: the lookup, and what it means under `policy`.
pub async fn recheck(
    verifier: &Verifier,
    record: &DomainRecord,
    policy: &RecheckPolicy,
    now: Timestamp,
) -> RecheckResult {
    let report = verifier.lookup(&record.domain, &record.token).await;
    let spread = jitter(&record.domain, policy.interval);
    let (step, state) = plan_recheck(record, report.outcome.kind(), now, policy, spread);
    // Only a transition's event keeps the DNS evidence: a result that moves the schedule alone
    // is not serialized for nothing (most of a sweep).
    let lookup = if step.is_transition() {
        report.summary(now)
    } else {
        report.brief(now)
    };
    RecheckResult {
        org_id: record.org_id.clone(),
        domain: record.domain.clone(),
        token: record.token.clone(),
        lookup,
        step,
        state,
    }
}

/// How one process's worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Lookups in flight at once in this process; 0: no worker.
    pub workers: usize,
    /// Lookups started per second at most, by this process.
    pub rate: u32,
    /// Lookups in flight at once per registrable domain (politeness to one DNS operator).
    pub per_family: usize,
    /// How long a lease lasts: the time a worker has to finish a lookup before another worker
    /// may take the domain.
    pub lease: Duration,
    /// How often the schedule is looked at for due domains.
    pub tick: Duration,
    /// Results recorded at once.
    pub batch: usize,
    /// How long a finished result may wait to be recorded with others.
    pub flush: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            workers: 8,
            rate: 20,
            per_family: 2,
            lease: Duration::from_secs(60),
            tick: Duration::from_millis(500),
            batch: 256,
            flush: Duration::from_millis(200),
        }
    }
}

/// A leased domain waiting for its lookup, and when its lease runs out.
struct Leased {
    due: DueRecheck,
    until: Timestamp,
}

/// Batches of results written at once.
const RECORDERS: usize = 4;

/// A running worker; [`stop`](Self::stop) lets it record what it finished.
pub struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    /// Starts the worker on the current runtime, or nothing when `config.workers` is 0.
    pub fn spawn(
        store: Arc<dyn Store>,
        verifier: Arc<Verifier>,
        policy: RecheckConfig,
        config: WorkerConfig,
    ) -> Option<Self> {
        if config.workers == 0 {
            return None;
        }
        let (stop, stopped) = watch::channel(false);
        let owner = format!("recheck-{}", uuid::Uuid::new_v4());
        let run = Run {
            store,
            verifier,
            policy,
            config,
            actor: Actor {
                credential_id: None,
                tracking_id: Some(owner.clone()),
                guarded: false,
            },
            owner,
        };
        let task = tokio::spawn(run.run(stopped));
        Some(Self { stop, task })
    }

    /// Stops leasing, waits for the lookups in flight, records their results.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Run {
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    policy: RecheckConfig,
    config: WorkerConfig,
    owner: String,
    actor: Actor,
}

/// `rate` lookups a second, at most a second's worth at once.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            last: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
    }

    /// Between 1 and `n` tokens, waiting for the first one if none is there.
    async fn take_up_to(&mut self, n: u32) -> u32 {
        self.refill();
        if self.tokens < 1.0 {
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
            self.refill();
        }
        let taken = (self.tokens.floor() as u32).clamp(1, n.max(1));
        self.tokens -= f64::from(taken);
        taken
    }

    fn give_back(&mut self, n: u32) {
        self.tokens = (self.tokens + f64::from(n)).min(self.rate);
    }
}

/// Permits per registrable domain, created on demand and dropped when idle.
#[derive(Default)]
struct Families {
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Families {
    fn get(&self, family: &str, per_family: usize) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if limits.len() > 10_000 {
            limits.retain(|_, s| Arc::strong_count(s) > 1);
        }
        limits
            .entry(family.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(per_family.max(1))))
            .clone()
    }
}

impl Run {
    /// Three stages joined by bounded queues: the leaser leases due domains (within the rate)
    /// whenever the queue of leased domains has room for half its size, and rests a tick when
    /// nothing more was due; the dispatcher starts a lookup for each as a slot frees up; the
    /// recorder writes results in batches. Leasing ahead keeps the lookups busy while a lease
    /// is written; the queue's bound keeps a leased domain waiting less than its lease while
    /// lookups are quick, and one whose lease ran out meanwhile is skipped (see `check`).
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let (leased, mut queue) = mpsc::channel::<Leased>(this.config.workers.max(1) * 4);
        let (results, finished) = mpsc::channel(this.config.batch.max(1) * 4);
        let recorder = tokio::spawn(this.clone().record(finished));
        let leaser = tokio::spawn(this.clone().lease(leased, stopped.clone()));
        let slots = Arc::new(Semaphore::new(this.config.workers));
        let families = Arc::new(Families::default());
        loop {
            let item = tokio::select! {
                // A stop comes before the next leased domain: what is left is given back.
                biased;
                _ = stopped.changed() => None,
                item = queue.recv() => item,
            };
            let Some(item) = item else { break };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let (this, families, results) = (this.clone(), families.clone(), results.clone());
            tokio::spawn(async move {
                let _slot = slot;
                if let Some(result) = this.check(&families, item).await {
                    let _ = results.send(result).await;
                }
            });
        }
        // Wait for the lookups in flight, let the recorder drain and finish, then give back
        // the leases of the domains leased but not started (every recorded result released its
        // own): the other workers take them at once instead of when the leases run out.
        leaser.abort();
        let _ = leaser.await;
        drop(queue);
        let workers = u32::try_from(this.config.workers).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(workers).await;
        drop(results);
        let _ = recorder.await;
        match this
            .store
            .release_rechecks(&this.owner, Timestamp::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "re-check leases given back on stop"),
            Err(e) => tracing::warn!(error = %e, "cannot give back re-check leases on stop"),
        }
    }

    async fn lease(
        self: Arc<Self>,
        queue: mpsc::Sender<Leased>,
        mut stopped: watch::Receiver<bool>,
    ) {
        // One statement leases up to half the queue: the other half keeps the lookups busy
        // while it runs. Waiting for that much room (rather than resting a tick when the queue
        // is full) keeps a sweep going at the lookups' pace.
        let room = (queue.max_capacity() / 2).clamp(1, self.config.batch.max(1));
        let mut bucket = TokenBucket::new(self.config.rate);
        loop {
            let Ok(permits) = queue.reserve_many(room).await else {
                return;
            };
            let wanted = bucket
                .take_up_to(u32::try_from(room).unwrap_or(u32::MAX))
                .await;
            let now = Timestamp::now();
            let lease = Lease {
                owner: self.owner.clone(),
                until: now.plus(self.config.lease),
            };
            let due = match self.store.lease_due_rechecks(&lease, now, wanted).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lease due re-checks");
                    Vec::new()
                }
            };
            let got = u32::try_from(due.len()).unwrap_or(wanted);
            bucket.give_back(wanted.saturating_sub(got));
            for (permit, item) in permits.zip(due) {
                permit.send(Leased {
                    due: item,
                    until: lease.until,
                });
            }
            if got < wanted {
                // Nothing more due (or the store failed): rest a tick.
                tokio::select! {
                    () = tokio::time::sleep(self.config.tick) => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    }

    /// The lookup of a leased domain, unless its lease ran out while it waited (slow lookups
    /// ahead of it, or its family's turn): then it may be another worker's already, and a
    /// result recorded against a lost lease would be dropped anyway. It is left to whoever
    /// leases it next. A lookup starts only while a quarter of the lease is left, the time
    /// one lookup may take (a lease is four DNS timeouts).
    async fn check(&self, families: &Families, leased: Leased) -> Option<RecheckResult> {
        let Leased { due, until } = leased;
        let family = families.get(due.record.domain.registrable(), self.config.per_family);
        let _turn = family.acquire().await;
        let now = Timestamp::now();
        if now.plus(self.config.lease / 4) >= until {
            tracing::debug!(domain = %due.record.domain, "lease ran out before its lookup");
            return None;
        }
        let policy = self.policy.policy(&due.settings);
        Some(recheck(&self.verifier, &due.record, &policy, now).await)
    }

    /// Records results in batches (when `batch` are waiting, or `flush` after the first), a
    /// few batches at once: on PostgreSQL each is a transaction of its own, and their domains
    /// differ.
    async fn record(self: Arc<Self>, mut queue: mpsc::Receiver<RecheckResult>) {
        let writers = Arc::new(Semaphore::new(RECORDERS));
        let mut batch = Vec::with_capacity(self.config.batch);
        while let Some(first) = queue.recv().await {
            batch.push(first);
            let deadline = tokio::time::Instant::now() + self.config.flush;
            while batch.len() < self.config.batch {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(result)) => batch.push(result),
                    Ok(None) | Err(_) => break,
                }
            }
            let results = std::mem::take(&mut batch);
            let Ok(writer) = writers.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _writer = writer;
                let n = results.len();
                let recorded = this
                    .store
                    .record_rechecks(&this.actor, Some(&this.owner), results, Timestamp::now())
                    .await;
                match recorded {
                    Ok(kept) => {
                        tracing::debug!(finished = n, recorded = kept, "re-checks recorded")
                    }
                    // Their leases run out and the domains are looked at again.
                    Err(e) => tracing::warn!(error = %e, lost = n, "cannot record re-checks"),
                }
            });
        }
        // Every batch written before the worker stops.
        let _ = writers.acquire_many(RECORDERS as u32).await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use claimd_dns::testing::TestDnsServer;
    use claimd_dns::{DnssecMode, VerifierConfig};
    use claimd_domain::{DomainName, DomainState, OrgId, RecheckState, VerificationToken};
    use claimd_store::prelude::*;
    use claimd_store_sqlite::{SqliteSettings, SqliteStore};

    use super::*;

    /// A SQLite store holding `n` verified domains `d{i}.sweep.test`, all due `now`.
    struct Due {
        store: Arc<dyn Store>,
        org: OrgId,
        records: Vec<DomainRecord>,
        now: Timestamp,
        _dir: tempfile::TempDir,
    }

    impl Due {
        async fn new(n: usize) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("claimd.db");
            let store = SqliteStore::open(path.to_str().unwrap(), &SqliteSettings::default())
                .await
                .unwrap();
            let now = Timestamp::now();
            let org = store
                .create_organization(&Actor::default(), "sweep", now)
                .await
                .unwrap()
                .id;
            let records: Vec<DomainRecord> = (0..n)
                .map(|i| {
                    let domain = DomainName::parse(&format!("d{i}.sweep.test")).unwrap();
                    let token = VerificationToken::generate();
                    let mut r = DomainRecord::pending(org.clone(), domain, token, now, now);
                    r.state = DomainState::Verified;
                    r.verified_at = Some(now);
                    r.recheck = RecheckState {
                        due_at: Some(now),
                        ..RecheckState::default()
                    };
                    r
                })
                .collect();
            store
                .import_domains(&Actor::default(), records.clone())
                .await
                .unwrap();
            Self {
                store: Arc::new(store),
                org,
                records,
                now,
                _dir: dir,
            }
        }

        async fn publish(&self, dns: &TestDnsServer) {
            for r in &self.records {
                let value = format!("cisco-ci-domain-verification={}", r.token.as_str());
                dns.set_txt(r.domain.as_str(), &[&value]).await;
            }
        }

        fn worker(&self, dns: SocketAddr, dns_timeout: Duration, config: WorkerConfig) -> Worker {
            let verifier = Verifier::new(VerifierConfig {
                timeout: dns_timeout,
                dnssec: DnssecMode::Off,
                ..VerifierConfig::with_servers(vec![dns])
            })
            .unwrap();
            let policy = RecheckConfig::default();
            Worker::spawn(self.store.clone(), Arc::new(verifier), policy, config).unwrap()
        }

        /// A worker making one lookup at a time, leasing for `lease`, against a server that
        /// never answers (within `dns_timeout`); the server's socket, to see the questions.
        async fn one_at_a_time_unanswered(
            &self,
            lease: Duration,
            dns_timeout: Duration,
        ) -> (Worker, tokio::net::UdpSocket) {
            let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let config = WorkerConfig {
                workers: 1,
                rate: 1000,
                lease,
                tick: Duration::from_secs(3600),
                flush: Duration::from_millis(10),
                ..WorkerConfig::default()
            };
            let worker = self.worker(silent.local_addr().unwrap(), dns_timeout, config);
            (worker, silent)
        }

        /// Each record as the store holds it now.
        async fn now_held(&self) -> Vec<DomainRecord> {
            let mut held = Vec::new();
            for r in &self.records {
                let found = self.store.find_domain(&self.org, &r.domain).await.unwrap();
                held.push(found.unwrap());
            }
            held
        }
    }

    /// A re-check's result carries the DNS evidence when its step is a transition (the event
    /// log keeps it) and not when it only moves the schedule: the record found again, then
    /// gone (at risk), then still gone, then back (recovered).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_transitions_carry_the_dns_evidence() {
        let due = Due::new(1).await;
        let dns = TestDnsServer::start().await.unwrap();
        due.publish(&dns).await;
        let verifier = Verifier::new(VerifierConfig {
            timeout: Duration::from_secs(5),
            dnssec: DnssecMode::Off,
            ..VerifierConfig::with_servers(vec![dns.addr()])
        })
        .unwrap();
        let policy = RecheckConfig::default().policy(&Default::default());
        let mut record = due.records[0].clone();
        let mut steps = Vec::new();
        for present in [true, false, false, true] {
            if present {
                due.publish(&dns).await;
            } else {
                dns.remove_txt(record.domain.as_str()).await;
            }
            let result = recheck(&verifier, &record, &policy, Timestamp::now()).await;
            let evidence = &result.lookup.evidence;
            assert_eq!(
                !evidence.is_empty(),
                result.step.is_transition(),
                "{:?}: evidence {evidence:?}",
                result.step
            );
            if !evidence.is_empty() {
                let json: serde_json::Value = serde_json::from_str(evidence).unwrap();
                assert!(json.get("perspectives").is_some(), "{json}");
            }
            assert!(!result.lookup.detail.is_empty(), "{:?}", result.step);
            steps.push(format!("{:?}", result.step));
            record.recheck = result.state;
        }
        assert_eq!(steps[0], "Routine");
        assert!(steps[1].starts_with("AtRisk"), "{steps:?}");
        assert_eq!(steps[2..], ["StillAtRisk", "Recovered"]);
    }

    /// A queue of leased domains that fills up does not make the leaser rest: with one lookup
    /// at a time (a queue of four) and a tick far longer than the test, every due domain is
    /// still looked up again and recorded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_of_leased_domains_does_not_stall_the_sweep() {
        let due = Due::new(40).await;
        let dns = TestDnsServer::start().await.unwrap();
        due.publish(&dns).await;
        let config = WorkerConfig {
            workers: 1,
            rate: 1000,
            tick: Duration::from_secs(3600),
            flush: Duration::from_millis(10),
            ..WorkerConfig::default()
        };
        let worker = due.worker(dns.addr(), Duration::from_secs(5), config);
        let names = || {
            let names: std::collections::HashSet<String> =
                dns.txt_queries().into_iter().map(|(n, _)| n).collect();
            names.len()
        };
        // A bound for a hang, not a measure of speed.
        let looked_up = tokio::time::timeout(Duration::from_secs(60), async {
            while names() < due.records.len() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        worker.stop().await;
        assert!(looked_up.is_ok(), "{} of 40 due domains looked up", names());
        for r in due.now_held().await {
            let next = r.recheck.due_at.unwrap();
            assert!(
                next > due.now,
                "{} recorded: next check at {next:?}",
                r.domain
            );
        }
    }

    /// A worker that stops gives back the leases of the domains it leased and did not look up:
    /// another worker leases them at once, not when the leases (a minute here) run out. One
    /// lookup at a time against a server that never answers: the first domain's lookup is in
    /// flight and the second waits for its slot when the stop comes, the third is queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopping_worker_gives_back_what_it_did_not_look_up() {
        let due = Due::new(3).await;
        let (worker, silent) = due
            .one_at_a_time_unanswered(Duration::from_secs(60), Duration::from_millis(500))
            .await;
        // The first lookup has started: its domain and the next were leased together, and the
        // leaser leased the third right after.
        let mut buf = [0u8; 512];
        tokio::time::timeout(Duration::from_secs(30), silent.recv_from(&mut buf))
            .await
            .expect("a lookup")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        worker.stop().await;
        let held = due.now_held().await;
        let looked: Vec<&DomainName> = held
            .iter()
            .filter(|r| r.last_lookup.is_some())
            .map(|r| &r.domain)
            .collect();
        assert_eq!(looked.len(), 2, "looked up: {looked:?}");
        let lease = Lease {
            owner: "next".to_owned(),
            until: Timestamp::now().plus(Duration::from_secs(60)),
        };
        let next = due
            .store
            .lease_due_rechecks(&lease, Timestamp::now(), 10)
            .await
            .unwrap();
        let unlooked: Vec<&DomainName> = held
            .iter()
            .filter(|r| r.last_lookup.is_none())
            .map(|r| &r.domain)
            .collect();
        let leased: Vec<&DomainName> = next.iter().map(|d| &d.record.domain).collect();
        assert_eq!(leased, unlooked);
    }

    /// A leased domain whose lease runs out while it waits for its lookup is left to whoever
    /// leases it next: with one lookup at a time against a server that never answers, the
    /// first domain's lookup outlasts the others' leases, and they are not looked up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_that_ran_out_before_its_lookup_is_left_alone() {
        let due = Due::new(3).await;
        let (worker, _silent) = due
            .one_at_a_time_unanswered(Duration::from_secs(2), Duration::from_secs(2))
            .await;
        // The first lookup times out and is recorded; the next two come up after that.
        let recorded = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let looked = due.now_held().await;
                if looked.iter().any(|r| r.last_lookup.is_some()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        worker.stop().await;
        assert!(recorded.is_ok(), "the first lookup was recorded");
        let looked: Vec<String> = due
            .now_held()
            .await
            .into_iter()
            .filter(|r| r.last_lookup.is_some())
            .map(|r| r.domain.to_string())
            .collect();
        assert_eq!(looked.len(), 1, "looked up: {looked:?}");
    }
}
