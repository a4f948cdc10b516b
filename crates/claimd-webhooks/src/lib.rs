//! Webhook deliveries. Every change appends its event in its own transaction, and the event log
//! is the outbox: the [`Dispatcher`] in each `claimd serve` leases due deliveries from the store,
//! which first turns the events committed since its cursor into one delivery per webhook that
//! wants them (any number of processes share the queue). Each is sent signed ([`signing`]) to a
//! checked target ([`target`]), and the attempt is recorded: delivered; failed and tried again
//! later, with exponential backoff and jitter, within a retry window; or given up. A webhook whose
//! attempts have all failed for too long turns inactive; its undelivered events wait for a
//! replay. At least once: a receiver deduplicates by `webhook-id`.

pub mod signing;
pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use claimd_domain::{Timestamp, WebhookId};
use claimd_store::{Actor, DeliveryOutcome, DeliveryResult, DueDelivery, Lease, Store};
use rand::Rng as _;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::target::{CheckedResolver, TargetPolicy};

/// Most of a receiver's answer that is read (and kept in the delivery log).
const BODY_CAP: usize = 4 * 1024;

/// How deliveries are made.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Deliveries in flight at once in this process; 0: no dispatcher here.
    pub workers: usize,
    /// Deliveries in flight at once to one webhook: a slow receiver holds this many, no more.
    pub per_webhook: usize,
    /// The longest one attempt may take.
    pub timeout: Duration,
    /// The first wait after a failure; it doubles with each attempt.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// How long a delivery is tried before it is given up.
    pub retry_window: Duration,
    /// A webhook whose attempts have all failed for this long turns inactive.
    pub disable_after: Duration,
    pub targets: TargetPolicy,
    /// How often the queue is looked at when it was empty.
    pub tick: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            per_webhook: 4,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            retry_window: Duration::from_secs(24 * 3600),
            disable_after: Duration::from_secs(24 * 3600),
            targets: TargetPolicy::default(),
            tick: Duration::from_millis(250),
        }
    }
}

impl DispatcherConfig {
    /// What to do with a delivery whose attempt number `attempt` (from 1) failed at `now`.
    pub fn after_failure(
        &self,
        created_at: Timestamp,
        attempt: u32,
        now: Timestamp,
    ) -> DeliveryResult {
        if now.as_millis() - created_at.as_millis()
            >= i64::try_from(self.retry_window.as_millis()).unwrap_or(i64::MAX)
        {
            return DeliveryResult::GaveUp;
        }
        let doubling = 1u32 << attempt.saturating_sub(1).min(20);
        let ceiling = (self.backoff * doubling).min(self.max_backoff);
        // Full jitter between half the ceiling and all of it: retries of many deliveries that
        // failed together do not come back together.
        let wait = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        DeliveryResult::Retry { at: now.plus(wait) }
    }
}

/// A running dispatcher; [`stop`](Self::stop) lets it record what it finished.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Dispatcher {
    /// Starts the dispatcher on the current runtime, or nothing when `config.workers` is 0.
    pub fn spawn(store: Arc<dyn Store>, config: DispatcherConfig) -> Result<Option<Self>, String> {
        if config.workers == 0 {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .dns_resolver(CheckedResolver::shared(config.targets))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect where the check did not look.
            .no_proxy()
            .timeout(config.timeout)
            .user_agent(concat!("claimd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        let owner = format!("webhooks-{}", uuid::Uuid::new_v4());
        let (stop, stopped) = watch::channel(false);
        let run = Arc::new(Run {
            store,
            client,
            actor: Actor {
                credential_id: None,
                tracking_id: Some(owner.clone()),
                guarded: false,
            },
            owner,
            config,
            per_webhook: Mutex::default(),
            finished: Notify::new(),
        });
        let task = tokio::spawn(run.run(stopped));
        Ok(Some(Self { stop, task }))
    }

    /// Stops leasing, waits for the deliveries in flight, records them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Run {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    owner: String,
    actor: Actor,
    config: DispatcherConfig,
    per_webhook: Mutex<HashMap<WebhookId, Arc<Semaphore>>>,
    /// Signalled as each attempt ends (a slot and a turn free up).
    finished: Notify,
}

impl Run {
    /// Leases due deliveries as slots free up, sends them, and records the attempts in batches.
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.config.workers));
        let (done, finished) = mpsc::channel(self.config.workers * 4);
        let recorder = tokio::spawn(self.clone().record(finished));
        let chunk = u32::try_from(self.config.workers.div_ceil(2))
            .unwrap_or(1)
            .max(1);
        loop {
            let permits = tokio::select! {
                permits = slots.clone().acquire_many_owned(chunk) => permits,
                _ = stopped.changed() => break,
            };
            let Ok(mut permits) = permits else { break };
            let now = Timestamp::now();
            let lease = Lease {
                owner: self.owner.clone(),
                // Long enough for a whole attempt and its recording.
                until: now.plus(self.config.timeout * 2 + Duration::from_secs(5)),
            };
            let due = match self.store.lease_due_deliveries(&lease, now, chunk).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lease due webhook deliveries");
                    Vec::new()
                }
            };
            let full = due.len() as u32 == chunk;
            let mut handed_back = Vec::new();
            let mut sent = 0;
            for delivery in due {
                // A webhook without a free turn here (a slow receiver holds them) gets its
                // delivery back behind the others due, so it holds up no other webhook.
                let Ok(turn) = self.webhook_turn(&delivery.webhook.id).try_acquire_owned() else {
                    handed_back.push(delivery.id);
                    continue;
                };
                let Some(slot) = permits.split(1) else { break };
                let (this, done) = (self.clone(), done.clone());
                sent += 1;
                tokio::spawn(async move {
                    let outcome = this.deliver(delivery).await;
                    drop((slot, turn));
                    this.finished.notify_one();
                    let _ = done.send(outcome).await;
                });
            }
            drop(permits);
            if !handed_back.is_empty()
                && let Err(e) = self
                    .store
                    .release_deliveries(&self.owner, &handed_back, Timestamp::now())
                    .await
            {
                // Their leases run out and they are taken again.
                tracing::warn!(error = %e, "cannot hand back webhook deliveries");
            }
            if !full || sent == 0 {
                // Nothing more to send now: wait for the queue's next look, or for a turn.
                tokio::select! {
                    () = tokio::time::sleep(self.config.tick) => {}
                    () = self.finished.notified() => {}
                    _ = stopped.changed() => break,
                }
            }
        }
        let workers = u32::try_from(self.config.workers).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(workers).await;
        drop(done);
        let _ = recorder.await;
    }

    fn webhook_turn(&self, id: &WebhookId) -> Arc<Semaphore> {
        let mut map = self.per_webhook.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(id.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_webhook.max(1))))
            .clone()
    }

    /// One attempt: its outcome, never an error.
    async fn deliver(&self, delivery: DueDelivery) -> DeliveryOutcome {
        let body = signing::body(&delivery);
        let id = signing::message_id(delivery.id);
        let started = std::time::Instant::now();
        let sent = self.send(&delivery, &id, body).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let now = Timestamp::now();
        let (status_code, error) = match sent {
            Ok((status, _)) if (200..300).contains(&status) => (Some(status), None),
            Ok((status, answer)) => (Some(status), Some(format!("answered {status}: {answer}"))),
            Err(e) => (None, Some(e)),
        };
        let result = if error.is_none() {
            DeliveryResult::Delivered
        } else {
            self.config
                .after_failure(delivery.created_at, delivery.attempts + 1, now)
        };
        DeliveryOutcome {
            delivery_id: delivery.id,
            webhook_id: delivery.webhook.id.clone(),
            at: now,
            status_code,
            latency_ms,
            error,
            result,
            disable_if_failing_since: Timestamp::from_millis(
                now.as_millis()
                    - i64::try_from(self.config.disable_after.as_millis()).unwrap_or(i64::MAX),
            ),
        }
    }

    /// Posts the body; the status and the start of the answer, or why nothing came back.
    async fn send(
        &self,
        delivery: &DueDelivery,
        id: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), String> {
        let url = self
            .config
            .targets
            .check_form(&delivery.webhook.target_url)
            .map_err(|e| e.to_string())?;
        // An address in the URL is not resolved, so it is checked here.
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.config.targets.check_ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.config.targets.check_ip(ip.into()),
            _ => Ok(()),
        }
        .map_err(|e| e.to_string())?;
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in signing::headers(&delivery.webhook.secret, id, Timestamp::now(), &body)
        {
            request = request.header(name, value);
        }
        let mut response = request.body(body).send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        while answer.len() < BODY_CAP {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        answer.truncate(BODY_CAP);
        let answer = String::from_utf8_lossy(&answer).chars().take(200).collect();
        Ok((status, answer))
    }

    /// Records attempts in batches, one transaction each.
    async fn record(self: Arc<Self>, mut finished: mpsc::Receiver<DeliveryOutcome>) {
        while let Some(first) = finished.recv().await {
            let mut batch = vec![first];
            while batch.len() < 64 {
                match finished.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let n = batch.len();
            if let Err(e) = self
                .store
                .record_deliveries(&self.actor, &self.owner, batch)
                .await
            {
                // Their leases run out and the deliveries are tried again.
                tracing::warn!(error = %e, lost = n, "cannot record webhook deliveries");
            }
        }
    }
}

/// Why a request failed, without the URL's query (which may carry a receiver's token).
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirect not followed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_give_up_after_the_window() {
        let config = DispatcherConfig {
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            retry_window: Duration::from_secs(3600),
            ..DispatcherConfig::default()
        };
        let created = Timestamp::from_millis(1_000_000);
        for (attempt, ceiling) in [(1, 2_000), (2, 4_000), (3, 8_000), (10, 60_000)] {
            match config.after_failure(created, attempt, created) {
                DeliveryResult::Retry { at } => {
                    let wait = at.as_millis() - created.as_millis();
                    assert!((ceiling / 2..=ceiling).contains(&wait), "{attempt}: {wait}");
                }
                other => panic!("{other:?}"),
            }
        }
        let late = created.plus(Duration::from_secs(3600));
        assert_eq!(
            config.after_failure(created, 5, late),
            DeliveryResult::GaveUp
        );
    }
}
