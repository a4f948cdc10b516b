//! Webhooks and their outbox. The event log is the outbox: a change appends its event in its own
//! transaction, and leasing first turns the events committed since a cursor into one delivery per
//! webhook that wants them; deliveries are then leased by a dispatcher (any number of them share
//! the queue), attempted, and recorded.

use async_trait::async_trait;
use claimd_domain::{OrgId, Timestamp, Webhook, WebhookId};

use crate::error::StoreResult;
use crate::events::{Actor, Event};
use crate::rechecks::Lease;

/// A delivery due now, leased to one dispatcher: the webhook and the event it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    /// Stable across attempts: receivers deduplicate by it.
    pub id: i64,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub webhook: Webhook,
    pub event: Event,
}

/// What to do with a delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// Failed; try again at this time.
    Retry {
        at: Timestamp,
    },
    /// Failed, and its retry window ran out.
    GaveUp,
}

/// One attempt at a delivery, to be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub delivery_id: i64,
    pub webhook_id: WebhookId,
    pub at: Timestamp,
    /// The receiver's answer, if it answered.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub result: DeliveryResult,
    /// A webhook whose attempts have all failed since before this turns inactive.
    pub disable_if_failing_since: Timestamp,
}

/// One line of a webhook's delivery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub delivery_id: i64,
    pub event_id: i64,
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, actor: &Actor, webhook: &Webhook) -> StoreResult<()>;
    async fn find_webhook(&self, org: &OrgId, id: &WebhookId) -> StoreResult<Option<Webhook>>;
    async fn list_webhooks(&self, org: &OrgId) -> StoreResult<Vec<Webhook>>;
    /// Replaces what may change (name, target, event, filter, secret, status); false if there is
    /// no such webhook in the organization.
    async fn update_webhook(&self, actor: &Actor, webhook: &Webhook) -> StoreResult<bool>;
    /// Deletes the webhook and its undelivered deliveries; false if there is none.
    async fn delete_webhook(&self, actor: &Actor, org: &OrgId, id: &WebhookId)
    -> StoreResult<bool>;

    /// Turns the events not yet turned into deliveries into those (the event log is the
    /// outbox), then leases up to `limit` deliveries due at `now` to active webhooks, oldest
    /// first, that no other dispatcher holds a running lease on.
    async fn lease_due_deliveries(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records attempts in one unit of work: each in the delivery log, and, while `owner` still
    /// holds its lease, its delivery delivered, rescheduled or given up; a webhook failing for
    /// too long turns inactive (with an event). Returns how many deliveries moved.
    async fn record_deliveries(
        &self,
        actor: &Actor,
        owner: &str,
        outcomes: Vec<DeliveryOutcome>,
    ) -> StoreResult<u64>;
    /// Hands back leased deliveries unattempted (their webhook had no free turn), due again at
    /// `at` (so behind those due before); returns how many `owner` still held.
    async fn release_deliveries(&self, owner: &str, ids: &[i64], at: Timestamp)
    -> StoreResult<u64>;
    /// The newest `limit` attempts of a webhook's deliveries, newest first.
    async fn list_delivery_attempts(
        &self,
        org: &OrgId,
        id: &WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryAttempt>>;
    /// Delivers again every event since `since` that the webhook wants, delivered before or
    /// not (and those it missed while inactive); how many are queued.
    async fn replay_deliveries(
        &self,
        actor: &Actor,
        org: &OrgId,
        id: &WebhookId,
        since: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64>;
}
